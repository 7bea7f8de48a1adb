"""Convolution: im2col and col2im as a linear adjoint pair, and conv2d built on them.

conv2d's gradient is a triad of linear maps, each the others' adjoint, so every order of
gradient stays on the tape:
    Conv2d(x, w)          y  = conv2d(x, w)
    ConvInputGrad(gy, w)  gx = its adjoint in x applied to gy  (col2im(W^T @ gy))
    ConvWeightGrad(x, gy) gw = its adjoint in w                (gy @ im2col(x)^T)
The backward of each is written with the other two (as PyTorch's convolution double backward).
Each computes its numbers with one of two algorithms, modules with the same five functions:
    conv_gemm      im2col + one GEMM per group over the whole batch: every convolution
    conv_winograd  Winograd F(2x2, 3x3): 3x3, stride 1, dilation 1, on the CPU, with enough
                   channels; 2.25x fewer multiply-adds
chosen by _choose_algorithm (``gpugrad.kernels.use_conv_algorithm`` / GPUGRAD_CONV_ALGO).
Im2Col and Col2Im are also ops of their own (pooling uses them), each the other's gradient.
"""

from __future__ import annotations

from gpugrad import backend
from gpugrad.autograd.function import Function
from gpugrad.kernels import config as kernel_config
from gpugrad.kernels import conv as conv_kernels
from gpugrad.kernels.checks import FLOAT_DTYPES
from gpugrad.ops import conv_gemm, conv_winograd
from gpugrad.tensor import Tensor

# auto uses Winograd only when both C/groups and OC/groups reach this (see _choose_algorithm).
WINOGRAD_MIN_CHANNELS = 8


def pair(op: str, name: str, value, minimum: int) -> tuple[int, int]:
    """An int or a 2-tuple of ints as (h, w), each at least `minimum` and within int64.

    Python or NumPy integers only, as in PyTorch: a bool, float or str raises TypeError
    instead of being truncated (the checks are kernels.conv's, shared with im2col)."""
    return conv_kernels._check_positive_ints(op, name, value, minimum)


def integer(op: str, name: str, value, minimum: int) -> int:
    """A Python or NumPy integer (not bool) in [minimum, 2**63 - 1], as a Python int."""
    return conv_kernels._check_int(op, name, value, minimum)


def output_size(op, in_hw, kernel, stride, padding, dilation) -> tuple[int, int]:
    """(out_h, out_w) of a geometry checked by `pair`; raises naming `op` when the dilated
    kernel is larger than the padded input or the padded input does not fit in int64."""
    return conv_kernels._check_output_size(op, in_hw[0], in_hw[1],
                                           (kernel, stride, padding, dilation))


def check_float_input(op: str, x) -> None:
    """Convolution and average pooling compute in float32 or float64 only."""
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: expected a float32 or float64 input, got {x.dtype} (gpugrad's "
                        "convolution and pooling kernels compute in float32 and float64 only)")


class Im2Col(Function):
    """(N, C, H, W) -> columns (N, C, kh, kw, out_h, out_w)."""

    keeps_inputs = False  # backward reads no input

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

    keeps_inputs = False  # backward reads no input

    def forward(self, cols, in_hw, stride, padding, dilation):
        self.geometry = (cols.shape[2:4], stride, padding, dilation)
        return conv_kernels.col2im(cols, in_hw[0], in_hw[1], stride, padding, dilation,
                                   device=self.device)

    def backward(self, gx):
        return (im2col(gx, *self.geometry),)


