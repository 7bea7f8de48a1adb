"""Pooling on the convolution machinery: each channel is an image, im2col gathers the windows.

max_pool2d pads with -inf and takes the max over the window (the gradient goes to the argmax
through MaxDim's scatter, then col2im); avg_pool2d averages the window. Both are composites
of differentiable ops, so their gradients differentiate again.
"""

from __future__ import annotations

from gpugrad import backend
from gpugrad.ops.conv import im2col, output_size, pair
from gpugrad.ops.reduce import max as max_op
from gpugrad.tensor import Tensor


def _geometry(op, x, kernel_size, stride, padding, dilation, ceil_mode):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor")
    if x.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a 3-D or 4-D input (N, C, H, W), got shape {x.shape}")
    if ceil_mode:
        raise NotImplementedError(f"{op}: ceil_mode=True is not supported (see README)")
    kernel = pair(op, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None or stride == [] else pair(op, "stride", stride, 1)
    padding = pair(op, "padding", padding, 0)
    dilation = pair(op, "dilation", dilation, 1)
    for k, p in zip(kernel, padding):
        if p > k // 2:
            raise ValueError(
                f"{op}: padding should be at most half of the kernel size, got padding "
                f"{padding} for kernel {kernel}"
            )
    return kernel, stride, padding, dilation


def _windows(x, kernel, stride, padding, dilation, pad_value, op):
    """(N, C, kh*kw, oh, ow): the pooling windows of every channel."""
    n, c, h, w = x.shape
    oh, ow = output_size(op, (h, w), kernel, stride, padding, dilation)
    cols = im2col(x.reshape(n * c, 1, h, w), kernel, stride, padding, dilation,
                  pad_value=pad_value)
    return cols.reshape(n, c, kernel[0] * kernel[1], oh, ow)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    op = "max_pool2d"
    kernel, stride, padding, dilation = _geometry(op, input, kernel_size, stride, padding,
                                                  dilation, ceil_mode)
    x = input.reshape(1, *input.shape) if input.ndim == 3 else input
    windows = _windows(x, kernel, stride, padding, dilation, float("-inf"), op)
    values, arg = max_op(windows, dim=2)
    if input.ndim == 3:
        values, arg = values.reshape(values.shape[1:]), arg.reshape(arg.shape[1:])
    if return_indices:
        return values, _flat_indices(arg, input.shape[-2:], values.shape[-2:], kernel, stride,
                                     padding, dilation)
    return values


def _flat_indices(arg, in_hw, out_hw, kernel, stride, padding, dilation):
    """PyTorch's return_indices: the flat h*W+w position of each max in its input plane."""
    xp = backend.array_module(arg.data)
    a = arg.data
    kh_i, kw_i = a // kernel[1], a % kernel[1]
    oh = xp.arange(out_hw[0]).reshape(-1, 1)
    ow = xp.arange(out_hw[1]).reshape(1, -1)
    hh = oh * stride[0] - padding[0] + kh_i * dilation[0]
    ww = ow * stride[1] - padding[1] + kw_i * dilation[1]
    return Tensor((hh * in_hw[1] + ww).astype(backend.int64), arg.device)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    op = "avg_pool2d"
    kernel, stride, padding, dilation = _geometry(op, input, kernel_size, stride, padding, 1,
                                                  ceil_mode)
    x = input.reshape(1, *input.shape) if input.ndim == 3 else input
    windows = _windows(x, kernel, stride, padding, dilation, 0.0, op)
    total = windows.sum(dim=2)
    if divisor_override is not None:
        y = total / float(divisor_override)
    elif count_include_pad or padding == (0, 0):
        y = total * (1.0 / (kernel[0] * kernel[1]))
    else:
        y = total / _valid_counts(x, kernel, stride, padding, dilation, op)
    return y.reshape(y.shape[1:]) if input.ndim == 3 else y


def _valid_counts(x, kernel, stride, padding, dilation, op):
    """How many taps of each window fall inside the image (count_include_pad=False)."""
    xp = backend.array_module(x.data)
    ones = Tensor(xp.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype), x.device)
    return _windows(ones, kernel, stride, padding, dilation, 0.0, op).sum(dim=2)


def adaptive_avg_pool2d(input, output_size):
    """Average over PyTorch's adaptive bins: bin i spans [floor(i*H/oh), ceil((i+1)*H/oh))."""
    from gpugrad.ops.shape import stack

    op = "adaptive_avg_pool2d"
    if input.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a 3-D or 4-D input, got shape {input.shape}")
    h, w = input.shape[-2:]
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    oh, ow = (h if output_size[0] is None else output_size[0],
              w if output_size[1] is None else output_size[1])
    if oh <= 0 or ow <= 0:
        raise ValueError(f"{op}: output_size must be positive, got {output_size}")
    if (oh, ow) == (1, 1):
        return input.mean(dim=(-2, -1), keepdim=True)
    if h % oh == 0 and w % ow == 0:
        return avg_pool2d(input, (h // oh, w // ow))
    rows = []
    for i in range(oh):
        h0, h1 = (i * h) // oh, -(-((i + 1) * h) // oh)
        cols = []
        for j in range(ow):
            w0, w1 = (j * w) // ow, -(-((j + 1) * w) // ow)
            cols.append(input[..., h0:h1, w0:w1].mean(dim=(-2, -1)))
        rows.append(stack(cols, dim=-1))
    return stack(rows, dim=-2)
