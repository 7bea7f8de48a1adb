"""The CUDA kernels run under Numba's CUDA simulator, compared with the NumPy references.

Not collected by a plain ``pytest`` run (the file name does not start with ``test_``):
test_simulated_cuda_kernels.py runs it in a subprocess with NUMBA_ENABLE_CUDASIM=1, which must be
set before numba.cuda is first imported. The dispatchers get device="cuda" and NumPy arrays.
Shapes stay tiny: the simulator runs one Python thread per CUDA thread.
"""

import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip("run through test_simulated_cuda_kernels.py", allow_module_level=True)

from numba import cuda  # noqa: E402

from gpugrad import backend  # noqa: E402
from gpugrad.kernels import (  # noqa: E402
    col2im,
    col2im_reference,
    im2col,
    im2col_reference,
    relu_backward,
    relu_backward_reference,
    relu_forward,
    relu_reference,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_backward_reference,
    softmax_cross_entropy_forward,
    softmax_cross_entropy_forward_reference,
)
from gpugrad.kernels import conv_cuda  # noqa: E402

from cross_entropy_cases import infinite_and_nan_rows  # noqa: E402

GEOMETRIES = [
    ((2, 3, 5, 6), (3, 2), (2, 1), (1, 2), (1, 2)),
    ((1, 2, 7, 4), (1, 1), (3, 2), (0, 1), (1, 1)),
    # N > 2 with C > 1 and a real kernel: every index of the channel layout is exercised.
    ((3, 2, 4, 5), (2, 3), (1, 1), (1, 1), (1, 1)),
    # A 5-wide dilated kernel row: im2col's three-tap step and its remainder, taps off both edges.
    ((2, 2, 9, 11), (2, 5), (2, 2), (2, 3), (1, 2)),
    # One output column and one channel: divisions by 1 (divmod_by's shortcut).
    ((2, 1, 5, 1), (3, 1), (1, 1), (1, 0), (1, 1)),
    # 7x8 = 56 taps, more than MAX_SIZED_TAPS: the generic im2col kernel.
    ((2, 2, 9, 10), (7, 8), (1, 1), (3, 3), (1, 1)),
]


@pytest.fixture
def rng():
    return np.random.default_rng(11)


def test_the_simulator_is_what_runs():
    assert backend.uses_simulated_cuda()
    from gpugrad.kernels import conv_cuda

    assert type(conv_cuda.im2col_kernel).__name__ == "FakeCUDAKernel"


def test_geometries_cover_both_im2col_kernels():
    from gpugrad.kernels import conv_cuda

    taps = [kh * kw for _, (kh, kw), *_ in GEOMETRIES]
    assert min(taps) <= conv_cuda.MAX_SIZED_TAPS < max(taps)


@cuda.jit
def _divide(i, d, magic, q, r):
    k = cuda.grid(1)
    if k < i.size:
        q[k], r[k] = conv_cuda.divmod_by(i[k], d, magic)


@pytest.mark.parametrize("shape", [(2, 0, 4, 4), (0, 3, 4, 4)])
def test_im2col_of_no_channels_or_images(shape):
    x = np.zeros(shape, np.float32)
    geo = ((3, 3), (1, 1), (1, 1), (1, 1))
    cols = im2col(x, *geo, device="cuda")
    assert cols.shape == im2col(x, *geo, device="cpu").shape == (shape[0], shape[1], 3, 3, 4, 4)


