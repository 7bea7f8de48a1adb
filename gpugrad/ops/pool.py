"""Pooling: max_pool2d on the pooling kernels, avg_pool2d on the convolution machinery.

max_pool2d runs one kernel for the values and their argmax and one for the gradient, which
adds each gy at its argmax. That backward is linear in gy with the argmax fixed, and its adjoint
is a gather at the argmax, so the pair MaxPool2dBackward / GatherAtArgmax differentiate each
other to any order. avg_pool2d divides the window sums that im2col unfolds by PyTorch's
per-window divisor; it is a composite of differentiable ops, so its gradient differentiates
again. ceil_mode is supported by both.
"""

from __future__ import annotations

import numpy as np

from gpugrad import backend
from gpugrad.autograd.function import Function
from gpugrad.kernels import pool as pool_kernels
from gpugrad.ops.conv import im2col, output_size, pair
from gpugrad.tensor import Tensor


def _geometry(op, x, kernel_size, stride, padding, dilation):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor")
    if x.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a 3-D or 4-D input (N, C, H, W), got shape {x.shape}")
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
                  pad_value=pad_value, op=op)
    return cols.reshape(n, c, kernel[0] * kernel[1], oh, ow)


# ----------------------------------------------------------------------------- max_pool2d


class MaxPool2d(Function):
    """(N, C, H, W) -> the window maxima; keeps the argmax (flat h*W+w per plane) for backward."""

    keeps_inputs = False  # backward reads no input

    def forward(self, x, geometry, ceil_mode, return_indices):
        y, argmax = pool_kernels.max_pool2d_forward(x, *geometry, device=self.device,
                                                    ceil_mode=ceil_mode)
        self.argmax, self.in_hw = argmax, x.shape[2:]
        self.geometry, self.ceil_mode = geometry, ceil_mode
        # The indices are an output only when asked for: an unused integer output would cost
        # the engine a zero gradient array in every backward.
        return (y, argmax) if return_indices else y

    def backward(self, gy, _gindices=None):
        return (MaxPool2dBackward.apply(gy, argmax=self.argmax, in_hw=self.in_hw,
                                        geometry=self.geometry, ceil_mode=self.ceil_mode),)


class MaxPool2dBackward(Function):
    """gx: each gy added at its window's argmax. Linear in gy; its own gradient is a gather."""

    keeps_inputs = False  # backward reads no input

    def forward(self, gy, argmax, in_hw, geometry, ceil_mode):
        self.argmax, self.in_hw, self.geometry, self.ceil_mode = argmax, in_hw, geometry, ceil_mode
        # The argmax came from MaxPool2d's forward with this geometry: no need to check it (on
        # CUDA the check would wait on the GPU in every backward).
        return pool_kernels.max_pool2d_backward(gy, argmax, in_hw[0], in_hw[1], *geometry,
                                                device=self.device, ceil_mode=ceil_mode,
                                                check_argmax=False)

    def backward(self, ggx):
        return (GatherAtArgmax.apply(ggx, argmax=self.argmax, in_hw=self.in_hw,
                                     geometry=self.geometry, ceil_mode=self.ceil_mode),)


class GatherAtArgmax(Function):
    """(N, C, H, W) -> the value at each window's argmax: the adjoint of MaxPool2dBackward
    (and, with the argmax fixed, the max-pool itself)."""

    keeps_inputs = False  # backward reads no input

    def forward(self, gx, argmax, in_hw, geometry, ceil_mode):
        self.argmax, self.in_hw, self.geometry, self.ceil_mode = argmax, in_hw, geometry, ceil_mode
        xp = backend.array_module(gx)
        n, c, h, w = gx.shape
        planes = gx.reshape(n * c, h * w)
        picked = xp.take_along_axis(planes, argmax.reshape(n * c, -1), axis=1)
        return picked.reshape(argmax.shape)

    def backward(self, ggy):
        return (MaxPool2dBackward.apply(ggy, argmax=self.argmax, in_hw=self.in_hw,
                                        geometry=self.geometry, ceil_mode=self.ceil_mode),)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """As torch.nn.functional.max_pool2d; the indices are flat h*W+w positions (int64)."""
    op = "max_pool2d"
    geometry = _geometry(op, input, kernel_size, stride, padding, dilation)
    unbatched = input.ndim == 3
    x = input.reshape(1, *input.shape) if unbatched else input
    out = MaxPool2d.apply(x, geometry=geometry, ceil_mode=bool(ceil_mode),
                          return_indices=bool(return_indices))
    values, indices = out if return_indices else (out, None)
    if unbatched:
        values = values.reshape(values.shape[1:])
        indices = None if indices is None else indices.reshape(indices.shape[1:])
    return (values, indices) if return_indices else values


