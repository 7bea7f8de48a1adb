"""Max-pool kernels: CPU twin against the NumPy reference and PyTorch, PTX, errors, simulator."""

import numpy as np
import pytest

from gpugrad.kernels import reference_mode
from gpugrad.kernels.pool import (
    max_pool2d_backward,
    max_pool2d_backward_reference,
    max_pool2d_forward,
    max_pool2d_reference,
    pool_output_size,
)

# (x shape, kernel_size, stride, padding, dilation, ceil_mode): LeNet's 2x2, odd sizes,
# overlapping windows (3/2/1), stride > kernel, dilation, non-square everything, ceil_mode.
GEOMETRIES = [
    ((2, 3, 8, 8), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ((2, 3, 7, 9), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ((2, 2, 9, 8), (3, 3), (2, 2), (1, 1), (1, 1), False),
    ((1, 3, 10, 11), (3, 3), (1, 1), (1, 1), (2, 2), False),
    ((2, 2, 7, 7), (2, 3), (1, 2), (1, 1), (2, 1), False),
    ((1, 2, 9, 10), (2, 2), (3, 3), (0, 0), (1, 1), False),
    ((2, 2, 6, 13), (5, 3), (2, 3), (2, 1), (1, 2), False),
    ((2, 3, 8, 9), (3, 3), (2, 2), (1, 1), (1, 1), True),
    ((1, 2, 7, 6), (2, 2), (2, 2), (1, 0), (1, 1), True),  # the extra window is trimmed
    ((1, 2, 10, 9), (3, 2), (3, 2), (1, 1), (2, 3), True),
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0), (1, 1), False),
]
IDS = [f"{'x'.join(map(str, g[0]))}-k{g[1]}s{g[2]}p{g[3]}d{g[4]}{'-ceil' if g[5] else ''}"
       for g in GEOMETRIES]
DTYPES = [np.float32, np.float64]


@pytest.fixture
def rng():
    return np.random.default_rng(4321)


