"""Winograd F(2x2, 3x3) transforms: twin vs reference, adjoints, the conv, layouts, errors."""

import numba
import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from gpugrad.kernels import _launch, reference_mode
from gpugrad.kernels import conv_winograd as cw
from gpugrad.kernels.conv_winograd import (
    _plane_rows,
    filter_grad_transform,
    filter_grad_transform_reference,
    filter_transform,
    filter_transform_reference,
    gy_transform,
    gy_transform_reference,
    input_grad_transform,
    input_grad_transform_reference,
    input_transform,
    input_transform_reference,
    output_transform,
    output_transform_reference,
    tile_array,
    tile_counts,
)

# (x shape (N, C, H, W), padding): odd and even outputs, 1x1 outputs, N = 1, C = 1, asymmetric
# padding, padding larger than the kernel, one tile with one channel (NumPy leaves the strides of
# size-1 dimensions arbitrary).
GEOMETRIES = [
    ((2, 3, 7, 9), (1, 1)),  # 7x9: odd both ways
    ((1, 3, 8, 8), (1, 1)),  # 8x8: even
    ((1, 1, 1, 1), (1, 1)),  # 1x1 output, one channel, one tile
    ((3, 2, 3, 3), (0, 0)),  # 1x1 outputs, no padding
    ((2, 1, 5, 4), (2, 1)),  # 7x4
    ((1, 4, 6, 3), (0, 3)),  # 4x7
    ((2, 2, 1, 2), (3, 2)),  # 5x4: padding past the kernel
    ((2, 5, 4, 11), (3, 0)),  # 8x9
    ((1, 1, 2, 1), (1, 2)),  # 2x3
    ((1, 1, 4, 4), (0, 0)),  # 2x2: one tile, one channel
]

DTYPES = [np.float32, np.float64]


@pytest.fixture
def rng():
    return np.random.default_rng(2016)


def out_size(shape, padding):
    return shape[2] + 2 * padding[0] - 2, shape[3] + 2 * padding[1] - 2


def n_tiles(n_img, out_hw):
    th, tw = tile_counts(*out_hw)
    return n_img * th * tw


def assert_close(actual, expected, err_msg=""):
    """Equal up to roundings: tight in float64, ~1e-5 of the magnitude in float32."""
    assert actual.shape == expected.shape, err_msg
    assert actual.dtype == expected.dtype, err_msg
    tol = 1e-12 if actual.dtype == np.float64 else 1e-5
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale, err_msg=err_msg)


def direct_conv(x, w, bias, padding):
    """3x3 stride-1 cross-correlation in float64, straight from the definition."""
    ph, pw = padding
    canvas = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = sliding_window_view(canvas, (3, 3), axis=(2, 3))  # (N, C, oh, ow, 3, 3)
    y = np.einsum("ncijab,kcab->nkij", windows, w.astype(np.float64))
    return y + bias.astype(np.float64).reshape(1, -1, 1, 1)


def winograd_conv(x, w, bias, padding):
    out_hw = out_size(x.shape, padding)
    u = filter_transform(w)  # (16, K, C)
    v = input_transform(x, padding, out_hw)  # (16, C, tiles)
    m = np.matmul(u, v)  # the 16 GEMMs
    return output_transform(m, bias, x.shape[0], out_hw)


# ----------------------------------------------------------------------------- twin == reference


