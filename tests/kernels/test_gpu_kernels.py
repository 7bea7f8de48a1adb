"""Every kernel on CuPy arrays on a real GPU, against the NumPy references (skipped without one)."""

import numpy as np
import pytest

import gpugrad.kernels as K
from cross_entropy_cases import infinite_and_nan_rows

pytestmark = pytest.mark.gpu

GEOMETRIES = [
    ((4, 3, 13, 11), (3, 3), (1, 1), (1, 1), (1, 1)),
    ((2, 5, 17, 9), (3, 2), (2, 3), (2, 1), (2, 3)),
    ((3, 2, 6, 6), (1, 1), (2, 2), (0, 0), (1, 1)),
]


@pytest.fixture
def rng():
    return np.random.default_rng(5)


@pytest.mark.parametrize("shape, ksize, stride, pad, dil", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", K.LAYOUTS)
def test_im2col_col2im_on_gpu(cp, rng, shape, ksize, stride, pad, dil, dtype, layout):
    x = rng.standard_normal(shape).astype(dtype)
    geo = (ksize, stride, pad, dil)
    cols = K.im2col(cp.asarray(x), *geo, pad_value=-np.inf, device="cuda", layout=layout)
    assert isinstance(cols, cp.ndarray)
    np.testing.assert_array_equal(
        cp.asnumpy(cols), K.im2col_reference(x, *geo, -np.inf, layout=layout)
    )
    c = rng.standard_normal(cols.shape).astype(dtype)
    img = K.col2im(cp.asarray(c), *shape[2:], *geo[1:], device="cuda", layout=layout)
    expected = K.col2im_reference(c, *shape[2:], *geo[1:], layout=layout)
    # Same (ky, kx) summation order as the reference: equal to the bit, and deterministic.
    np.testing.assert_array_equal(cp.asnumpy(img), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted, eps", [(False, 0.0), (True, 0.0), (True, 0.3), (False, 1.0)])
def test_softmax_cross_entropy_on_gpu(cp, rng, dtype, reduction, weighted, eps):
    n, c = 300, 1001
    logits = (rng.standard_normal((n, c)) * 5).astype(dtype)
    logits[0] *= dtype(2000)  # magnitude 1e4
    target = rng.integers(0, c, n)
    target[::7] = -100
    weight = rng.uniform(0.2, 2.0, c).astype(dtype) if weighted else None
    gloss = np.asarray(rng.standard_normal((n,) if reduction == "none" else ()), dtype=dtype)
    args = (weight, -100, eps, reduction)
    gpu_args = (None if weight is None else cp.asarray(weight), -100, eps, reduction)
    loss, lse, tw = K.softmax_cross_entropy_forward(
        cp.asarray(logits), cp.asarray(target), *gpu_args, device="cuda"
    )
    ref_loss, ref_lse, ref_tw = K.softmax_cross_entropy_forward_reference(logits, target, *args)
    tol = dict(rtol=2e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cp.asnumpy(loss), ref_loss, **tol)
    np.testing.assert_allclose(cp.asnumpy(lse), ref_lse, **tol)
    np.testing.assert_allclose(cp.asnumpy(tw), ref_tw, **tol)
    g = K.softmax_cross_entropy_backward(
        cp.asarray(logits), cp.asarray(target), lse, cp.asarray(gloss), *gpu_args,
        total_weight=tw, device="cuda",
    )  # fmt: skip
    ref_g = K.softmax_cross_entropy_backward_reference(
        logits, target, ref_lse, gloss, *args, total_weight=ref_tw
    )
    np.testing.assert_allclose(cp.asnumpy(g), ref_g, **tol)


def test_check_targets_on_gpu(cp):
    target = cp.asarray([0, 3, -100, 9])
    with pytest.raises(ValueError, match=r"target label 9 \(flat index 3\) is out of range"
                                         r".*\[0, 5\)"):
        K.check_targets(target, 5, -100)
    K.check_targets(target, 10, -100)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_forward_kernel_checks_labels_on_gpu(cp, rng, eps):
    """The CUDA forward checks labels in the kernel (no check before it): the first bad row,
    among many rows and blocks, is named, and nothing faults."""
    n, c = 5000, 100
    logits = cp.asarray(rng.standard_normal((n, c)).astype(np.float32))
    target = rng.integers(0, c, n)
    target[[4001, 4321]] = [2**40, -5]
    with pytest.raises(ValueError, match=r"target label 1099511627776 \(flat index 4001\) "
                                         r"is out of range; expected class indices in \[0, 100\)"):
        K.softmax_cross_entropy_forward(logits, cp.asarray(target), label_smoothing=eps,
                                        device="cuda")
    # The device is still healthy, and good labels pass.
    target[[4001, 4321]] = [0, 99]
    loss, _, _ = K.softmax_cross_entropy_forward(logits, cp.asarray(target), device="cuda")
    assert np.isfinite(float(loss))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_on_gpu(cp, rng, dtype):
    x = rng.standard_normal((3, 1000, 17)).astype(dtype)
    x.reshape(-1)[:3] = [0.0, np.nan, -0.0]
    gy = rng.standard_normal(x.shape).astype(dtype)
    y = K.relu_forward(cp.asarray(x), device="cuda")
    np.testing.assert_array_equal(cp.asnumpy(y), K.relu_reference(x))
    gx = K.relu_backward(y, cp.asarray(gy), device="cuda")
    np.testing.assert_array_equal(
        cp.asnumpy(gx), K.relu_backward_reference(K.relu_reference(x), gy)
    )


def test_kernels_follow_cupys_current_stream(cp, rng):
    # Queue work on a non-default stream: the kernel must run after the copy that made x, and
    # its result must be ready once that stream is synchronized.
    x = rng.standard_normal(1 << 20).astype(np.float32)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        y = K.relu_forward(cp.asarray(x), device="cuda")
        gx = K.relu_backward(y, cp.ones_like(y), device="cuda")
    stream.synchronize()
    np.testing.assert_array_equal(cp.asnumpy(y), K.relu_reference(x))
    np.testing.assert_array_equal(cp.asnumpy(gx), (x > 0).astype(np.float32))


def test_reference_mode_runs_on_cupy(cp, rng):
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    with K.reference_mode():
        cols = K.im2col(cp.asarray(x), (3, 3), (1, 1), (1, 1), (1, 1), device="cuda")
    assert isinstance(cols, cp.ndarray)
    np.testing.assert_array_equal(
        cp.asnumpy(cols), K.im2col_reference(x, (3, 3), (1, 1), (1, 1), (1, 1))
    )


def test_device_and_array_mismatch_is_an_error(cp):
    with pytest.raises(TypeError, match="expects CuPy arrays, got ndarray"):
        K.relu_forward(np.ones(3, np.float32), device="cuda")
    with pytest.raises(TypeError, match="device is cpu but got a ndarray on the GPU"):
        K.relu_forward(cp.ones(3, cp.float32), device="cpu")


def test_kernels_launch_through_cupy_and_match_numbas_launcher(cp, rng):
    from gpugrad.kernels import _launch

    x = rng.standard_normal((3, 4, 9, 8)).astype(np.float32)
    logits = rng.standard_normal((37, 1300)).astype(np.float32)
    target = rng.integers(0, 1300, 37)

    def run_all():
        cols = K.im2col(cp.asarray(x), (3, 3), (1, 1), (1, 1), (1, 1), device="cuda")
        img = K.col2im(cols, 9, 8, (1, 1), (1, 1), (1, 1), device="cuda")
        loss, lse, tw = K.softmax_cross_entropy_forward(
            cp.asarray(logits), cp.asarray(target), device="cuda")
        g = K.softmax_cross_entropy_backward(
            cp.asarray(logits), cp.asarray(target), lse, cp.asarray(np.float32(1)),
            total_weight=tw, device="cuda")
        y = K.relu_forward(cp.asarray(x), device="cuda")
        return [cp.asnumpy(a) for a in (cols, img, loss, lse, g, y)]

    before = dict(_launch.LAUNCHES)
    fast = run_all()
    assert _launch.LAUNCHES["cupy"] > before["cupy"]
    assert _launch.LAUNCHES["numba"] == before["numba"]
    with K.cuda_launcher_mode("numba"):
        slow = run_all()
    assert _launch.LAUNCHES["numba"] > before["numba"]
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("eps", [0.0, 0.1])  # the one-pass forward, and the two-pass one
@pytest.mark.parametrize("n, c", [(4096, 10), (64, 32000), (1, 1), (3000, 1000)])
def test_cross_entropy_class_counts_on_gpu(cp, rng, n, c, eps):
    logits = (rng.standard_normal((n, c)) * 3).astype(np.float32)
    target = rng.integers(0, c, n)
    loss, lse, tw = K.softmax_cross_entropy_forward(
        cp.asarray(logits), cp.asarray(target), label_smoothing=eps, device="cuda")
    ref_loss, ref_lse, ref_tw = K.softmax_cross_entropy_forward_reference(
        logits, target, label_smoothing=eps)
    np.testing.assert_allclose(cp.asnumpy(loss), ref_loss, rtol=2e-5, atol=1e-5)
    np.testing.assert_allclose(cp.asnumpy(lse), ref_lse, rtol=2e-5, atol=1e-5)
    g = K.softmax_cross_entropy_backward(
        cp.asarray(logits), cp.asarray(target), lse, cp.asarray(np.float32(1)),
        label_smoothing=eps, total_weight=tw, device="cuda")
    ref_g = K.softmax_cross_entropy_backward_reference(
        logits, target, ref_lse, np.float32(1), label_smoothing=eps, total_weight=ref_tw)
    np.testing.assert_allclose(cp.asnumpy(g), ref_g, rtol=2e-5, atol=1e-6)


def test_large_relu_and_im2col_on_gpu(cp, rng):
    # Sizes where every thread of the capped grid takes the four- and three-at-a-time paths.
    x = rng.standard_normal(8 * 2**20 + 3).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    y = K.relu_forward(cp.asarray(x), device="cuda")
    np.testing.assert_array_equal(cp.asnumpy(y), K.relu_reference(x))
    gx = K.relu_backward(y, cp.asarray(gy), device="cuda")
    expected = K.relu_backward_reference(K.relu_reference(x), gy)
    np.testing.assert_array_equal(cp.asnumpy(gx), expected)
    img = rng.standard_normal((16, 32, 30, 30)).astype(np.float32)
    for layout in K.LAYOUTS:
        geo = ((5, 5), (1, 1), (2, 2), (1, 1))
        cols = K.im2col(cp.asarray(img), *geo, device="cuda", layout=layout)
        expected = K.im2col_reference(img, *geo, layout=layout)
        np.testing.assert_array_equal(cp.asnumpy(cols), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_infinite_and_nan_rows_on_gpu(cp, dtype):
    """The one-pass forward's -inf / NaN / +inf handling on the hardware (exp2, shuffles)."""
    logits, target = infinite_and_nan_rows(dtype)
    loss, lse, _ = K.softmax_cross_entropy_forward(
        cp.asarray(logits), cp.asarray(target), reduction="none", device="cuda")
    ref_loss, ref_lse, _ = K.softmax_cross_entropy_forward_reference(logits, target,
                                                                     reduction="none")
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(cp.asnumpy(lse), ref_lse, rtol=2e-6)
        np.testing.assert_allclose(cp.asnumpy(loss), ref_loss, rtol=2e-5)


@pytest.mark.parametrize("layout", K.LAYOUTS)
def test_generic_im2col_and_col2im_for_large_kernels_on_gpu(cp, rng, layout):
    """7x8 = 56 taps: more than the sized kernels take, so the generic kernel runs."""
    from gpugrad.kernels import conv_cuda

    assert 7 * 8 > conv_cuda.MAX_SIZED_TAPS
    img = rng.standard_normal((5, 6, 40, 33)).astype(np.float32)
    geo = ((7, 8), (2, 1), (3, 3), (1, 2))
    cols = K.im2col(cp.asarray(img), *geo, pad_value=-np.inf, device="cuda", layout=layout)
    np.testing.assert_array_equal(cp.asnumpy(cols),
                                  K.im2col_reference(img, *geo, -np.inf, layout=layout))
    # col2im likewise: the generic gather past 49 taps.
    c = rng.standard_normal(cols.shape).astype(np.float32)
    got = K.col2im(cp.asarray(c), *img.shape[2:], *geo[1:], device="cuda", layout=layout)
    np.testing.assert_array_equal(cp.asnumpy(got),
                                  K.col2im_reference(c, *img.shape[2:], *geo[1:], layout=layout))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", K.LAYOUTS)
def test_col2im_compiled_for_every_size_on_gpu(cp, rng, dtype, layout):
    """Every kernel size col2im compiles a kernel for (1x1 to 7x7, and flat ones), strided,
    padded and dilated, on images larger than one grid of threads: equal to the reference to
    the bit, and to the generic gather kernel."""
    from gpugrad.kernels import conv_cuda

    for k, ksize in enumerate([(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7), (1, 7),
                               (5, 2)]):
        stride, pad, dil = (1 + k % 2, 1 + k % 3), (k % 4, ksize[1] // 2), (1 + k % 3, 1)
        shape = (3 + k % 2, 5, 37 + k, 29 + 2 * k)
        out = [K.conv_output_size(shape[2 + a], ksize[a], stride[a], pad[a], dil[a])
               for a in range(2)]
        c = rng.standard_normal((shape[0], shape[1], *ksize, *out)).astype(dtype)
        laid = c if layout == "batch" else np.ascontiguousarray(c.transpose(1, 2, 3, 0, 4, 5))
        got = K.col2im(cp.asarray(laid), *shape[2:], stride, pad, dil, device="cuda",
                       layout=layout)
        np.testing.assert_array_equal(cp.asnumpy(got),
                                      K.col2im_reference(c, *shape[2:], stride, pad, dil),
                                      err_msg=f"{ksize} s{stride} p{pad} d{dil}")
        generic = cp.full(shape, np.nan, dtype)
        conv_cuda.col2im_kernel[64, 256](cp.asarray(laid), *ksize, *stride, *pad, *dil,
                                         layout == "channel", generic)
        np.testing.assert_array_equal(cp.asnumpy(got), cp.asnumpy(generic))


def test_cross_entropy_precision_at_large_logits_on_gpu(cp):
    """Logits of 1e4 with a spread of 1: an O(1) loss to float32 precision on the hardware's
    exp2 (the one-pass forward takes x - max before scaling by log2(e))."""
    rng = np.random.default_rng(0)
    logits = (10000 + rng.standard_normal((64, 1100))).astype(np.float32)
    target = rng.integers(0, 1100, 64)
    loss, _, _ = K.softmax_cross_entropy_forward(
        cp.asarray(logits), cp.asarray(target), reduction="none", device="cuda")
    ref_loss, _, _ = K.softmax_cross_entropy_forward_reference(logits, target, reduction="none")
    np.testing.assert_allclose(cp.asnumpy(loss), ref_loss, rtol=5e-6)
