"""Convolution: im2col and col2im as a linear adjoint pair, and conv2d built on them.

conv2d = im2col + one batched GEMM + reshape. im2col's gradient is col2im and col2im's is
im2col, so conv2d's gradient and its grad-of-grad come from the tape with no extra code.
"""

from __future__ import annotations

from gpugrad.autograd.function import Function
from gpugrad.kernels import conv as conv_kernels
from gpugrad.tensor import Tensor


def pair(op: str, name: str, value, minimum: int) -> tuple[int, int]:
    """An int or a 2-tuple of ints as (h, w), each at least `minimum`."""
    if isinstance(value, int):
        value = (value, value)
    try:
        h, w = value
        h, w = int(h), int(w)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}") from None
    if h < minimum or w < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {(h, w)}")
    return h, w


def output_size(op, in_hw, kernel, stride, padding, dilation) -> tuple[int, int]:
    out = []
    for axis, n, k, s, p, d in zip("HW", in_hw, kernel, stride, padding, dilation):
        size = conv_kernels.conv_output_size(n, k, s, p, d)
        if size <= 0:
            raise ValueError(
                f"{op}: kernel size {d * (k - 1) + 1} (kernel {k}, dilation {d}) is larger than "
                f"the padded input {n + 2 * p} along {axis} (input {n}, padding {p})"
            )
        out.append(size)
    return tuple(out)


class Im2Col(Function):
    """(N, C, H, W) -> columns (N, C, kh, kw, out_h, out_w)."""

    def forward(self, x, kernel, stride, padding, dilation, pad_value=0.0):
        self.geometry = (kernel, stride, padding, dilation)
        self.in_hw = x.shape[2:]
        self.pad_value = pad_value
        self.produces_nonfinite = pad_value != 0.0  # max-pooling pads with -inf on purpose
        return conv_kernels.im2col(x, kernel, stride, padding, dilation, pad_value=pad_value,
                                   device=self.device)

    def backward(self, gcols):
        kernel, stride, padding, dilation = self.geometry
        return (col2im(gcols, self.in_hw, stride, padding, dilation),)


class Col2Im(Function):
    """The adjoint of Im2Col (with zero padding): each pixel gathers the columns touching it."""

    def forward(self, cols, in_hw, stride, padding, dilation):
        self.geometry = (cols.shape[2:4], stride, padding, dilation)
        return conv_kernels.col2im(cols, in_hw[0], in_hw[1], stride, padding, dilation,
                                   device=self.device)

    def backward(self, gx):
        return (im2col(gx, *self.geometry),)


def im2col(x: Tensor, kernel, stride, padding, dilation, pad_value=0.0) -> Tensor:
    """Columns of x. A pad_value other than 0 (max-pooling's -inf) is not linear, but its
    padded taps never receive gradient there, so col2im is still the right backward."""
    return Im2Col.apply(x, kernel=tuple(kernel), stride=tuple(stride), padding=tuple(padding),
                        dilation=tuple(dilation), pad_value=pad_value)


def col2im(cols: Tensor, in_hw, stride, padding, dilation) -> Tensor:
    return Col2Im.apply(cols, in_hw=tuple(in_hw), stride=tuple(stride), padding=tuple(padding),
                        dilation=tuple(dilation))


def _same_padding(op, kernel, dilation, stride):
    if stride != (1, 1):
        raise ValueError(f"{op}: padding='same' is not supported for strided convolutions")
    pads = []
    for k, d in zip(kernel, dilation):
        total = d * (k - 1)
        if total % 2:
            raise ValueError(
                f"{op}: padding='same' needs an even total padding; kernel {k} with dilation {d} "
                f"needs {total} (pad the input with F.pad instead)"
            )
        pads.append(total // 2)
    return tuple(pads)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation over NCHW input, as torch.nn.functional.conv2d."""
    op = "conv2d"
    x, w = input, weight
    if not isinstance(x, Tensor) or not isinstance(w, Tensor):
        raise TypeError(f"{op}: input and weight must be Tensors")
    if w.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D weight (out_channels, in_channels/groups, kh, kw), "
                         f"got shape {w.shape}")
    unbatched = x.ndim == 3
    if unbatched:
        x = x.reshape(1, *x.shape)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 3-D or 4-D input (N, C, H, W), got shape {input.shape}")
    for t, name in ((w, "weight"), (bias, "bias")):
        if t is not None and t.device != x.device:
            raise RuntimeError(f"{op}: input is on {x.device} but {name} is on {t.device}")
        if t is not None and t.dtype != x.dtype:
            raise TypeError(f"{op}: input has dtype {x.dtype} but {name} has dtype {t.dtype}")
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    n, c, h, wd = x.shape
    oc, cg, kh, kw = w.shape
    if c != cg * groups:
        raise ValueError(
            f"{op}: expected input with {cg * groups} channels (weight {tuple(w.shape)}, "
            f"groups={groups}), got {c} channels (input shape {tuple(x.shape)})"
        )
    if oc % groups:
        raise ValueError(f"{op}: out_channels {oc} is not divisible by groups {groups}")
    if bias is not None and tuple(bias.shape) != (oc,):
        raise ValueError(f"{op}: expected bias of shape ({oc},), got {tuple(bias.shape)}")
    stride = pair(op, "stride", stride, 1)
    dilation = pair(op, "dilation", dilation, 1)
    if padding == "valid":
        padding = (0, 0)
    elif padding == "same":
        padding = _same_padding(op, (kh, kw), dilation, stride)
    else:
        padding = pair(op, "padding", padding, 0)
    oh, ow = output_size(op, (h, wd), (kh, kw), stride, padding, dilation)

    cols = im2col(x, (kh, kw), stride, padding, dilation)  # (N, C, kh, kw, oh, ow)
    ckk = cg * kh * kw
    cols = cols.reshape(n, groups, ckk, oh * ow)
    w2 = w.reshape(1, groups, oc // groups, ckk)
    y = (w2 @ cols).reshape(n, oc, oh, ow)
    if bias is not None:
        y = y + bias.reshape(1, oc, 1, 1)
    return y.reshape(oc, oh, ow) if unbatched else y