@pytest.mark.parametrize("kc", [(1, 1), (4, 3), (2, 7)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_filter_transform_matches_reference(rng, kc, dtype):
    w = rng.standard_normal((*kc, 3, 3)).astype(dtype)
    u = filter_transform(w)
    assert u.shape == (16, *kc)
    assert_close(u, filter_transform_reference(w))
    # A strided view of the filters gives the same answer.
    wide = rng.standard_normal((kc[0], 2 * kc[1], 3, 3)).astype(dtype)
    assert_close(filter_transform(wide[:, ::2]), filter_transform_reference(wide[:, ::2]))


@pytest.mark.parametrize("kc", [(1, 1), (4, 3), (2, 7)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_filter_grad_transform_matches_reference(rng, kc, dtype):
    du = rng.standard_normal((16, *kc)).astype(dtype)
    gw = filter_grad_transform(du)
    assert gw.shape == (*kc, 3, 3)
    assert_close(gw, filter_grad_transform_reference(du))


@pytest.mark.parametrize("shape, padding", GEOMETRIES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_input_transform_matches_reference(rng, twin_threads, shape, padding, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    x_before = x.copy()
    out_hw = out_size(shape, padding)
    v = input_transform(x, padding, out_hw)
    assert v.shape == (16, shape[1], n_tiles(shape[0], out_hw))
    assert_close(v, input_transform_reference(x, padding, tile_counts(*out_hw)))
    np.testing.assert_array_equal(x, x_before)


@pytest.mark.parametrize("shape, padding", GEOMETRIES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_bias", [False, True])
def test_output_transform_matches_reference(rng, twin_threads, shape, padding, dtype,
                                            with_bias):
    n, k = shape[0], shape[1] + 1
    out_hw = out_size(shape, padding)
    m = rng.standard_normal((16, k, n_tiles(n, out_hw))).astype(dtype)
    m_before = m.copy()
    bias = rng.standard_normal(k).astype(dtype) if with_bias else None
    y = output_transform(m, bias, n, out_hw)
    assert y.shape == (n, k, *out_hw) and y.flags.c_contiguous
    assert_close(y, output_transform_reference(m, bias, n, out_hw))
    np.testing.assert_array_equal(m, m_before)


@pytest.mark.parametrize("shape, padding", GEOMETRIES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_gy_transform_matches_reference(rng, twin_threads, shape, padding, dtype):
    out_hw = out_size(shape, padding)
    gy = rng.standard_normal((shape[0], shape[1], *out_hw)).astype(dtype)
    gy_before = gy.copy()
    dm = gy_transform(gy)
    assert dm.shape == (16, shape[1], n_tiles(shape[0], out_hw))
    assert_close(dm, gy_transform_reference(gy))
    np.testing.assert_array_equal(gy, gy_before)


@pytest.mark.parametrize("shape, padding", GEOMETRIES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_input_grad_transform_matches_reference(rng, twin_threads, shape, padding, dtype):
    n, c = shape[:2]
    out_hw = out_size(shape, padding)
    dv = rng.standard_normal((16, c, n_tiles(n, out_hw))).astype(dtype)
    dv_before = dv.copy()
    gx = input_grad_transform(dv, n, shape[2:], padding, out_hw)
    assert gx.shape == shape and gx.flags.c_contiguous
    expected = input_grad_transform_reference(dv, n, shape[2:], padding, tile_counts(*out_hw))
    assert_close(gx, expected)
    np.testing.assert_array_equal(dv, dv_before)


def test_reference_mode_routes_to_reference(rng, monkeypatch):
    def broken(*args):
        raise AssertionError("a CPU twin ran in reference mode")

    for name in ["_filter_transform_cpu", "_filter_grad_transform_cpu", "_input_transform_cpu",
                 "_output_transform_cpu", "_gy_transform_cpu", "_input_grad_transform_cpu"]:
        monkeypatch.setattr(cw, name, broken)
    n, padding, in_hw, out_hw = 2, (1, 0), (5, 6), (5, 4)
    tiles = tile_counts(*out_hw)
    x = rng.standard_normal((n, 3, *in_hw)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    du = rng.standard_normal((16, 4, 3)).astype(np.float32)
    m = rng.standard_normal((16, 4, n_tiles(n, out_hw))).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    gy = rng.standard_normal((n, 4, *out_hw)).astype(np.float32)
    dv = rng.standard_normal((16, 3, n_tiles(n, out_hw))).astype(np.float32)
    calls = [
        (lambda: filter_transform(w), lambda: filter_transform_reference(w)),
        (lambda: filter_grad_transform(du), lambda: filter_grad_transform_reference(du)),
        (lambda: input_transform(x, padding, out_hw),
         lambda: input_transform_reference(x, padding, tiles)),
        (lambda: output_transform(m, bias, n, out_hw),
         lambda: output_transform_reference(m, bias, n, out_hw)),
        (lambda: gy_transform(gy), lambda: gy_transform_reference(gy)),
        (lambda: input_grad_transform(dv, n, in_hw, padding, out_hw),
         lambda: input_grad_transform_reference(dv, n, in_hw, padding, tiles)),
    ]
    for dispatched, reference in calls:
        with reference_mode():
            np.testing.assert_array_equal(dispatched(), reference())
        with reference_mode(False), pytest.raises(AssertionError, match="CPU twin"):
            dispatched()


# ----------------------------------------------------------------------------- adjoints


@pytest.mark.parametrize("shape, padding", GEOMETRIES)
@pytest.mark.parametrize("path", ["twin", "reference"])
def test_input_grad_transform_is_the_adjoint_of_input_transform(rng, shape, padding, path):
    # <input_transform(x), dv> == <x, input_grad_transform(dv)>
    n = shape[0]
    out_hw = out_size(shape, padding)
    x = rng.standard_normal(shape)
    dv = rng.standard_normal((16, shape[1], n_tiles(n, out_hw)))
    with reference_mode(path == "reference"):
        lhs = np.vdot(input_transform(x, padding, out_hw), dv)
        rhs = np.vdot(x, input_grad_transform(dv, n, shape[2:], padding, out_hw))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-10)


@pytest.mark.parametrize("shape, padding", GEOMETRIES)
@pytest.mark.parametrize("path", ["twin", "reference"])
def test_gy_transform_is_the_adjoint_of_output_transform(rng, shape, padding, path):
    # <output_transform(m), gy> == <m, gy_transform(gy)>, outputs past an odd edge included
    n, k = shape[:2]
    out_hw = out_size(shape, padding)
    m = rng.standard_normal((16, k, n_tiles(n, out_hw)))
    gy = rng.standard_normal((n, k, *out_hw))
    with reference_mode(path == "reference"):
        lhs = np.vdot(output_transform(m, None, n, out_hw), gy)
        rhs = np.vdot(m, gy_transform(gy))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-10)


@pytest.mark.parametrize("kc", [(1, 1), (4, 3), (2, 7)])
@pytest.mark.parametrize("path", ["twin", "reference"])
def test_filter_grad_transform_is_the_adjoint_of_filter_transform(rng, kc, path):
    # <filter_transform(w), du> == <w, filter_grad_transform(du)>
    w = rng.standard_normal((*kc, 3, 3))
    du = rng.standard_normal((16, *kc))
    with reference_mode(path == "reference"):
        lhs = np.vdot(filter_transform(w), du)
        rhs = np.vdot(w, filter_grad_transform(du))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-10)


# ----------------------------------------------------------------------------- the convolution

CONV_GEOMETRIES = GEOMETRIES + [((2, 16, 10, 11), (1, 1))]


@pytest.mark.parametrize("shape, padding", CONV_GEOMETRIES)
@pytest.mark.parametrize("path", ["twin", "reference"])
def test_winograd_conv_equals_direct_conv_in_float64(rng, shape, padding, path):
    k = 3
    x = rng.standard_normal(shape)
    w = rng.standard_normal((k, shape[1], 3, 3))
    bias = rng.standard_normal(k)
    with reference_mode(path == "reference"):
        y = winograd_conv(x, w, bias, padding)
    expected = direct_conv(x, w, bias, padding)
    assert y.shape == (shape[0], k, *out_size(shape, padding))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())


@pytest.mark.parametrize("shape, padding", CONV_GEOMETRIES)
def test_winograd_conv_in_float32_is_within_a_few_roundings(rng, shape, padding):
    k = 8
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((k, shape[1], 3, 3)).astype(np.float32)
    bias = rng.standard_normal(k).astype(np.float32)
    y = winograd_conv(x, w, bias, padding)
    assert y.dtype == np.float32
    # Float64 on the same float32 numbers; the error is measured against the sum of |terms|.
    expected = direct_conv(x, w, bias, padding)
    magnitude = direct_conv(np.abs(x), np.abs(w), np.abs(bias), padding)
    np.testing.assert_array_less(np.abs(y - expected), 1e-5 * magnitude + 1e-30)


# ----------------------------------------------------------------------------- odd edges


def test_output_transform_drops_the_outputs_past_an_odd_edge(rng):
    n, k, out_hw = 2, 3, (5, 7)  # 3x4 tiles: the last tile row and column hang over
    th, tw = tile_counts(*out_hw)
    m = rng.standard_normal((16, k, n * th * tw))
    # M[4a + b] feeds output row 1 of its tile alone when a == 3, output column 1 alone when
    # b == 3: in the last tile row / column, those outputs are dropped.
    bumped = m.copy()
    tiles = bumped.reshape(4, 4, k, n, th, tw)
    tiles[3, :, :, :, -1, :] += 1e3
    tiles[:, 3, :, :, :, -1] += 1e3
    for path in ["twin", "reference"]:
        with reference_mode(path == "reference"):
            y = output_transform(m, None, n, out_hw)
            assert y.shape == (n, k, *out_hw)
            np.testing.assert_array_equal(output_transform(bumped, None, n, out_hw), y)
    # With an even output nothing is dropped, and the same bump shows.
    even = output_transform(m, None, n, (6, 8))
    assert np.abs(output_transform(bumped, None, n, (6, 8)) - even).max() > 1e2


@pytest.mark.parametrize("dtype", DTYPES)
def test_gy_transform_gives_zero_gradient_past_an_odd_edge(rng, dtype):
    gy = rng.standard_normal((2, 3, 5, 7)).astype(dtype)
    dm = gy_transform(gy)
    assert dm.shape == (16, 3, 2 * 3 * 4)
    assert_close(dm, gy_transform_reference(gy))
    # The same as an even gy padded with zeros, to the bit ...
    padded = np.zeros((2, 3, 6, 8), dtype)
    padded[:, :, :5, :7] = gy
    np.testing.assert_array_equal(gy_transform(padded), dm)
    # ... and not as one padded with anything else (the comparison can fail).
    padded[:, :, 5, :] = 1.0
    assert not np.array_equal(gy_transform(padded), dm)
    # Nothing a previous call left behind leaks into the next one.
    gy_transform(np.full_like(gy, 1e30))
    np.testing.assert_array_equal(gy_transform(gy), dm)


@pytest.mark.parametrize("dtype", DTYPES)
def test_output_transform_writes_every_output(rng, dtype):
    # y starts uninitialised: call once with huge values so freed memory holds junk, then check.
    n, k, out_hw = 2, 3, (5, 7)
    m = rng.standard_normal((16, k, n_tiles(n, out_hw))).astype(dtype)
    output_transform(np.full_like(m, np.nan), None, n, out_hw)
    y = output_transform(m, None, n, out_hw)
    assert np.isfinite(y).all()
    assert_close(y, output_transform_reference(m, None, n, out_hw))


# ----------------------------------------------------------------------------- tile arrays

TILE_SHAPES = [(1, 1), (1, 5), (3, 1), (3, 7), (8, 64), (16, 256), (64, 3136)]


@pytest.mark.parametrize("channels, tiles", TILE_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_tile_array_spaces_planes_by_an_odd_number_of_cache_lines(channels, tiles, dtype):
    a = tile_array(channels, tiles, dtype, like=np.zeros(1, dtype))
    assert a.shape == (16, channels, tiles) and a.dtype == dtype
    stride = a.strides[0]
    assert stride % 64 == 0 and (stride // 64) % 2 == 1
    assert stride >= channels * tiles * a.itemsize
    assert a[0].flags.c_contiguous
    # The 16 planes are distinct memory.
    a[...] = np.arange(a.size, dtype=dtype).reshape(a.shape)
    np.testing.assert_array_equal(a, np.arange(a.size, dtype=dtype).reshape(a.shape))


@pytest.mark.parametrize("channels, tiles", TILE_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_plane_rows_of_a_tile_array_share_its_memory(channels, tiles, dtype):
    a = tile_array(channels, tiles, dtype, like=np.zeros(1, dtype))
    rows = _plane_rows(a)
    assert rows.shape == (16, a.strides[0] // a.itemsize)
    assert rows.flags.c_contiguous and rows.dtype == dtype
    assert np.shares_memory(rows, a)
    # [xi, channel * n_tiles + t] is a[xi, channel, t].
    rows[:, :channels * tiles] = np.arange(16 * channels * tiles).reshape(16, -1)
    np.testing.assert_array_equal(a, np.arange(a.size, dtype=dtype).reshape(a.shape))


def test_plane_rows_of_other_layouts(rng):
    a = rng.standard_normal((16, 3, 5))
    rows = _plane_rows(a)  # plain contiguous: the same memory, no padding
    assert rows.shape == (16, 15) and rows.flags.c_contiguous
    assert np.shares_memory(rows, a)
    np.testing.assert_array_equal(rows, a.reshape(16, 15))
    moved = np.ascontiguousarray(a.transpose(1, 0, 2)).transpose(1, 0, 2)  # (16, 3, 5) view
    rows = _plane_rows(moved)  # another layout: read from a copy
    assert rows.flags.c_contiguous
    np.testing.assert_array_equal(rows[:, :15], a.reshape(16, 15))


def _layouts(a):
    """`a` (16, C, T) in several memory layouts, all holding the same numbers."""
    padded = tile_array(*a.shape[1:], a.dtype, like=a)
    padded[...] = a
    moved = np.ascontiguousarray(a.transpose(1, 0, 2)).transpose(1, 0, 2)
    wide = np.zeros((16, a.shape[1], 2 * a.shape[2]), a.dtype)
    wide[:, :, ::2] = a
    every_other = np.zeros((32, *a.shape[1:]), a.dtype)
    every_other[::2] = a
    flipped = np.ascontiguousarray(a[::-1])[::-1]
    layouts = {
        "contiguous": a, "tile_array": padded, "transposed": moved, "strided_tiles": wide[..., ::2],
        "strided_planes": every_other[::2], "reversed_planes": flipped,
    }
    if a.dtype == np.float64:  # each read-only signature costs Numba a compile: one dtype will do
        layouts["read_only"] = a.copy()
        layouts["read_only"].flags.writeable = False
    return layouts


@pytest.mark.parametrize("dtype", DTYPES)
def test_output_transform_accepts_any_layout_of_m(rng, dtype):
    n, k, out_hw = 2, 3, (5, 6)
    m = rng.standard_normal((16, k, n_tiles(n, out_hw))).astype(dtype)
    bias = rng.standard_normal(k).astype(dtype)
    expected = output_transform_reference(m, bias, n, out_hw)
    for name, layout in _layouts(m).items():
        np.testing.assert_array_equal(layout, m)
        assert_close(output_transform(layout, bias, n, out_hw), expected, name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_input_grad_transform_accepts_any_layout_of_dv(rng, dtype):
    n, c, in_hw, padding, out_hw = 2, 3, (4, 7), (2, 1), (6, 7)
    tiles = tile_counts(*out_hw)
    dv = rng.standard_normal((16, c, n_tiles(n, out_hw))).astype(dtype)
    expected = input_grad_transform_reference(dv, n, in_hw, padding, tiles)
    for name, layout in _layouts(dv).items():
        np.testing.assert_array_equal(layout, dv)
        assert_close(input_grad_transform(layout, n, in_hw, padding, out_hw), expected, name)


def test_input_transform_and_gy_transform_accept_any_layout(rng):
    x = rng.standard_normal((3, 2, 5, 6))
    expected = input_transform_reference(x, (1, 0), tile_counts(5, 4))
    for view in [np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
                 np.ascontiguousarray(x[::-1])[::-1], np.repeat(x, 2, axis=3)[..., ::2]]:
        assert_close(input_transform(view, (1, 0), (5, 4)), expected)
    gy = rng.standard_normal((3, 2, 5, 7))
    expected = gy_transform_reference(gy)
    assert_close(gy_transform(np.ascontiguousarray(gy.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)),
                 expected)


# ----------------------------------------------------------------------------- threads


def _op_on_random_input(name, rng):
    """A call of the named dispatcher on fixed random input, several planes per thread."""
    n, c, in_hw, padding, out_hw = 3, 5, (9, 11), (1, 2), (9, 13)
    count = n_tiles(n, out_hw)
    if name == "input_transform":
        x = rng.standard_normal((n, c, *in_hw))
        return lambda: input_transform(x, padding, out_hw)
    if name == "output_transform":
        m, bias = rng.standard_normal((16, c, count)), rng.standard_normal(c)
        return lambda: output_transform(m, bias, n, out_hw)
    if name == "gy_transform":
        gy = rng.standard_normal((n, c, *out_hw))
        return lambda: gy_transform(gy)
    dv = rng.standard_normal((16, c, count))
    return lambda: input_grad_transform(dv, n, in_hw, padding, out_hw)


@pytest.mark.parametrize(
    "name", ["input_grad_transform", "input_transform", "output_transform", "gy_transform"]
)
def test_twins_do_not_depend_on_the_thread_count(rng, monkeypatch, name):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has a single thread here")
    monkeypatch.setattr(_launch, "PARALLEL_MIN_WORK", 0)  # always the parallel path
    op = _op_on_random_input(name, rng)
    threads = numba.get_num_threads()
    results = []
    try:
        for count in [1, 2, 1, 2]:
            numba.set_num_threads(count)
            results.append(op())
    finally:
        numba.set_num_threads(threads)
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])


# ----------------------------------------------------------------------------- bad input


def test_input_transform_rejects_wrong_geometry(rng):
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    with pytest.raises(
        ValueError,
        match=r"winograd input_transform: a 5x5 image with padding \(1, 1\) gives a 5x5 output "
        r"under a 3x3 stride-1 filter, got out_hw \(4, 5\)",
    ):
        input_transform(x, (1, 1), (4, 5))
    with pytest.raises(ValueError, match=r"a 5x5 image with padding \(2, 0\) gives a 7x3 output"):
        input_transform(x, (2, 0), (5, 5))
    with pytest.raises(ValueError, match=r"a 1x1 image with padding \(0, 0\) gives a -1x-1"):
        input_transform(x[:, :, :1, :1], (0, 0), (1, 1))
    with pytest.raises(
        ValueError,
        match=r"winograd input_transform: padding must be a pair of ints >= 0, got \(-1, 0\)",
    ):
        input_transform(x, (-1, 0), (3, 3))
    with pytest.raises(ValueError, match=r"out_hw must be a pair of ints >= 1, got \(5,\)"):
        input_transform(x, (1, 1), (5,))
    with pytest.raises(ValueError, match=r"winograd input_transform: x must have 4 dimensions"):
        input_transform(x[0], (1, 1), (5, 5))


def test_input_grad_transform_rejects_wrong_geometry(rng):
    dv = rng.standard_normal((16, 2, 9)).astype(np.float32)  # 1 image, 3x3 tiles: 5x5 or 6x6
    with pytest.raises(
        ValueError,
        match=r"winograd input_grad_transform: a 5x5 image with padding \(1, 1\) gives a 5x5 "
        r"output under a 3x3 stride-1 filter, got out_hw \(5, 6\)",
    ):
        input_grad_transform(dv, 1, (5, 5), (1, 1), (5, 6))
    with pytest.raises(ValueError, match=r"image size must be a pair of ints >= 1, got \(0, 5\)"):
        input_grad_transform(dv, 1, (0, 5), (1, 1), (5, 5))
    with pytest.raises(
        ValueError,
        match=r"winograd input_grad_transform: dv must have shape \(16, C, 18\) \(16 tile "
        r"positions, C, images x tiles\), got \(16, 2, 9\)",
    ):
        input_grad_transform(dv, 2, (5, 5), (1, 1), (5, 5))
    with pytest.raises(ValueError, match=r"dv must have shape \(16, C, 9\).*got \(15, 2, 9\)"):
        input_grad_transform(dv[:15], 1, (5, 5), (1, 1), (5, 5))
    with pytest.raises(ValueError, match="dv must have 3 dimensions"):
        input_grad_transform(dv[0], 1, (5, 5), (1, 1), (5, 5))


def test_filter_transforms_reject_bad_shapes(rng):
    w = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    with pytest.raises(
        ValueError,
        match=r"winograd filter_transform: expected 3x3 filters, got shape \(2, 3, 5, 5\)",
    ):
        filter_transform(w)
    with pytest.raises(ValueError, match=r"expected 3x3 filters, got shape \(2, 3, 3, 1\)"):
        filter_transform(w[:, :, :3, :1])
    with pytest.raises(ValueError, match="winograd filter_transform: w must have 4 dimensions"):
        filter_transform(w[0])
    with pytest.raises(
        ValueError,
        match=r"winograd filter_grad_transform: du must have shape \(16, K, C\), got \(15, 2, 3\)",
    ):
        filter_grad_transform(np.zeros((15, 2, 3), np.float32))


def test_output_transform_rejects_bad_m_and_bias(rng):
    m = rng.standard_normal((16, 3, 8)).astype(np.float32)  # 2 images of 2x2 tiles: 3x4 out
    with pytest.raises(
        ValueError,
        match=r"winograd output_transform: m must have shape \(16, K, 8\) \(16 tile positions, "
        r"K, images x tiles\), got \(15, 3, 8\)",
    ):
        output_transform(m[:15], None, 2, (3, 4))
    with pytest.raises(ValueError, match=r"m must have shape \(16, K, 12\).*got \(16, 3, 8\)"):
        output_transform(m, None, 3, (3, 4))
    with pytest.raises(ValueError, match=r"m must have shape \(16, K, 12\).*got \(16, 3, 8\)"):
        output_transform(m, None, 2, (5, 4))
    with pytest.raises(ValueError, match=r"out_hw must be a pair of ints >= 1, got \(0, 4\)"):
        output_transform(m, None, 2, (0, 4))
    with pytest.raises(
        ValueError, match=r"winograd output_transform: bias must have shape \(3,\), got \(4,\)"
    ):
        output_transform(m, np.zeros(4, np.float32), 2, (3, 4))
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\), got \(1, 3\)"):
        output_transform(m, np.zeros((1, 3), np.float32), 2, (3, 4))
    with pytest.raises(
        TypeError,
        match="winograd output_transform: bias must be float32 like the input, got float64",
    ):
        output_transform(m, np.zeros(3, np.float64), 2, (3, 4))
    with pytest.raises(TypeError, match="bias must be float32 or float64, got int64"):
        output_transform(m, np.zeros(3, np.int64), 2, (3, 4))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float16, np.complex128])
def test_dispatchers_reject_non_float_arrays(dtype):
    def bad(shape):
        return np.zeros(shape, dtype)

    def message(op, name):
        return f"winograd {op}: {name} must be float32 or float64, got {np.dtype(dtype)}"

    with pytest.raises(TypeError, match=message("filter_transform", "w")):
        filter_transform(bad((2, 3, 3, 3)))
    with pytest.raises(TypeError, match=message("filter_grad_transform", "du")):
        filter_grad_transform(bad((16, 2, 3)))
    with pytest.raises(TypeError, match=message("input_transform", "x")):
        input_transform(bad((1, 2, 4, 4)), (1, 1), (4, 4))
    with pytest.raises(TypeError, match=message("output_transform", "m")):
        output_transform(bad((16, 2, 4)), None, 1, (4, 4))
    with pytest.raises(TypeError, match=message("gy_transform", "gy")):
        gy_transform(bad((1, 2, 4, 4)))
    with pytest.raises(TypeError, match=message("input_grad_transform", "dv")):
        input_grad_transform(bad((16, 2, 4)), 1, (4, 4), (1, 1), (4, 4))


def test_dispatchers_reject_non_arrays():
    with pytest.raises(TypeError, match="winograd gy_transform: gy must be an array, got list"):
        gy_transform([[[[1.0]]]])
    with pytest.raises(TypeError, match="winograd filter_transform: w must be an array, got list"):
        filter_transform(np.zeros((1, 1, 3, 3)).tolist())


# ----------------------------------------------------------------------------- empty batch


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_batch_gives_empty_results(dtype):
    padding, in_hw, out_hw = (1, 0), (5, 4), (5, 2)
    x = np.zeros((0, 3, *in_hw), dtype)
    v = input_transform(x, padding, out_hw)
    assert v.shape == (16, 3, 0) and v.dtype == dtype
    dm = gy_transform(np.zeros((0, 2, *out_hw), dtype))
    assert dm.shape == (16, 2, 0) and dm.dtype == dtype
    y = output_transform(np.zeros((16, 2, 0), dtype), np.ones(2, dtype), 0, out_hw)
    assert y.shape == (0, 2, *out_hw) and y.dtype == dtype
    gx = input_grad_transform(np.zeros((16, 3, 0), dtype), 0, in_hw, padding, out_hw)
    assert gx.shape == (0, 3, *in_hw) and gx.dtype == dtype
    with reference_mode():
        assert input_transform(x, padding, out_hw).shape == v.shape
        assert gy_transform(np.zeros((0, 2, *out_hw), dtype)).shape == dm.shape
        assert output_transform(np.zeros((16, 2, 0), dtype), None, 0, out_hw).shape == y.shape
        gx_ref = input_grad_transform(np.zeros((16, 3, 0), dtype), 0, in_hw, padding, out_hw)
        assert gx_ref.shape == gx.shape


# ----------------------------------------------------------------------------- hypothesis


@st.composite
def small_geometries(draw):
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    assume(h + 2 * padding[0] - 2 >= 1 and w + 2 * padding[1] - 2 >= 1)
    return (n, c, h, w), padding


@settings(max_examples=40, deadline=None)
@given(geometry=small_geometries(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
@example(geometry=((1, 1, 1, 1), (1, 1)), dtype=np.float64, seed=0)  # one plane of one tile
def test_twins_match_references_on_random_geometry(geometry, dtype, seed):
    shape, padding = geometry
    rng = np.random.default_rng(seed)
    n, c = shape[:2]
    out_hw = out_size(shape, padding)
    tiles = tile_counts(*out_hw)
    x = rng.standard_normal(shape).astype(dtype)
    assert_close(input_transform(x, padding, out_hw), input_transform_reference(x, padding, tiles))
    dv = rng.standard_normal((16, c, n_tiles(n, out_hw))).astype(dtype)
    assert_close(
        input_grad_transform(dv, n, shape[2:], padding, out_hw),
        input_grad_transform_reference(dv, n, shape[2:], padding, tiles),
    )