# ----------------------------------------------------------------------------- avg_pool2d


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """As torch.nn.functional.avg_pool2d: window sums over a per-window divisor."""
    from gpugrad.ops.pad import pad as pad_op

    op = "avg_pool2d"
    kernel, stride, padding, dilation = _geometry(op, input, kernel_size, stride, padding, 1)
    if divisor_override is not None and (isinstance(divisor_override, bool)
                                         or not isinstance(divisor_override, int)
                                         or divisor_override == 0):
        raise ValueError(f"{op}: divisor_override must be a nonzero int, got {divisor_override!r}")
    unbatched = input.ndim == 3
    x = input.reshape(1, *input.shape) if unbatched else input
    h, w = x.shape[2:]
    out_hw = _avg_output_size(op, (h, w), kernel, stride, padding, ceil_mode)
    # ceil_mode's last window may hang past the padding; zeros there add nothing to its sum,
    # so the overhang is zero padding on the far side and im2col sees an ordinary geometry.
    extra = [max(0, (o - 1) * s + k - (n + 2 * p))
             for o, s, k, n, p in zip(out_hw, stride, kernel, (h, w), padding)]
    if extra[0] or extra[1]:
        x = pad_op(x, (0, extra[1], 0, extra[0]))
    total = _windows(x, kernel, stride, padding, dilation, 0.0, op).sum(dim=2)
    divisor = _divisors((h, w), out_hw, kernel, stride, padding, count_include_pad)
    if divisor_override is not None:
        y = total / float(divisor_override)
    elif divisor is None:
        y = total * (1.0 / (kernel[0] * kernel[1]))
    else:
        y = total / Tensor(backend.to_device(divisor.astype(total.dtype), x.device), x.device)
    return y.reshape(y.shape[1:]) if unbatched else y


def _avg_output_size(op, in_hw, kernel, stride, padding, ceil_mode):
    out = []
    for axis, n, k, s, p in zip("HW", in_hw, kernel, stride, padding):
        size = pool_kernels._pool_output_size(n, k, s, p, 1, ceil_mode)
        if size <= 0:
            raise ValueError(
                f"{op}: kernel size {k} is larger than the padded input {n + 2 * p} along {axis} "
                f"(input {n}, padding {p})"
            )
        out.append(size)
    return tuple(out)


def _divisors(in_hw, out_hw, kernel, stride, padding, count_include_pad):
    """PyTorch's divisor of each window, (oh, ow) in NumPy, or None when it is kh*kw for all.

    With count_include_pad it counts the taps inside the padded input (a ceil_mode window
    hanging past the padding counts less); without, only the taps inside the image.
    """
    counts = []
    for n, o, k, s, p in zip(in_hw, out_hw, kernel, stride, padding):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, n)
        counts.append(end - start)
    divisor = counts[0].reshape(-1, 1) * counts[1].reshape(1, -1)
    return None if np.all(divisor == kernel[0] * kernel[1]) else divisor


def adaptive_avg_pool2d(input, output_size):
    """Average over PyTorch's adaptive bins: bin i spans [floor(i*H/oh), ceil((i+1)*H/oh))."""
    from gpugrad.ops.shape import stack

    op = "adaptive_avg_pool2d"
    if input.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a 3-D or 4-D input, got shape {input.shape}")
    h, w = input.shape[-2:]
    if h == 0 or w == 0:
        # An empty bin has no average (PyTorch raises too); batch and channels may be empty.
        raise ValueError(f"{op}: expected input to have non-zero size for non-batch dimensions, "
                         f"got shape {input.shape}")
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