def test_divmod_by_is_exact():
    """divmod_by against Python's divmod, from 0 to 2**40, divisors 1 to 2**20 (the bound
    i * d < 2**64 is met with room to spare by any array that fits in memory)."""
    from gpugrad.kernels import _simulator

    _simulator.install()
    gen = np.random.default_rng(5)
    for d in [1, 2, 3, 7, 56, 3136, 12345, 2**20 - 1, 2**20]:
        i = np.concatenate([np.arange(64), gen.integers(0, 2**40, 64), [2**40 - 1, d * 999],
                            d * gen.integers(0, 2**20, 30), d * gen.integers(1, 2**20, 30) - 1])
        i = i.astype(np.int64)
        q, r = np.empty_like(i), np.empty_like(i)
        _divide[-(-i.size // 64), 64](i, d, conv_cuda.division_magic(d), q, r)
        np.testing.assert_array_equal(q, i // d)
        np.testing.assert_array_equal(r, i % d)


@pytest.mark.parametrize("shape, ksize, stride, pad, dil", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["batch", "channel"])
def test_im2col_col2im(rng, shape, ksize, stride, pad, dil, dtype, layout):
    x = rng.standard_normal(shape).astype(dtype)
    geo = (ksize, stride, pad, dil)
    cols = im2col(x, *geo, pad_value=-np.inf, device="cuda", layout=layout)
    np.testing.assert_array_equal(cols, im2col_reference(x, *geo, -np.inf, layout=layout))
    c = rng.standard_normal(cols.shape).astype(dtype)
    img = col2im(c, *shape[2:], *geo[1:], device="cuda", layout=layout)
    # The gather sums in the same (ky, kx) order as the reference: equal to the bit.
    np.testing.assert_array_equal(img, col2im_reference(c, *shape[2:], *geo[1:], layout=layout))
    np.testing.assert_array_equal(img, col2im(c, *shape[2:], *geo[1:], layout=layout))


@pytest.mark.parametrize(
    "n, c, dtype, reduction, weighted, eps, ignore_index",
    [
        # 5 rows over a 2-block grid: the row loop wraps; 133 classes: a 2-warp row block whose
        # column loop wraps, and a backward whose grid (64 threads) is shorter than a row.
        (5, 133, np.float32, "mean", True, 0.2, -100),
        (5, 133, np.float64, "none", False, 0.0, -100),
        (5, 133, np.float32, "sum", True, 0.0, 1),
        # 7 classes: one warp per row, most lanes idle; the backward's grid spans 9 rows per
        # step, so its (row, class) carry wraps.
        (9, 7, np.float32, "mean", True, 0.3, 1),
        # 1100 and 1500 classes: the largest row block (8 warps), whose threads load four
        # logits at a time before the column loop's remainder.
        (4, 1100, np.float64, "mean", True, 0.1, -100),
        (5, 1500, np.float32, "none", False, 0.0, -100),
    ],
)
def test_softmax_cross_entropy(rng, n, c, dtype, reduction, weighted, eps, ignore_index):
    logits = (rng.standard_normal((n, c)) * 4).astype(dtype)
    logits[0, :3] = dtype(1e4)
    target = rng.integers(0, c, n)
    target[3] = ignore_index
    weight = rng.uniform(0.2, 2.0, c).astype(dtype) if weighted else None
    gloss = np.asarray(rng.standard_normal((n,) if reduction == "none" else ()), dtype=dtype)
    args = (weight, ignore_index, eps, reduction)
    loss, lse, tw = softmax_cross_entropy_forward(logits, target, *args, device="cuda")
    ref_loss, ref_lse, ref_tw = softmax_cross_entropy_forward_reference(logits, target, *args)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(loss, ref_loss, **tol)
    np.testing.assert_allclose(lse, ref_lse, **tol)
    np.testing.assert_allclose(tw, ref_tw, **tol)
    g = softmax_cross_entropy_backward(
        logits, target, lse, gloss, *args, total_weight=tw, device="cuda"
    )
    ref_g = softmax_cross_entropy_backward_reference(
        logits, target, ref_lse, gloss, *args, total_weight=ref_tw
    )
    np.testing.assert_allclose(g, ref_g, **tol)
    assert np.all(g[3] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu(rng, dtype):
    # 301 elements over 2 blocks of 32 threads: the grid-stride loop wraps 5 times.
    x = rng.standard_normal(301).astype(dtype)
    x[:3] = [0.0, np.nan, -0.0]
    gy = rng.standard_normal(301).astype(dtype)
    y = relu_forward(x, device="cuda")
    np.testing.assert_array_equal(y, relu_reference(x))
    np.testing.assert_array_equal(
        relu_backward(y, gy, device="cuda"), relu_backward_reference(y, gy)
    )


@pytest.mark.parametrize("n, c, weighted, eps", [
    (5, 133, False, 0.0),
    (19, 7, True, 0.2),
    (3, 1100, True, 0.0),
])  # fmt: skip
def test_gpu_variants_baseline_kernels_match_the_references(rng, n, c, weighted, eps):
    from gpugrad.bench import gpu_variants

    gpu_variants.check(np, n, c, rng, weighted, eps)


@pytest.mark.parametrize("n, c, weighted, eps", [(4, 133, False, 0.0), (3, 7, True, 0.0),
                                                 (3, 1100, True, 0.0), (3, 40, True, 0.2)])
def test_gpu_variants_run8_forward_matches_the_references(rng, n, c, weighted, eps):
    """The forward as runs 7 and 8 measured it, kept in gpu_variants as the baseline of the
    shipped one: -inf rows, logits of 1e4, ignored rows, class weights, both of its paths."""
    from gpugrad.bench import gpu_variants

    gpu_variants.check_run8_forward(np, n, c, rng, weighted, eps)


def test_gpu_variants_compares_the_two_forwards_bit_for_bit(rng, monkeypatch):
    """run8_forward_same_bits (NumPy standing in for CuPy) finds the two forwards equal here,
    where both run as Python, and tells a forward that is one ulp off apart."""
    import types

    from gpugrad.bench import gpu_variants
    from gpugrad.bench.kernels import cross_entropy_kernel_args
    from gpugrad.kernels import loss_cuda

    n, c = 4, 70
    logits = (rng.standard_normal((n, c)) * 3).astype(np.float32)
    target = rng.integers(0, c, n)
    _, lse, tw = softmax_cross_entropy_forward(logits, target, device="cuda")
    kargs, _ = cross_entropy_kernel_args(np, logits, target, lse, tw)
    xp = types.SimpleNamespace(full=np.full, stack=np.stack, array_equal=np.array_equal)
    assert gpu_variants.run8_forward_same_bits(xp, kargs)

    shipped = loss_cuda.softmax_cross_entropy_forward

    def one_ulp_off(*args):
        shipped(*args)
        args[9][:] = np.nextafter(args[9], np.float32(np.inf))  # the row losses

    monkeypatch.setattr(loss_cuda, "softmax_cross_entropy_forward", one_ulp_off)
    assert not gpu_variants.run8_forward_same_bits(xp, kargs)


def test_gpu_variants_forward_launch_shapes_give_the_shipped_bits(rng, monkeypatch):
    """Every launch shape gpu_variants times the shipped forward on computes the shipped
    launch's numbers (the kernel takes its rows a block-sized group at a time): 19 rows on
    blocks of 4, 8 and 16 rows and on a grid of 8 blocks (one SM's worth), so that the last
    group is partial. Rows a launch missed would stay NaN and differ."""
    import types

    from gpugrad.bench import gpu_variants
    from gpugrad.bench.kernels import cross_entropy_kernel_args

    n, c = 19, 70
    logits = (rng.standard_normal((n, c)) * 3).astype(np.float32)
    target = rng.integers(0, c, n)
    target[::4] = -100
    _, lse, tw = softmax_cross_entropy_forward(logits, target, device="cuda")
    kargs, _ = cross_entropy_kernel_args(np, logits, target, lse, tw)
    xp = types.SimpleNamespace(full=np.full, stack=np.stack, array_equal=np.array_equal)
    assert gpu_variants.forward_launches_same_bits(xp, kargs, sms=1) == {
        name: True for name in gpu_variants.FORWARD_LAUNCHES}
    # The check itself tells a launch that changed one number apart.
    real = gpu_variants.launch_forward_as

    def one_ulp_off(rows, blocks, n_rows, kargs, outs, flag):
        real(rows, blocks, n_rows, kargs, outs, flag)
        outs[2][-1] = np.nextafter(outs[2][-1], np.float32(np.inf))  # the last row's loss

    monkeypatch.setattr(gpu_variants, "launch_forward_as", one_ulp_off)
    assert not any(gpu_variants.forward_launches_same_bits(xp, kargs, sms=1).values())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_pass_forward_on_infinite_and_nan_rows(dtype):
    """The one-pass forward on rows a two-pass kernel handles by its final max gives what the
    reference gives, NaN included."""
    logits, target = infinite_and_nan_rows(dtype)
    loss, lse, _ = softmax_cross_entropy_forward(logits, target, reduction="none", device="cuda")
    ref_loss, ref_lse, _ = softmax_cross_entropy_forward_reference(logits, target,
                                                                   reduction="none")
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(lse, ref_lse, rtol=2e-6)
        np.testing.assert_allclose(loss, ref_loss, rtol=2e-5)
    assert np.isfinite(loss[[0, 4, 5]]).all() and np.isnan(lse[[1, 2, 3]]).all()


def test_one_pass_forward_keeps_precision_at_large_logits():
    """Logits of 1e4 with a spread of 1: the loss is O(1) and must keep float32 precision.
    exp2(x * log2e - top * log2e) lost the rounding of top * log2e (7e-6 of the loss here)."""
    rng = np.random.default_rng(0)
    logits = (10000 + rng.standard_normal((4, 1100))).astype(np.float32)
    target = rng.integers(0, 1100, 4)
    loss, lse, _ = softmax_cross_entropy_forward(logits, target, reduction="none", device="cuda")
    ref_loss, ref_lse, _ = softmax_cross_entropy_forward_reference(logits, target,
                                                                   reduction="none")
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)


@pytest.mark.parametrize("eps", [0.0, 0.2])  # the one-pass and the two-pass forward
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_forward_kernel_checks_the_labels(rng, eps, reduction):
    """No label check before the CUDA kernel: the kernel flags the first bad row itself (rows
    13 and 17 lie past the first grid-stride step), the dispatcher names its label."""
    n, c = 21, 40
    logits = rng.standard_normal((n, c)).astype(np.float32)
    target = rng.integers(0, c, n)
    target[[2, 13, 17]] = [-100, c, -1]
    with pytest.raises(ValueError, match=rf"cross_entropy: target label {c} \(flat index 13\) "
                                         rf"is out of range; expected class indices in "
                                         rf"\[0, {c}\) or ignore_index=-100"):
        softmax_cross_entropy_forward(logits, target, label_smoothing=eps, reduction=reduction,
                                      device="cuda")


def test_forward_kernel_marks_bad_rows_nan_and_leaves_the_rest():
    from gpugrad.kernels import loss as L
    from gpugrad.kernels import loss_cuda

    rng = np.random.default_rng(3)
    n, c = 11, 70
    logits = rng.standard_normal((n, c)).astype(np.float32)
    target = rng.integers(0, c, n)
    target[4] = -100
    ref_loss, ref_lse, _ = softmax_cross_entropy_forward_reference(logits, target,
                                                                   reduction="none")
    bad_rows = [9, 6]
    target[bad_rows] = [2**40, -7]
    outs = [np.full(n, 123.0, np.float32) for _ in range(4)]
    first_bad = np.full(1, n, np.int64)
    args = L._kernel_args(np, logits, target, None, -100, 0.0)
    loss_cuda.softmax_cross_entropy_forward(*args, *outs, first_bad, "cuda")
    row_max, row_log_sum, row_loss, row_weight = outs
    assert first_bad[0] == 6
    assert np.isnan(row_loss[bad_rows]).all() and np.isnan(row_weight[bad_rows]).all()
    good = np.setdiff1d(np.arange(n), bad_rows)
    np.testing.assert_allclose(row_loss[good], ref_loss[good], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(row_max + row_log_sum.astype(np.float64), ref_lse, rtol=1e-6)


def test_backward_on_cuda_checks_labels_unless_told_they_were():
    rng = np.random.default_rng(5)
    n, c = 6, 9
    logits = rng.standard_normal((n, c)).astype(np.float32)
    target = rng.integers(0, c, n)
    _, lse, tw = softmax_cross_entropy_forward(logits, target, device="cuda")
    target[1] = 9
    with pytest.raises(ValueError, match=r"cross_entropy_backward: target label 9 "
                                         r"\(flat index 1\) is out of range"):
        softmax_cross_entropy_backward(logits, target, lse, np.float32(1.0), total_weight=tw,
                                       device="cuda")


def test_unchecked_bad_labels_in_the_cuda_backward_give_nan_rows():
    """check_labels=False with a label out of range (a broken promise): the kernel never uses it
    as an index (the simulator would raise IndexError), the row's gradient is NaN."""
    rng = np.random.default_rng(8)
    n, c = 7, 4
    logits = rng.standard_normal((n, c)).astype(np.float32)
    target = rng.integers(0, c, n)
    _, lse, _ = softmax_cross_entropy_forward(logits, target, reduction="none", device="cuda")
    gloss = np.ones(n, np.float32)
    ref = softmax_cross_entropy_backward_reference(logits, target, lse, gloss, reduction="none")
    target[[2, 5]] = [c, -1]
    g = softmax_cross_entropy_backward(logits, target, lse, gloss, reduction="none",
                                       device="cuda", check_labels=False)
    assert np.isnan(g[[2, 5]]).all()
    good = [0, 1, 3, 4, 6]
    np.testing.assert_allclose(g[good], ref[good], rtol=1e-5, atol=1e-6)
