"""im2col / col2im: CPU twin against the NumPy reference, the adjoint identity, PyTorch, errors."""

import numpy as np
import pytest

from gpugrad.kernels import (
    LAYOUTS,
    col2im,
    col2im_reference,
    conv_output_size,
    im2col,
    im2col_reference,
    reference_mode,
)

# (x shape, kernel_size, stride, padding, dilation): odd sizes, stride > kernel, dilation 2-3,
# padding > kernel // 2, 1x1 kernels, non-square everything.
GEOMETRIES = [
    ((2, 3, 7, 9), (3, 3), (1, 1), (1, 1), (1, 1)),
    ((1, 2, 11, 6), (3, 2), (2, 3), (2, 1), (2, 1)),
    ((3, 1, 9, 13), (2, 3), (3, 4), (0, 2), (1, 3)),
    ((2, 2, 5, 5), (1, 1), (1, 1), (0, 0), (1, 1)),
    ((1, 4, 8, 7), (1, 1), (3, 2), (1, 2), (1, 1)),
    ((2, 3, 6, 10), (3, 5), (1, 2), (4, 3), (3, 2)),
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0), (1, 1)),
    ((2, 5, 4, 17), (4, 4), (5, 5), (3, 3), (1, 1)),
    ((1, 3, 16, 15), (5, 3), (2, 2), (2, 1), (1, 1)),
    # Taps whose first in-image output lies past the row's end (found by hypothesis: the
    # twin's left padding ran into the next image's columns).
    ((2, 1, 1, 1), (3, 3), (1, 1), (2, 2), (2, 2)),
]

