"""Convolution: im2col and col2im as a linear adjoint pair, and conv2d built on them.

conv2d = im2col + one GEMM per group (+ bias) + reshape. The columns are built channel-major,
(C*kh*kw, N*oh*ow), so each GEMM covers the whole batch: one large product is faster than N
small ones (conv2d forward+backward 64x32x14x14, 64 filters: see bench/results). Its gradient is
a triad of linear maps, each the others' adjoint, so every order of gradient stays on the tape:
    Conv2d(x, w)          y  = W @ im2col(x)
    ConvInputGrad(gy, w)  gx = col2im(W^T @ gy)
    ConvWeightGrad(x, gy) gw = gy @ im2col(x)^T  (one product over all images)
The backward of each is written with the other two (as PyTorch's convolution double backward).
Im2Col and Col2Im are also ops of their own (pooling uses them), each the other's gradient.
"""

from __future__ import annotations

from gpugrad import backend
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

    geometry = ((kh, kw), stride, padding, dilation, groups)
    inputs = (x, w) if bias is None else (x, w, bias)
    y = Conv2d.apply(*inputs, geometry=geometry)
    return y.reshape(oc, oh, ow) if unbatched else y


def _columns(x, geometry, device):
    """im2col of x in the channel layout, as (groups, C/groups*kh*kw, N*out_h*out_w)."""
    kernel, stride, padding, dilation, groups = geometry
    cols = conv_kernels.im2col(x, kernel, stride, padding, dilation, device=device,
                               layout="channel")
    c, kh, kw, n, oh, ow = cols.shape
    return cols.reshape(groups, (c // groups) * kh * kw, n * oh * ow), (oh, ow)


def _grouped_weight(w, groups):
    oc = w.shape[0]
    return w.reshape(groups, oc // groups, -1)


def _pixel_rows(gy, groups, device):
    """gy (N, OC, oh, ow) as (groups, N*oh*ow, OC/groups): a row per output pixel (NHWC).

    Both gradient GEMMs read gy this way: gw = cols @ rows runs at 230 GFLOP/s on the bench
    machine where rows^T @ cols^T (the same product) ran at 160; W^T @ rows^T is as fast as
    with a channel-major gy."""
    n, oc, oh, ow = gy.shape
    rows = conv_kernels.to_nhwc(gy, device=device)
    return rows.reshape(n * oh * ow, groups, oc // groups).transpose(1, 0, 2)


def _conv_forward(x, w, b, geometry, device):
    """y (N, OC, oh, ow) = W @ im2col(x) (+ b): one GEMM per group over all images at once."""
    groups = geometry[4]
    cols, (oh, ow) = _columns(x, geometry, device)
    n, oc = x.shape[0], w.shape[0]
    y_cm = backend.matmul(_grouped_weight(w, groups), cols)  # (G, OC/G, N*P), channel-major
    # Back to NCHW in one pass that also adds the bias.
    y = conv_kernels.to_nchw(y_cm.reshape(oc, n, oh, ow), b, device=device)
    return y, cols


def _conv_input_grad(gy_rows, w, geometry, n, out_hw, in_hw, device):
    """gx = col2im(W^T @ gy): the adjoint of the forward in x. gy_rows from _pixel_rows."""
    kernel, stride, padding, dilation, groups = geometry
    w_t = _grouped_weight(w, groups).transpose(0, 2, 1)
    gcols = backend.matmul(w_t, gy_rows.transpose(0, 2, 1))  # (G, CKK/G, N*P)
    c = w.shape[1] * groups
    gcols = gcols.reshape(c, kernel[0], kernel[1], n, out_hw[0], out_hw[1])
    return conv_kernels.col2im(gcols, in_hw[0], in_hw[1], stride, padding, dilation,
                               device=device, layout="channel")


def _conv_weight_grad(x, gy_rows, geometry, w_shape, device, cols=None):
    """gw = gy @ im2col(x)^T over all images at once: the adjoint of the forward in w."""
    if cols is None:
        cols, _ = _columns(x, geometry, device)
    xp = backend.array_module(gy_rows)
    gw_t = xp.matmul(cols, gy_rows)  # (G, CKK/G, OC/G)
    return xp.ascontiguousarray(gw_t.transpose(0, 2, 1)).reshape(w_shape)


class Conv2d(Function):
    """y = conv2d(x, w) (+ b): im2col, one GEMM per group, the bias added in the same pass."""

    def forward(self, x, w, b=None, geometry=None):
        self.geometry = geometry
        y, cols = _conv_forward(x, w, b, geometry, self.device)
        # Keep the columns for the weight gradient instead of building them again.
        self.cols = cols
        return y

    def backward(self, gy):
        x, w = self.inputs[:2]
        needs = self.needs_input_grad
        gx = gw = gb = None
        # Both gradients read gy a row per pixel: transpose it once for the two.
        both = needs[0] and needs[1]
        gy_rows = _pixel_rows(gy.data, self.geometry[4], self.device) if both else None
        if needs[0]:
            gx = ConvInputGrad.apply(gy, w, geometry=self.geometry, in_hw=x.shape[2:],
                                     gy_rows=gy_rows)
        if needs[1]:
            gw = ConvWeightGrad.apply(x, gy, geometry=self.geometry, w_shape=w.shape,
                                      cols=self.cols, gy_rows=gy_rows)
        if len(needs) == 3 and needs[2]:
            gb = gy.sum(dim=(0, 2, 3))
        return (gx, gw) if len(needs) == 2 else (gx, gw, gb)


class ConvInputGrad(Function):
    """gx = col2im(W^T @ gy), linear in gy and in w."""

    def forward(self, gy, w, geometry, in_hw, gy_rows=None):
        self.geometry = geometry
        if gy_rows is None:
            gy_rows = _pixel_rows(gy, geometry[4], self.device)
        return _conv_input_grad(gy_rows, w, geometry, gy.shape[0], gy.shape[2:], in_hw,
                                self.device)

    def backward(self, ggx):
        gy, w = self.inputs
        g_gy = g_w = None
        if self.needs_input_grad[0]:
            g_gy = Conv2d.apply(ggx, w, geometry=self.geometry)
        if self.needs_input_grad[1]:
            g_w = ConvWeightGrad.apply(ggx, gy, geometry=self.geometry, w_shape=w.shape)
        return g_gy, g_w


class ConvWeightGrad(Function):
    """gw = gy @ im2col(x)^T over all images, linear in x and in gy."""

    def forward(self, x, gy, geometry, w_shape, cols=None, gy_rows=None):
        self.geometry = geometry
        if gy_rows is None:
            gy_rows = _pixel_rows(gy, geometry[4], self.device)
        return _conv_weight_grad(x, gy_rows, geometry, w_shape, self.device, cols)

    def backward(self, ggw):
        x, gy = self.inputs
        g_x = g_gy = None
        if self.needs_input_grad[0]:
            g_x = ConvInputGrad.apply(gy, ggw, geometry=self.geometry, in_hw=x.shape[2:])
        if self.needs_input_grad[1]:
            g_gy = Conv2d.apply(x, ggw, geometry=self.geometry)
        return g_x, g_gy