def im2col(x: Tensor, kernel, stride, padding, dilation, pad_value=0.0, op="im2col") -> Tensor:
    """Columns of x. A pad_value other than 0 (max-pooling's -inf) is not linear, but its
    padded taps never receive gradient there, so col2im is still the right backward.

    `op` names the caller's op (avg_pool2d) in the errors: dtype, geometry, columns size."""
    check_float_input(op, x)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    geometry = conv_kernels._check_geometry(op, kernel, stride, padding, dilation)
    n, c, h, w = x.shape
    oh, ow = conv_kernels._check_output_size(op, h, w, geometry)
    shape = (n, c, *geometry[0], oh, ow)
    conv_kernels._check_nbytes(op, "im2col columns", shape, x.dtype)
    kernel, stride, padding, dilation = geometry
    try:
        return Im2Col.apply(x, kernel=kernel, stride=stride, padding=padding,
                            dilation=dilation, pad_value=pad_value)
    except MemoryError as e:
        raise MemoryError(f"{op}: out of memory for the im2col columns of shape {shape}: {e}") from e


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


def _batched_operands(op, input, weight, bias, weight_layout):
    """(x, w, unbatched): conv2d's and conv_transpose2d's shared checks of their operands (a
    4-D weight laid out as `weight_layout`, a float 3-D or 4-D input made 4-D, weight and bias
    on the input's device and of its dtype)."""
    x, w = input, weight
    if not isinstance(x, Tensor) or not isinstance(w, Tensor):
        raise TypeError(f"{op}: input and weight must be Tensors")
    if w.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D weight ({weight_layout}), got shape {w.shape}")
    unbatched = x.ndim == 3
    if unbatched:
        x = x.reshape(1, *x.shape)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 3-D or 4-D input (N, C, H, W), got shape "
                         f"{input.shape}")
    check_float_input(op, x)
    for t, name in ((w, "weight"), (bias, "bias")):
        if t is not None and t.device != x.device:
            raise RuntimeError(f"{op}: input is on {x.device} but {name} is on {t.device}")
        if t is not None and t.dtype != x.dtype:
            raise TypeError(f"{op}: input has dtype {x.dtype} but {name} has dtype {t.dtype}")
    return x, w, unbatched


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation over NCHW input, as torch.nn.functional.conv2d."""
    op = "conv2d"
    x, w, unbatched = _batched_operands(op, input, weight, bias,
                                        "out_channels, in_channels/groups, kh, kw")
    groups = integer(op, "groups", groups, 1)
    n, c, h, wd = x.shape
    oc, cg, kh, kw = w.shape
    if kh < 1 or kw < 1:
        raise ValueError(f"{op}: kernel size must be >= 1, got weight of shape {tuple(w.shape)}")
    if oc < groups:
        # PyTorch refuses this too ("expected weight to be at least 1 at dimension 0").
        raise ValueError(
            f"{op}: expected weight with at least groups={groups} output channels (dim 0), "
            f"got weight of shape {tuple(w.shape)}"
        )
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
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(f"{op}: invalid padding string {padding!r}, should be one of "
                             "'valid', 'same'")
        padding = (0, 0) if padding == "valid" else _same_padding(op, (kh, kw), dilation, stride)
    else:
        padding = pair(op, "padding", padding, 0)
    oh, ow = output_size(op, (h, wd), (kh, kw), stride, padding, dilation)
    # The im2col columns, (C, kh, kw, N, oh, ow), are the largest array either algorithm makes.
    cols_shape = (c, kh, kw, n, oh, ow)
    conv_kernels._check_nbytes(op, "im2col columns", cols_shape, x.dtype)

    geometry = ((kh, kw), stride, padding, dilation, groups)
    inputs = (x, w) if bias is None else (x, w, bias)
    try:
        y = Conv2d.apply(*inputs, geometry=geometry)
    except MemoryError as e:
        raise MemoryError(
            f"{op}: out of memory for input {tuple(x.shape)}, weight {tuple(w.shape)}, stride "
            f"{stride}, padding {padding}, dilation {dilation} (im2col columns {cols_shape}): {e}"
        ) from e
    return y.reshape(oc, oh, ow) if unbatched else y


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """2-D transposed convolution, as torch.nn.functional.conv_transpose2d: the adjoint of
    conv2d in its input (ConvInputGrad), so its gradients and their gradients come from the
    triad above. weight is (in_channels, out_channels / groups, kh, kw): conv2d's weight for
    the convolution this one transposes."""
    op = "conv_transpose2d"
    x, w, unbatched = _batched_operands(op, input, weight, bias,
                                        "in_channels, out_channels/groups, kh, kw")
    groups = integer(op, "groups", groups, 1)
    n, c, h, wd = x.shape
    cin, cout_g, kh, kw = w.shape
    if kh < 1 or kw < 1:
        raise ValueError(f"{op}: kernel size must be >= 1, got weight of shape {tuple(w.shape)}")
    if c != cin:
        raise ValueError(f"{op}: expected input with {cin} channels (weight {tuple(w.shape)}), "
                         f"got {c} channels (input shape {tuple(x.shape)})")
    if cin % groups:
        raise ValueError(f"{op}: in_channels {cin} is not divisible by groups {groups}")
    out_c = cout_g * groups
    if bias is not None and tuple(bias.shape) != (out_c,):
        raise ValueError(f"{op}: expected bias of shape ({out_c},), got {tuple(bias.shape)}")
    stride = pair(op, "stride", stride, 1)
    dilation = pair(op, "dilation", dilation, 1)
    padding = pair(op, "padding", padding, 0)
    output_padding = pair(op, "output_padding", output_padding, 0)
    for extra, s, d in zip(output_padding, stride, dilation):
        if extra >= max(s, d):
            raise ValueError(f"{op}: output padding must be smaller than either stride or "
                             f"dilation, got output_padding={output_padding}, stride={stride}, "
                             f"dilation={dilation}")
        if extra >= s:
            # Rows past the last stride step would make the transposed convolution's own
            # output size disagree with the input's; PyTorch allows this when dilation > stride.
            raise NotImplementedError(f"{op}: output_padding={output_padding} not smaller "
                                      f"than stride={stride} (only with dilation > stride)")
    out_hw = tuple((i - 1) * s - 2 * p + d * (k - 1) + e + 1 for i, s, p, d, k, e in
                   zip((h, wd), stride, padding, dilation, (kh, kw), output_padding))
    if min(out_hw) < 1:
        raise ValueError(f"{op}: the output would be {out_hw} (input {tuple(x.shape)}, weight "
                         f"{tuple(w.shape)}, stride {stride}, padding {padding}, dilation "
                         f"{dilation}, output_padding {output_padding}); it must be positive")
    conv_kernels._check_nbytes(op, "im2col columns", (out_c, kh, kw, n, h, wd), x.dtype)
    geometry = ((kh, kw), stride, padding, dilation, groups)
    y = ConvInputGrad.apply(x, w, geometry=geometry, in_hw=out_hw)
    if bias is not None:
        y = y + bias.reshape(1, out_c, 1, 1)
    return y.reshape(out_c, *out_hw) if unbatched else y


def _choose_algorithm(geometry, device, x_shape, w_shape):
    """conv_gemm or conv_winograd for this convolution (the switch: kernels.config)."""
    setting = kernel_config.conv_algorithm()
    if (
        setting == "im2col"
        or kernel_config.reference_enabled()  # the reference path is im2col's
        or backend.device(str(device)).type != "cpu"  # cuBLAS on im2col's columns
        or not conv_winograd.applies(geometry)
    ):
        return conv_gemm
    if setting == "winograd":
        return conv_winograd
    # Winograd's 16 GEMMs have C/groups as their inner size and OC/groups rows: with few
    # channels they run far below BLAS's peak and the transforms dominate (measured:
    # bench/results/conv-algorithms-cpu.json).
    groups = geometry[4]
    c_per_group, oc_per_group = x_shape[1] // groups, w_shape[0] // groups
    if min(c_per_group, oc_per_group) < WINOGRAD_MIN_CHANNELS:
        return conv_gemm
    return conv_winograd


class Conv2d(Function):
    """y = conv2d(x, w) (+ b) by the chosen algorithm, the bias added in its last pass."""

    def forward(self, x, w, b=None, geometry=None, algorithm=None):
        self.geometry = geometry
        self.algorithm = algorithm or _choose_algorithm(geometry, self.device, x.shape, w.shape)
        y, saved = self.algorithm.forward(x, w, b, geometry, self.device)
        # Keep the columns (or Winograd's V) for the weight gradient instead of building them
        # again.
        self.saved = saved
        return y

    def backward(self, gy):
        x, w = self.inputs[:2]
        needs = self.needs_input_grad
        gx = gw = gb = None
        algorithm = self.algorithm
        if needs[0] and needs[1]:
            # Both at once: the algorithm shares its work on gy (NHWC rows, or dM) between them.
            gx_data, gw_data = algorithm.grads(x.data, gy.data, w.data, self.geometry,
                                               self.device, self.saved)
            gx = ConvInputGrad.apply(gy, w, geometry=self.geometry, in_hw=x.shape[2:],
                                     result=gx_data)
            gw = ConvWeightGrad.apply(x, gy, geometry=self.geometry, w_shape=w.shape,
                                      result=gw_data)
        elif needs[0]:
            gx = ConvInputGrad.apply(gy, w, geometry=self.geometry, in_hw=x.shape[2:],
                                     algorithm=algorithm)
        elif needs[1]:
            gw = ConvWeightGrad.apply(x, gy, geometry=self.geometry, w_shape=w.shape,
                                      algorithm=algorithm, saved=self.saved)
        if len(needs) == 3 and needs[2]:
            gb = gy.sum(dim=(0, 2, 3))
        return (gx, gw) if len(needs) == 2 else (gx, gw, gb)


class ConvInputGrad(Function):
    """gx = the adjoint of conv2d in x applied to gy (col2im(W^T @ gy)), linear in gy and w."""

    def forward(self, gy, w, geometry, in_hw, algorithm=None, result=None):
        """`result`: gx already computed (by Conv2d's backward, with gw); recorded as is."""
        self.geometry = geometry
        if result is not None:
            return result
        n, oc = gy.shape[:2]
        x_shape = (n, w.shape[1] * geometry[4], *in_hw)
        algorithm = algorithm or _choose_algorithm(geometry, self.device, x_shape, w.shape)
        prepared = algorithm.prepare_gy(gy, geometry, self.device)
        return algorithm.input_grad(prepared, w, geometry, n, gy.shape[2:], in_hw, self.device)

    def backward(self, ggx):
        gy, w = self.inputs
        g_gy = g_w = None
        if self.needs_input_grad[0]:
            g_gy = Conv2d.apply(ggx, w, geometry=self.geometry)
        if self.needs_input_grad[1]:
            g_w = ConvWeightGrad.apply(ggx, gy, geometry=self.geometry, w_shape=w.shape)
        return g_gy, g_w


class ConvWeightGrad(Function):
    """gw = the adjoint of conv2d in w (gy @ im2col(x)^T over all images), linear in x and gy."""

    def forward(self, x, gy, geometry, w_shape, algorithm=None, saved=None, result=None):
        """`result`: gw already computed (by Conv2d's backward, with gx); recorded as is."""
        self.geometry = geometry
        if result is not None:
            return result
        algorithm = algorithm or _choose_algorithm(geometry, self.device, x.shape, w_shape)
        prepared = algorithm.prepare_gy(gy, geometry, self.device)
        return algorithm.weight_grad(x, prepared, geometry, w_shape, self.device, saved)

    def backward(self, ggw):
        x, gy = self.inputs
        g_x = g_gy = None
        if self.needs_input_grad[0]:
            g_x = ConvInputGrad.apply(gy, ggw, geometry=self.geometry, in_hw=x.shape[2:])
        if self.needs_input_grad[1]:
            g_gy = Conv2d.apply(x, ggw, geometry=self.geometry)
        return g_x, g_gy