DTYPES = [np.float32, np.float64]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.mark.parametrize("shape, ksize, stride, pad, dil", GEOMETRIES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_im2col_cpu_matches_reference(rng, twin_threads, shape, ksize, stride, pad, dil, dtype,
                                      layout):
    x = rng.standard_normal(shape).astype(dtype)
    cols = im2col(x, ksize, stride, pad, dil, layout=layout)
    expected = im2col_reference(x, ksize, stride, pad, dil, layout=layout)
    assert cols.dtype == dtype and cols.flags.c_contiguous
    np.testing.assert_array_equal(cols, expected)


@pytest.mark.parametrize("shape, ksize, stride, pad, dil", GEOMETRIES[:3])
def test_channel_layout_is_the_batch_layout_transposed(rng, shape, ksize, stride, pad, dil):
    # (C, kh, kw, N, oh, ow) against (N, C, kh, kw, oh, ow): the same numbers, moved.
    x = rng.standard_normal(shape)
    batch = im2col(x, ksize, stride, pad, dil)
    channel = im2col(x, ksize, stride, pad, dil, layout="channel")
    assert channel.shape == (shape[1], *ksize, shape[0], *batch.shape[4:])
    np.testing.assert_array_equal(channel, batch.transpose(1, 2, 3, 0, 4, 5))
    c = rng.standard_normal(batch.shape)
    np.testing.assert_array_equal(
        col2im(np.ascontiguousarray(c.transpose(1, 2, 3, 0, 4, 5)), *shape[2:], stride, pad, dil,
               layout="channel"),
        col2im(c, *shape[2:], stride, pad, dil),
    )


@pytest.mark.parametrize("pad_value", [-np.inf, 7.5])
def test_im2col_pad_value_fills_only_off_image_taps(rng, pad_value):
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    cols = im2col(x, (3, 3), (2, 1), (2, 1), (1, 2), pad_value=pad_value)
    expected = im2col_reference(x, (3, 3), (2, 1), (2, 1), (1, 2), pad_value=pad_value)
    np.testing.assert_array_equal(cols, expected)
    zero_padded = im2col(x, (3, 3), (2, 1), (2, 1), (1, 2))
    off_image = cols == pad_value
    assert off_image.any()
    np.testing.assert_array_equal(zero_padded[off_image], 0.0)


@pytest.mark.parametrize("shape, ksize, stride, pad, dil", GEOMETRIES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_col2im_cpu_matches_reference(rng, twin_threads, shape, ksize, stride, pad, dil, dtype,
                                      layout):
    h, w = shape[2:]
    out_h = conv_output_size(h, ksize[0], stride[0], pad[0], dil[0])
    out_w = conv_output_size(w, ksize[1], stride[1], pad[1], dil[1])
    n, c = shape[:2]
    lead = (n, c, *ksize) if layout == "batch" else (c, *ksize, n)
    cols = rng.standard_normal((*lead, out_h, out_w)).astype(dtype)
    x = col2im(cols, h, w, stride, pad, dil, layout=layout)
    expected = col2im_reference(cols, h, w, stride, pad, dil, layout=layout)
    assert x.shape == shape and x.dtype == dtype
    # Both add each pixel's columns in (ky, kx) order, so the sums agree to the bit.
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("shape, ksize, stride, pad, dil", GEOMETRIES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_col2im_is_the_adjoint_of_im2col(rng, shape, ksize, stride, pad, dil, layout):
    # <im2col(x), c> == <x, col2im(c)> for random x and c, in float64.
    x = rng.standard_normal(shape)
    cols = im2col(x, ksize, stride, pad, dil, layout=layout)
    c = rng.standard_normal(cols.shape)
    folded = col2im(c, shape[2], shape[3], stride, pad, dil, layout=layout)
    lhs = np.vdot(cols, c)
    rhs = np.vdot(x, folded)
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


def test_col2im_is_deterministic(rng):
    cols = rng.standard_normal((4, 8, 3, 3, 9, 9)).astype(np.float32)
    first = col2im(cols, 9, 9, (1, 1), (1, 1), (1, 1))
    for _ in range(3):
        np.testing.assert_array_equal(col2im(cols, 9, 9, (1, 1), (1, 1), (1, 1)), first)


def test_reference_mode_routes_to_reference(rng, monkeypatch):
    from gpugrad.kernels import conv

    def broken(*args):
        raise AssertionError("the CPU twin ran in reference mode")

    monkeypatch.setattr(conv, "_im2col_cpu", broken)
    x = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    with reference_mode():
        cols = im2col(x, (2, 2), (1, 1), (0, 0), (1, 1))
    np.testing.assert_array_equal(cols, im2col_reference(x, (2, 2), (1, 1), (0, 0), (1, 1)))
    with pytest.raises(AssertionError, match="CPU twin"):
        im2col(x, (2, 2), (1, 1), (0, 0), (1, 1))


@pytest.mark.parametrize(
    "in_size, k, s, p, d", [(7, 3, 1, 1, 1), (11, 3, 2, 2, 2), (5, 1, 3, 0, 1), (14, 5, 3, 4, 3)]
)
def test_conv_output_size_matches_pytorch(in_size, k, s, p, d):
    torch = pytest.importorskip("torch")
    conv = torch.nn.Conv1d(1, 1, k, stride=s, padding=p, dilation=d, bias=False)
    assert conv_output_size(in_size, k, s, p, d) == conv(torch.zeros(1, 1, in_size)).shape[-1]


def test_conv_output_size_checks_its_arguments():
    # It returned -1 for stride -1 and raised ZeroDivisionError for stride 0.
    with pytest.raises(ValueError, match="conv_output_size: stride must be >= 1, got -1"):
        conv_output_size(4, 2, -1, 0, 1)
    with pytest.raises(ValueError, match="conv_output_size: stride must be >= 1, got 0"):
        conv_output_size(4, 2, 0, 0, 1)
    with pytest.raises(ValueError, match="conv_output_size: kernel size 3 .* larger than the "
                                         "padded input 2"):
        conv_output_size(2, 3, 1, 0, 1)


# ----------------------------------------------------------------------------- PyTorch


@pytest.mark.parametrize("shape, ksize, stride, pad, dil", GEOMETRIES)
def test_im2col_matches_torch_unfold(rng, shape, ksize, stride, pad, dil):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape)
    cols = im2col(x, ksize, stride, pad, dil)
    n, c = shape[:2]
    unfolded = torch.nn.functional.unfold(
        torch.from_numpy(x), ksize, dilation=dil, padding=pad, stride=stride
    )
    np.testing.assert_array_equal(cols.reshape(n, c * ksize[0] * ksize[1], -1), unfolded.numpy())


@pytest.mark.parametrize("shape, ksize, stride, pad, dil", GEOMETRIES)
def test_col2im_matches_torch_fold(rng, shape, ksize, stride, pad, dil):
    torch = pytest.importorskip("torch")
    n, c, h, w = shape
    out_h = conv_output_size(h, ksize[0], stride[0], pad[0], dil[0])
    out_w = conv_output_size(w, ksize[1], stride[1], pad[1], dil[1])
    cols = rng.standard_normal((n, c, *ksize, out_h, out_w))
    folded = torch.nn.functional.fold(
        torch.from_numpy(cols.reshape(n, -1, out_h * out_w)),
        (h, w),
        ksize,
        dilation=dil,
        padding=pad,
        stride=stride,
    )
    np.testing.assert_allclose(col2im(cols, h, w, stride, pad, dil), folded.numpy(), atol=1e-12)


# ----------------------------------------------------------------------------- bad input


def test_im2col_rejects_bad_input(rng):
    x = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    with pytest.raises(
        ValueError, match=r"im2col: x must have 4 dimensions, got shape \(2, 4, 4\)"
    ):
        im2col(x[0], (2, 2), (1, 1), (0, 0), (1, 1))
    with pytest.raises(TypeError, match="im2col: x must be float32 or float64, got int64"):
        im2col(x.astype(np.int64), (2, 2), (1, 1), (0, 0), (1, 1))
    with pytest.raises(ValueError, match=r"im2col: stride must be >= 1, got \(0, 1\)"):
        im2col(x, (2, 2), (0, 1), (0, 0), (1, 1))
    with pytest.raises(ValueError, match=r"im2col: padding must be >= 0"):
        im2col(x, (2, 2), (1, 1), (-1, 0), (1, 1))
    with pytest.raises(ValueError, match=r"im2col: kernel size 5 \(kernel 3, dilation 2\) is "
                                         r"larger than the padded input 4 along H"):
        im2col(x, (3, 3), (1, 1), (0, 0), (2, 2))
    with pytest.raises(TypeError, match="kernel_size must be an int or a pair"):
        im2col(x, (2, 2, 2), (1, 1), (0, 0), (1, 1))
    with pytest.raises(ValueError, match=r"im2col: layout must be one of .*got 'NCHW'"):
        im2col(x, (2, 2), (1, 1), (0, 0), (1, 1), layout="NCHW")
    # Past int64, Numba typed the stride uint64 and the columns came back all zeros.
    with pytest.raises(ValueError, match=r"im2col: stride must fit in int64 .*9223372036854775808"):
        im2col(x, (2, 2), (2**63, 1), (0, 0), (1, 1))
    with pytest.raises(TypeError, match=r"im2col: stride .* got float 2.5 in \(2.5, 1\)"):
        im2col(x, (2, 2), (2.5, 1), (0, 0), (1, 1))
    with pytest.raises(TypeError, match="im2col: pad_value must be a real number, got NoneType"):
        im2col(x, (2, 2), (1, 1), (1, 1), (1, 1), pad_value=None)  # was NaN padding


def test_col2im_rejects_mismatched_columns(rng):
    cols = rng.standard_normal((1, 2, 3, 3, 4, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="gives 3x3 columns, but cols has 4x4"):
        col2im(cols, 5, 5, (1, 1), (0, 0), (1, 1))
    with pytest.raises(ValueError, match="col2im: cols must have 6 dimensions"):
        col2im(cols[0], 6, 6, (1, 1), (0, 0), (1, 1))
    with pytest.raises(ValueError, match=r"col2im: layout must be one of .*got None"):
        col2im(cols, 6, 6, (1, 1), (0, 0), (1, 1), layout=None)


def test_cpu_device_rejects_cuda_device_without_gpu(rng):
    from gpugrad import backend

    if backend.cuda_is_available():
        pytest.skip("a CUDA device is available here")
    x = rng.standard_normal((1, 1, 3, 3)).astype(np.float32)
    with pytest.raises(RuntimeError, match="CUDA is unavailable"):
        im2col(x, (2, 2), (1, 1), (0, 0), (1, 1), device="cuda")


# ----------------------------------------------------------------------------- conv2d's layout moves


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 5, 7, 2), (64, 32, 14, 14), (2, 70, 1, 9)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_bias", [False, True])
def test_to_nchw_matches_reference(rng, twin_threads, shape, dtype, with_bias):
    from gpugrad.kernels.conv import to_nchw, to_nchw_reference

    y = rng.standard_normal(shape).astype(dtype)  # (C, N, H, W)
    y_before = y.copy()
    bias = rng.standard_normal(shape[0]).astype(dtype) if with_bias else None
    out = to_nchw(y, bias)
    assert out.shape == (shape[1], shape[0], *shape[2:]) and out.flags.c_contiguous
    reference = to_nchw_reference(y, bias)
    assert reference.flags.c_contiguous
    np.testing.assert_array_equal(y, y_before)  # neither touched its input
    np.testing.assert_array_equal(out, reference)
    expected = y.transpose(1, 0, 2, 3) + (0 if bias is None else bias.reshape(1, -1, 1, 1))
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 5, 7, 2), (64, 32, 14, 14), (2, 70, 1, 9)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_to_nhwc_matches_reference(rng, twin_threads, shape, dtype):
    from gpugrad.kernels.conv import to_nhwc, to_nhwc_reference

    x = rng.standard_normal(shape).astype(dtype)
    out = to_nhwc(x)
    assert out.shape == (shape[0], *shape[2:], shape[1]) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, to_nhwc_reference(x))
    np.testing.assert_array_equal(out, x.transpose(0, 2, 3, 1))


def test_layout_moves_reject_bad_input(rng):
    from gpugrad.kernels.conv import to_nchw, to_nhwc

    y = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=r"to_nchw: bias must have shape \(2,\), got \(3,\)"):
        to_nchw(y, np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="to_nchw: bias must be float32 like the input, got float64"):
        to_nchw(y, np.zeros(2, np.float64))
    with pytest.raises(ValueError, match=r"to_nhwc: x must have 4 dimensions, got shape \(3, 4, 4\)"):
        to_nhwc(y[0])