def awkward_input(rng, shape, dtype):
    """Few distinct values (many ties) plus NaN, +inf and a plane of -inf."""
    x = rng.integers(-2, 3, size=shape).astype(dtype)
    flat = x.reshape(-1)
    picks = rng.choice(flat.size, size=max(1, flat.size // 20), replace=False)
    flat[picks[: len(picks) // 2]] = np.nan
    flat[picks[len(picks) // 2 :]] = np.inf
    if shape[0] * shape[1] > 1:
        x[-1, -1] = -np.inf
    return x


def geometry_of(g):
    return g[1], g[2], g[3], g[4]


def out_shape(g):
    shape, (kh, kw), (sy, sx), (ph, pw), (dy, dx), ceil = g
    return (*shape[:2], pool_output_size(shape[2], kh, sy, ph, dy, ceil),
            pool_output_size(shape[3], kw, sx, pw, dx, ceil))


# ----------------------------------------------------------------------------- CPU twin


@pytest.mark.parametrize("g", GEOMETRIES, ids=IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_cpu_matches_reference(rng, g, dtype):
    for x in (rng.standard_normal(g[0]).astype(dtype), awkward_input(rng, g[0], dtype)):
        y, arg = max_pool2d_forward(x, *geometry_of(g), ceil_mode=g[5])
        ref_y, ref_arg = max_pool2d_reference(x, *geometry_of(g), ceil_mode=g[5])
        assert y.shape == out_shape(g) and y.dtype == dtype and arg.dtype == np.int64
        np.testing.assert_array_equal(y, ref_y)
        np.testing.assert_array_equal(arg, ref_arg)


@pytest.mark.parametrize("g", GEOMETRIES, ids=IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_cpu_matches_reference(rng, g, dtype):
    x = awkward_input(rng, g[0], dtype)
    _, arg = max_pool2d_forward(x, *geometry_of(g), ceil_mode=g[5])
    gy = rng.standard_normal(arg.shape).astype(dtype)
    h, w = g[0][2:]
    gx = max_pool2d_backward(gy, arg, h, w, *geometry_of(g), ceil_mode=g[5])
    ref = max_pool2d_backward_reference(gy, arg, h, w, *geometry_of(g))
    assert gx.shape == g[0] and gx.dtype == dtype
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(gx, ref, rtol=rtol, atol=rtol)
    # Every gy lands somewhere exactly once: the totals agree.
    assert gx.sum(dtype=np.float64) == pytest.approx(gy.sum(dtype=np.float64), rel=1e-5)


def test_first_max_wins_ties_and_last_nan_wins():
    x = np.array([[[[1.0, 3.0, 3.0],
                    [3.0, np.nan, 2.0],
                    [np.nan, 0.0, 3.0]]]])
    y, arg = max_pool2d_forward(x, 3, 1, 0, 1)
    assert np.isnan(y[0, 0, 0, 0]) and arg[0, 0, 0, 0] == 6  # the last NaN in scan order
    y, arg = max_pool2d_forward(x, 2, 1, 0, 1)
    np.testing.assert_array_equal(arg[0, 0], [[4, 4], [6, 4]])
    x = np.array([[[[3.0, 3.0], [3.0, 1.0]]]])
    assert max_pool2d_forward(x, 2, 1, 0, 1)[1][0, 0, 0, 0] == 0  # the first of equal maxima
    x = np.full((1, 1, 3, 3), -np.inf)
    y, arg = max_pool2d_forward(x, 3, 2, 1, 1)
    # All -inf: the first in-image tap of each window, as PyTorch.
    np.testing.assert_array_equal(arg[0, 0], [[0, 1], [3, 4]])
    assert np.all(y == -np.inf)


def test_overlapping_windows_sum_into_a_shared_max():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 5.0
    _, arg = max_pool2d_forward(x, 2, 1, 0, 1)
    gy = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    gx = max_pool2d_backward(gy, arg, 3, 3, 2, 1, 0, 1)
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 1, 1] = 10.0
    np.testing.assert_array_equal(gx, expected)


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 3, 7, 9), (1, 2, 2, 3), (3, 1, 5, 4)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_plain_2x2_twins_match_the_general_twins(rng, shape, dtype):
    from gpugrad.kernels import pool

    x = awkward_input(rng, shape, dtype)
    out = (*shape[:2], shape[2] // 2, shape[3] // 2)
    assert pool._is_plain_2x2(((2, 2), (2, 2), (0, 0), (1, 1)), shape[2:], out[2:])
    y, arg = np.empty(out, dtype), np.empty(out, np.int64)
    pool._max_pool2d_2x2_forward_cpu(x, y, arg)
    ref_y, ref_arg = np.empty(out, dtype), np.empty(out, np.int64)
    pool._max_pool2d_forward_cpu(x, 2, 2, 2, 2, 0, 0, 1, 1, ref_y, ref_arg)
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(arg, ref_arg)
    gy = rng.standard_normal(out).astype(dtype)
    gx = np.full(shape, 7, dtype)  # every pixel must be written, the uncovered ones with 0
    pool._max_pool2d_2x2_backward_cpu(gy, arg, gx)
    ref_gx = np.empty(shape, dtype)
    pool._max_pool2d_backward_cpu(gy, arg, 2, 2, 0, 0, 1, 1, 2, 2, ref_gx)
    np.testing.assert_array_equal(gx, ref_gx)


def test_reference_mode_routes_to_reference(rng, monkeypatch):
    from gpugrad.kernels import pool

    def broken(*args):
        raise AssertionError("the CPU twin ran in reference mode")

    for name in ("_max_pool2d_forward_cpu", "_max_pool2d_backward_cpu",
                 "_max_pool2d_2x2_forward_cpu", "_max_pool2d_2x2_backward_cpu"):
        monkeypatch.setattr(pool, name, broken)
    x = rng.standard_normal((1, 2, 4, 4))
    with reference_mode():
        y, arg = max_pool2d_forward(x, 2, 2, 0, 1)
        gx = max_pool2d_backward(np.ones_like(y), arg, 4, 4, 2, 2, 0, 1)
    np.testing.assert_array_equal(y, max_pool2d_reference(x, (2, 2), (2, 2), (0, 0), (1, 1))[0])
    assert gx.sum() == y.size
    with pytest.raises(AssertionError, match="CPU twin"):
        max_pool2d_forward(x, 2, 2, 0, 1)


# ----------------------------------------------------------------------------- PyTorch


@pytest.mark.parametrize("g", GEOMETRIES, ids=IDS)
def test_matches_torch_values_indices_and_gradient(rng, g):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = awkward_input(rng, g[0], np.float64)
    x[np.isinf(x) & (x > 0)] = 1.5  # +inf would make torch's gradient check meaningless
    xt = torch.tensor(x, requires_grad=True)
    kernel, stride, padding, dilation = geometry_of(g)
    yt, it = F.max_pool2d(xt, kernel, stride, padding, dilation, ceil_mode=g[5],
                          return_indices=True)
    gy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.from_numpy(gy))
    for x_path in ("cpu", "reference"):
        with reference_mode(x_path == "reference"):
            y, arg = max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode=g[5])
            gx = max_pool2d_backward(gy, arg, *g[0][2:], kernel, stride, padding, dilation,
                                     ceil_mode=g[5])
        np.testing.assert_array_equal(y, yt.detach().numpy())
        np.testing.assert_array_equal(arg, it.numpy())
        np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize(
    "in_size, k, s, p, d, ceil",
    [(7, 3, 2, 1, 1, True), (8, 2, 2, 0, 1, True), (10, 3, 3, 1, 2, True), (6, 2, 3, 1, 1, True),
     (9, 3, 2, 1, 1, False), (5, 1, 3, 0, 1, True)],
)
def test_pool_output_size_matches_torch(in_size, k, s, p, d, ceil):
    torch = pytest.importorskip("torch")
    pool = torch.nn.MaxPool1d(k, s, p, d, ceil_mode=ceil)
    assert pool_output_size(in_size, k, s, p, d, ceil) == pool(torch.zeros(1, 1, in_size)).shape[-1]


# ----------------------------------------------------------------------------- bad input


def test_forward_rejects_bad_input(rng):
    x = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=r"max_pool2d: x must have 4 dimensions, got shape"):
        max_pool2d_forward(x[0], 2, 2, 0, 1)
    with pytest.raises(TypeError, match="max_pool2d: x must be float32 or float64, got int64"):
        max_pool2d_forward(x.astype(np.int64), 2, 2, 0, 1)
    with pytest.raises(ValueError, match=r"max_pool2d: stride must be >= 1, got \(0, 2\)"):
        max_pool2d_forward(x, 2, (0, 2), 0, 1)
    with pytest.raises(ValueError, match="larger than the padded input 4 along H"):
        max_pool2d_forward(x, 3, 1, 0, 2)
    # Taps at -1 and 2 of a 2-pixel row: no tap inside (PyTorch would return -inf).
    with pytest.raises(ValueError, match="window 0 along W .* has no tap inside the input"):
        max_pool2d_forward(rng.standard_normal((1, 1, 4, 2)), 2, 1, 1, (1, 3))


def test_backward_rejects_bad_input(rng):
    x = rng.standard_normal((1, 2, 5, 5))
    y, arg = max_pool2d_forward(x, 2, 2, 0, 1)
    gy = np.ones_like(y)
    with pytest.raises(ValueError, match=r"pools to 2x2, but gy is \(1, 2, 3, 3\)"):
        max_pool2d_backward(np.ones((1, 2, 3, 3)), arg, 5, 5, 2, 2, 0, 1)
    with pytest.raises(TypeError, match="argmax must be int64, got int32"):
        max_pool2d_backward(gy, arg.astype(np.int32), 5, 5, 2, 2, 0, 1)
    with pytest.raises(ValueError, match="argmax must have gy's shape"):
        max_pool2d_backward(gy, arg[:, :1], 5, 5, 2, 2, 0, 1)
    with pytest.raises(TypeError, match="gy must be float32 or float64"):
        max_pool2d_backward(arg, arg, 5, 5, 2, 2, 0, 1)


@pytest.mark.parametrize("bad", [-1, 4, 5 * 5, 2, 10**9, -(2**63), 2**63 - 1])
@pytest.mark.parametrize("k, s, p", [(2, 2, 0), (3, 2, 1)], ids=["2x2-twin", "general-twin"])
@pytest.mark.parametrize("use_reference", [False, True])
def test_backward_rejects_argmax_outside_its_window(rng, bad, k, s, p, use_reference):
    # Window (0, 0) covers flat 0, 1, 5, 6 of a 5x5 plane either way: -1 and 25 are off the
    # image, 2 and 4 are on it but outside that window.
    x = rng.standard_normal((1, 1, 5, 5))
    y, arg = max_pool2d_forward(x, k, s, p, 1)
    arg[0, 0, 0, 0] = bad
    with reference_mode(use_reference):
        with pytest.raises(ValueError, match=rf"max_pool2d_backward: 1 argmax entries are not "
                                             rf"in-image taps .* argmax\[0, 0, 0, 0\] = {bad}\)"):
            max_pool2d_backward(np.ones_like(y), arg, 5, 5, k, s, p, 1)


def test_backward_error_counts_the_bad_entries_and_names_the_first(rng):
    x = rng.standard_normal((2, 3, 6, 6))
    y, arg = max_pool2d_forward(x, 3, 2, 1, (1, 2))
    assert arg.shape == (2, 3, 3, 2)
    arg[1, 2, 0, 0] = arg[1, 2, 2, 1]  # a tap of a window that shares no pixel with (0, 0)
    arg[1, 0, 2, 1] = -5
    arg[0, 1, 1, 1] += 1  # the next pixel: off the window's dilation-2 grid of columns
    for use_reference in (False, True):
        with reference_mode(use_reference):
            with pytest.raises(ValueError, match=rf"3 argmax entries .*the first is "
                                                 rf"argmax\[0, 1, 1, 1\] = {arg[0, 1, 1, 1]}\)"):
                max_pool2d_backward(np.ones_like(y), arg, 6, 6, 3, 2, 1, (1, 2))


@pytest.mark.parametrize("k, s, p", [(2, 2, 0), (3, 2, 1)], ids=["2x2-twin", "general-twin"])
def test_backward_without_the_check_skips_bad_argmax_in_bounds(rng, k, s, p):
    # check_argmax=False is for autograd's own argmax; given a bad one anyway the twins must
    # neither write out of bounds nor crash: the bad entries' gradient is lost, the rest lands.
    x = rng.standard_normal((2, 2, 5, 5))
    y, arg = max_pool2d_forward(x, k, s, p, 1)
    gy = np.ones_like(y)
    good = max_pool2d_backward(gy, arg, 5, 5, k, s, p, 1, check_argmax=False)
    np.testing.assert_array_equal(good, max_pool2d_backward(gy, arg, 5, 5, k, s, p, 1))
    bad_values = [-1, 25, 10**9, -(2**63), 2**63 - 1, 2]
    for i, bad in enumerate(bad_values):
        arg[0, 0, 0, 0] = bad
        gx = max_pool2d_backward(gy, arg, 5, 5, k, s, p, 1, check_argmax=False)
        assert gx.sum() == gy.sum() - 1
        np.testing.assert_array_equal(gx[1], good[1])


# ----------------------------------------------------------------------------- huge geometry
# Walking a window start out of the padding one dilation at a time took O(padding) per window
# (p = 2**40 never returned); so did checking the windows one by one. Both are closed forms now,
# and values past PyTorch's int32 limit are refused before any kernel sees them.


def test_huge_padding_inside_the_limit_gives_the_right_answer(rng):
    # Every window spans the whole column: each output is the column's max. The old walk took
    # 2**30 steps per window here.
    p = 2**30 - 1
    k = (2 * p + 1, 1)
    x = rng.standard_normal((1, 2, 4, 3))
    y, arg = max_pool2d_forward(x, k, 1, (p, 0), 1)
    assert y.shape == (1, 2, 4, 3)
    np.testing.assert_array_equal(y, np.broadcast_to(x.max(axis=2, keepdims=True), y.shape))
    np.testing.assert_array_equal(arg % 3, np.broadcast_to(np.arange(3), y.shape))
    gx = max_pool2d_backward(np.ones_like(y), arg, 4, 3, k, 1, (p, 0), 1)
    np.testing.assert_array_equal(gx, (x == x.max(axis=2, keepdims=True)) * 4.0)


def test_two_billion_windows_are_checked_without_a_loop():
    # Kernel-level only (F.max_pool2d wants padding <= kernel // 2): padding 2**31 - 2 and a
    # kernel that reaches the image from every window give 2**31 + 2 rows of windows, all
    # with taps. With no images there is nothing to compute, only the check, which looped.
    p = 2**31 - 2
    y, arg = max_pool2d_forward(np.zeros((0, 1, 4, 4)), (p + 1, 1), 1, (p, 0), 1)
    assert y.shape == arg.shape == (0, 1, p + 4, 4)


def test_the_first_window_without_taps_is_found_in_closed_form():
    # Dilation 2**20 + 1 on a 2**20-pixel row, padding 2**20 + 1: window i has taps at
    # i - 2**20 - 1 and i, so windows 0 .. 2**20 - 1 have one, window 2**20 has none.
    n = 2**20
    with pytest.raises(ValueError, match=f"max_pool2d: window {n} along W .* has no tap inside"):
        max_pool2d_forward(np.zeros((1, 1, 1, n), np.float32), (1, 2), 1, (0, n + 1), (1, n + 1))
    # A kernel too short to reach the image from the padding: window 0 misses.
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="window 0 along H .* has no tap inside"):
        max_pool2d_forward(x, (3, 1), 1, (2**31 - 1, 0), (2**20, 1))
    # Dilation 2**31 - 1: taps at i - 2**30 and i + 2**30 - 1, none inside a 4-pixel row.
    with pytest.raises(ValueError, match="window 0 along W .* has no tap inside"):
        max_pool2d_forward(x, (1, 2), 1, (0, 2**30), (1, 2**31 - 1))
    # Only window 1 misses: starts -3, -1, 1 with dilation 3 on a 2-pixel row.
    with pytest.raises(ValueError, match="window 1 along W .* has no tap inside"):
        max_pool2d_forward(np.zeros((1, 1, 2, 2)), (1, 2), (1, 2), (0, 3), (1, 3))


def test_first_window_without_taps_matches_a_walk_over_the_windows():
    from gpugrad.kernels.pool import _first_window_without_taps, _pool_output_size

    def walk(o, size, k, s, p, d):
        for i in range(o):
            start = i * s - p
            if start >= 0:
                return None
            first = start + (-start + d - 1) // d * d
            if first >= size or first > start + (k - 1) * d:
                return i
        return None

    rng = np.random.default_rng(7)
    for _ in range(20000):
        size, k, s, p, d = (int(v) for v in rng.integers(1, [30, 20, 40, 200, 60]))
        ceil = bool(rng.integers(2))
        o = _pool_output_size(size, k, s, p, d, ceil)  # unchecked: <= 0 where nothing fits
        if o >= 1:
            assert _first_window_without_taps(o, size, k, s, p, d) == walk(o, size, k, s, p, d), (
                size, k, s, p, d, ceil)


@pytest.mark.parametrize("name, arguments", [
    ("kernel_size", dict(kernel_size=(2**31, 1))),
    ("stride", dict(kernel_size=2, stride=(1, 2**31))),
    ("padding", dict(kernel_size=2, padding=2**31)),
    ("dilation", dict(kernel_size=2, dilation=(2**40, 1))),
])
def test_geometry_past_int32_is_refused(name, arguments):
    arguments = dict(dict(stride=1, padding=0, dilation=1), **arguments)
    value = arguments[name]
    pair = value if isinstance(value, tuple) else (value, value)
    expected = (rf"{name} \({pair[0]}, {pair[1]}\) is too large: each value must be at most "
                r"2\*\*31 - 1")
    with pytest.raises(ValueError, match="max_pool2d: " + expected):
        max_pool2d_forward(np.zeros((1, 1, 4, 4), np.float32), **arguments)
    y = np.zeros((1, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match="max_pool2d_backward: " + expected):
        max_pool2d_backward(y, np.zeros(y.shape, np.int64), 4, 4, **arguments)


def test_the_reviews_hang_is_a_clear_error():
    # k = 2**41 + 1, p = 2**40: PyTorch refuses these too ("value cannot be converted to type
    # int without overflow"); the walk through the padding never returned.
    p = 2**40
    with pytest.raises(ValueError, match=r"max_pool2d: kernel_size \(2199023255553, 1\) is too"):
        max_pool2d_forward(np.zeros((1, 1, 4, 4), np.float32), (2 * p + 1, 1), 1, (p, 0), 1)


@pytest.mark.parametrize("value", [2**63, 2**64 - 1, 2**64, 2**100, np.uint64(2**63)])
def test_geometry_past_int64_is_a_clear_error(value):
    x = np.zeros((1, 1, 4, 4), np.float32)
    for arguments in (dict(kernel_size=2, stride=value, padding=0, dilation=1),
                      dict(kernel_size=2, stride=1, padding=(value, 0), dilation=1)):
        with pytest.raises(ValueError, match="max_pool2d: (stride|padding)"):
            max_pool2d_forward(x, **arguments)


def test_backward_rejects_an_input_size_past_int64():
    y = np.zeros((0, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match="max_pool2d_backward: input size .* is too large"):
        max_pool2d_backward(y, np.zeros(y.shape, np.int64), 2**62, 4, (2**31 - 1, 4), 2**31 - 1,
                            0, 1)


# ----------------------------------------------------------------------------- CUDA kernels


@pytest.fixture(scope="module")
def ptx_records():
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    from gpugrad.kernels import pool_cuda, ptx

    records = []
    for dtype in DTYPES:
        name = np.dtype(dtype).name
        for kernel_name, kernel, argtypes in pool_cuda.signatures(name):
            text = ptx.kernel_ptx(kernel, argtypes, (9, 0))
            records.append((kernel_name, name, text))
    return records


def test_cuda_kernels_compile_to_ptx_for_both_dtypes(ptx_records):
    compiled = {(name, dtype) for name, dtype, _ in ptx_records}
    assert compiled == {(k, d) for k in ("max_pool2d_forward_kernel", "max_pool2d_backward_kernel")
                        for d in ("float32", "float64")}
    for _, _, text in ptx_records:
        assert ".entry" in text and ".target sm_90" in text


def test_float32_cuda_kernels_do_no_float64_arithmetic(ptx_records):
    from gpugrad.kernels.ptx import f64_instructions

    for name, dtype, text in ptx_records:
        found = f64_instructions(text)
        if dtype == "float32":
            assert found == [], (name, found[:5])
        else:
            assert found, name  # positive control: the detector does see float64 math


@pytest.mark.gpu
def test_cuda_backward_checks_argmax_on_gpu(cp, rng):
    x = rng.standard_normal((2, 3, 6, 6))
    y, arg = max_pool2d_forward(cp.asarray(x), 3, 2, 1, 1, device="cuda")
    gy = cp.ones_like(y)
    expected = max_pool2d_backward(np.ones(y.shape), cp.asnumpy(arg), 6, 6, 3, 2, 1, 1)
    np.testing.assert_array_equal(
        cp.asnumpy(max_pool2d_backward(gy, arg, 6, 6, 3, 2, 1, 1, device="cuda")), expected
    )
    arg[1, 2, 0, 1] = 10**9
    arg[1, 2, 1, 1] = -1
    with pytest.raises(ValueError, match=r"2 argmax entries .*argmax\[1, 2, 0, 1\] = 1000000000"):
        max_pool2d_backward(gy, arg, 6, 6, 3, 2, 1, 1, device="cuda")
    gx = max_pool2d_backward(gy, arg, 6, 6, 3, 2, 1, 1, device="cuda", check_argmax=False)
    assert float(gx.sum()) == y.size - 2


@pytest.mark.gpu
def test_huge_padding_and_kernel_on_gpu(cp, rng):
    p = 2**30 - 1
    k = (2 * p + 1, 1)
    x = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    y, arg = max_pool2d_forward(cp.asarray(x), k, 1, (p, 0), 1, device="cuda")
    cpu_y, cpu_arg = max_pool2d_forward(x, k, 1, (p, 0), 1)
    np.testing.assert_array_equal(cp.asnumpy(y), cpu_y)
    np.testing.assert_array_equal(cp.asnumpy(arg), cpu_arg)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx = max_pool2d_backward(cp.asarray(gy), arg, 5, 4, k, 1, (p, 0), 1, device="cuda")
    np.testing.assert_array_equal(cp.asnumpy(gx), max_pool2d_backward(gy, cpu_arg, 5, 4, k, 1,
                                                                      (p, 0), 1))


@pytest.mark.simulator("sim_pool_cases.py")
def test_cuda_kernels_under_the_simulator(simulated):
    assert " passed" in simulated


def test_an_output_larger_than_any_array_is_a_clear_error():
    # 2**31 + 2 windows along both axes of 2**3 planes: 2**65 int64 argmax entries.
    p = 2**31 - 2
    with pytest.raises(ValueError, match=r"max_pool2d: the output would have shape \(2, 4, "):
        max_pool2d_forward(np.zeros((2, 4, 4, 4)), p + 1, 1, p, 1)
    y = np.zeros((2, 4, 1, 1))
    with pytest.raises(ValueError, match=r"max_pool2d_backward: the gradient would have shape"):
        max_pool2d_backward(y, np.zeros(y.shape, np.int64), 2**31, 2**31, 2**31 - 1, 2**31 - 1,
                            0, 1)
