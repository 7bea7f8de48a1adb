"""Winograd passes block by block: the same convolution and gradients as im2col's reference,
on any block size and any thread count, and named errors."""

import numpy as np
import pytest

from gpugrad import host_blas
from gpugrad.kernels import conv_winograd_blocked as blocked
from gpugrad.kernels import reference_mode
from gpugrad.ops import conv_gemm

# (x shape, filters, padding, groups): odd sizes, padding 0 to past the kernel, groups,
# batches that do not divide into the blocks.
CASES = [
    ((2, 3, 7, 9), 4, (1, 1), 1),
    ((5, 6, 7, 9), 4, (1, 0), 2),
    ((3, 4, 5, 5), 6, (0, 2), 1),
    ((17, 8, 6, 5), 8, (3, 1), 4),
    ((9, 2, 1, 1), 3, (1, 1), 1),  # 1x1 images, all padding
    ((11, 3, 4, 4), 5, (0, 0), 1),  # one tile per image
]


def _case(shape, filters, groups, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((filters, shape[1] // groups, 3, 3)).astype(dtype)
    b = rng.standard_normal(filters).astype(dtype)
    return x, w, b, rng


def _reference(x, w, b, gy, padding, groups):
    """y, gx, gw by im2col + GEMM on the NumPy reference kernels."""
    geometry = ((3, 3), (1, 1), padding, (1, 1), groups)
    with reference_mode():
        y, cols = conv_gemm.forward(x, w, b, geometry, "cpu")
        if gy is None:
            return y
        gx, gw = conv_gemm.grads(x, gy, w, geometry, "cpu", cols)
    return y, gx, gw


@pytest.fixture(params=[None, 1], ids=["default-blocks", "one-image-blocks"])
def block_size(request, monkeypatch):
    """The default block size, or blocks of one image (many blocks, a ragged last run)."""
    if request.param:
        monkeypatch.setattr(blocked, "BLOCK_BYTES", 1)
    return request.param


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("shape, filters, padding, groups", CASES)
def test_passes_match_im2col_reference(block_size, shape, filters, padding, groups, dtype, tol):
    x, w, b, rng = _case(shape, filters, groups, dtype)
    y = blocked.forward(x, w, b, padding, groups)
    gy = rng.standard_normal(y.shape).astype(dtype)
    y_ref, gx_ref, gw_ref = _reference(x, w, b, gy, padding, groups)
    assert y.dtype == dtype and y.flags.c_contiguous
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol)
    gx, gw = blocked.grads(x, gy, w, padding, groups)
    np.testing.assert_allclose(gx, gx_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(gw, gw_ref, rtol=tol, atol=tol * shape[0])
    # Each gradient alone is the same numbers as the pair.
    np.testing.assert_array_equal(blocked.input_grad(gy, w, x.shape, padding, groups), gx)
    np.testing.assert_array_equal(blocked.weight_grad(x, gy, w.shape, padding, groups), gw)


def test_no_bias_and_strided_inputs():
    x, w, _, rng = _case((4, 6, 8, 7), 5, 1, np.float64)
    x_t = np.asfortranarray(x)  # any layout: copied to NCHW
    y = blocked.forward(x_t, w, None, (1, 1))
    np.testing.assert_allclose(y, _reference(x, w, None, None, (1, 1), 1), rtol=1e-10,
                               atol=1e-10)
    gy = rng.standard_normal(y.shape)[:, :, ::-1]  # negative strides
    _, gx_ref, gw_ref = _reference(x, w, None, np.ascontiguousarray(gy), (1, 1), 1)
    gx, gw = blocked.grads(x_t, gy, w, (1, 1))
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gw, gw_ref, rtol=1e-10, atol=1e-10)


def test_results_do_not_depend_on_the_thread_count(monkeypatch):
    """Blocks come from the batch alone and dU is summed in block order: bit-identical."""
    if host_blas.worker_count() < 2:
        pytest.skip("BLAS has a single thread here")
    x, w, b, rng = _case((24, 8, 9, 10), 16, 1, np.float32)
    gy = rng.standard_normal((24, 16, 9, 10)).astype(np.float32)
    results = []
    for workers in [host_blas.worker_count(), 1]:
        monkeypatch.setattr(host_blas, "worker_count", lambda: workers)
        results.append((blocked.forward(x, w, b, (1, 1)), *blocked.grads(x, gy, w, (1, 1))))
    for ours, theirs in zip(*results):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("n_img, per_image", [(64, 301056), (64, 1), (7, 1), (1, 10**9),
                                              (100, 5 * 10**5), (3, 10**6), (1000, 10**6),
                                              (0, 100)])
def test_blocks_cover_the_batch_in_order(n_img, per_image):
    bounds = blocked.block_bounds(n_img, per_image)
    if n_img == 0:
        assert bounds == []
        return
    assert bounds[0][0] == 0 and bounds[-1][1] == n_img
    assert all(e0 == s1 for (_, e0), (s1, _) in zip(bounds, bounds[1:]))
    sizes = [e - s for s, e in bounds]
    assert min(sizes) >= 1
    # At least MIN_BLOCKS blocks, unless blocks that small would hold less than
    # MIN_BLOCK_BYTES (or MAX_BLOCKS needs larger ones); never fewer images to a block than
    # that minimum, the batch and the cache budget allow.
    assert (len(bounds) >= min(n_img, blocked.MIN_BLOCKS)
            or sizes[0] * per_image <= blocked.MIN_BLOCK_BYTES
            or sizes[0] == -(-n_img // blocked.MAX_BLOCKS))
    assert sizes[0] >= min(n_img, max(1, blocked.MIN_BLOCK_BYTES // per_image),
                           max(1, blocked.BLOCK_BYTES // per_image))
    # Within the cache budget, unless a block is a single image or the batch needs larger
    # blocks to stay within MAX_BLOCKS.
    assert len(bounds) <= blocked.MAX_BLOCKS
    assert (max(sizes) == 1 or max(sizes) * per_image <= blocked.BLOCK_BYTES
            or max(sizes) == -(-n_img // blocked.MAX_BLOCKS))


def test_bad_input_is_named():
    x, w, b, rng = _case((2, 4, 5, 5), 3, 1, np.float32)
    with pytest.raises(ValueError, match=r"winograd forward: .*groups=3"):
        blocked.forward(x, w, b, (1, 1), groups=3)
    with pytest.raises(ValueError, match=r"winograd forward: expected a 4-D input and "
                                         r"\(K, C/groups, 3, 3\) filters"):
        blocked.forward(x, w[:, :, :2], b, (1, 1))
    with pytest.raises(TypeError, match=r"winograd forward: x is float32 but w is float64; "
                                        r"expected one dtype for all"):
        blocked.forward(x, w.astype(np.float64), b, (1, 1))
    with pytest.raises(ValueError, match=r"winograd forward: bias must have shape \(3,\)"):
        blocked.forward(x, w, b[:2], (1, 1))
    with pytest.raises(ValueError, match=r"winograd forward: a 2x2 input with padding \(0, 0\) is smaller"):
        blocked.forward(x[:, :, :2, :2], w, b, (0, 0))
    with pytest.raises(TypeError, match=r"winograd forward: runs on the CPU only; x is a list"):
        blocked.forward([1.0], w, b, (1, 1))
    gy = np.zeros((2, 3, 5, 4), np.float32)
    with pytest.raises(ValueError, match=r"winograd grads: expected gy of shape \(2, 3, 5, 5\), "
                                         r"got \(2, 3, 5, 4\)"):
        blocked.grads(x, gy, w, (1, 1))
    with pytest.raises(TypeError, match=r"winograd input_grad: gy is float64 but w is float32"):
        blocked.input_grad(np.zeros((2, 3, 5, 5)), w, x.shape, (1, 1))
    with pytest.raises(TypeError, match=r"winograd input_grad: runs on the CPU only; w is a list"):
        blocked.input_grad(np.zeros((2, 3, 5, 5), np.float32), [1.0], x.shape, (1, 1))
    with pytest.raises(ValueError, match=r"winograd input_grad: expected a 4-D input"):
        blocked.input_grad(np.zeros((2, 3, 5, 5), np.float32), w, (2, 4.0, 5, 5), (1, 1))


def test_an_empty_batch_and_numpy_integer_groups():
    x, w, b, rng = _case((0, 4, 5, 5), 4, 2, np.float64)
    y = blocked.forward(x, w, b, (1, 1), groups=np.int64(2))
    assert y.shape == (0, 4, 5, 5)
    gx, gw = blocked.grads(x, np.zeros(y.shape), w, (1, 1), groups=np.int64(2))
    assert gx.shape == x.shape and gw.shape == w.shape and not gw.any()


@pytest.mark.parametrize("n_img, per_image, sizes", [
    (64, 301056, [3] * 21 + [1]),  # 64x32x14x14, 64 filters: 0.86 MiB blocks
    (8, 49 * 1024, [8]),  # 8 small images: one block, run on one thread
    (64, 16 * 1024, [32, 32]),
    (8, 200704, [2] * 4),
    (1, 10**6, [1]),
])
def test_small_images_share_blocks(n_img, per_image, sizes):
    """Blocks of tiny work ran slower on two threads than on one (they took turns at the GIL):
    a block holds at least MIN_BLOCK_BYTES of tile arrays where the batch allows."""
    assert [e - s for s, e in blocked.block_bounds(n_img, per_image)] == sizes


def test_large_batches_get_larger_blocks_not_more():
    """The weight gradient keeps one dU per block: their number stays bounded."""
    bounds = blocked.block_bounds(10_000, 300_000)
    assert len(bounds) <= blocked.MAX_BLOCKS
    assert bounds[-1][1] == 10_000
