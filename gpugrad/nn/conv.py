"""`Conv2d` and `ConvTranspose2d`: 2-D convolution and its transpose with PyTorch's arguments,
default init and (for Conv2d) padding modes."""

from __future__ import annotations

from gpugrad import factory
from gpugrad.nn import functional as F
from gpugrad.nn import init
from gpugrad.nn.module import Module
from gpugrad.nn.parameter import Parameter
from gpugrad.ops.conv import integer, pair

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _channels(op, in_channels, out_channels, groups):
    """The channel counts and groups as ints (F.conv2d's checks: ints within int64, no bool,
    float or str), both counts divisible by groups."""
    in_channels = integer(op, "in_channels", in_channels, 0)
    out_channels = integer(op, "out_channels", out_channels, 0)
    groups = integer(op, "groups", groups, 1)
    if in_channels % groups != 0:
        raise ValueError(f"{op}: in_channels must be divisible by groups, got "
                         f"in_channels={in_channels}, groups={groups}")
    if out_channels % groups != 0:
        raise ValueError(f"{op}: out_channels must be divisible by groups, got "
                         f"out_channels={out_channels}, groups={groups}")
    return in_channels, out_channels, groups


def _extra_repr(m) -> str:
    """PyTorch's _ConvNd.extra_repr: only the settings that differ from their defaults."""
    s = f"{m.in_channels}, {m.out_channels}, kernel_size={m.kernel_size}, stride={m.stride}"
    if m.padding != (0, 0):
        s += f", padding={m.padding}"
    if m.dilation != (1, 1):
        s += f", dilation={m.dilation}"
    if m.output_padding != (0, 0):
        s += f", output_padding={m.output_padding}"
    if m.groups != 1:
        s += f", groups={m.groups}"
    if m.bias is None:
        s += ", bias=False"
    if m.padding_mode != "zeros":
        s += f", padding_mode={m.padding_mode}"
    return s


class Conv2d(Module):
    """Applies a 2-D convolution over (N, C_in, H, W) (or unbatched (C_in, H, W)) input.

    weight: (out_channels, in_channels // groups, kH, kW); padding: int, pair, 'valid' or
    'same' (stride 1 only); padding_mode 'zeros', 'reflect', 'replicate' or 'circular'.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None):
        super().__init__()
        op = "Conv2d"
        in_channels, out_channels, groups = _channels(op, in_channels, out_channels, groups)
        self.kernel_size = pair(op, "kernel_size", kernel_size, 1)
        self.stride = pair(op, "stride", stride, 1)
        self.dilation = pair(op, "dilation", dilation, 1)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"{op}: invalid padding string {padding!r}, should be one of "
                                 "'valid', 'same'")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{op}: padding='same' is not supported for strided "
                                 f"convolutions (stride={self.stride})")
            self.padding = padding
        else:
            self.padding = pair(op, "padding", padding, 0)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{op}: padding_mode must be one of {_PADDING_MODES}, got "
                             f"{padding_mode!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.padding_mode = padding_mode
        self.output_padding = (0, 0)
        self.transposed = False
        # F.pad order (last dim first) of the padding a non-zeros padding_mode applies itself.
        if self.padding == "valid":
            self._reversed_padding_repeated_twice = [0, 0, 0, 0]
        elif self.padding == "same":
            rev = []
            for d, k in zip(reversed(self.dilation), reversed(self.kernel_size)):
                total = d * (k - 1)
                left = total // 2
                rev += [left, total - left]
            self._reversed_padding_repeated_twice = rev
        else:
            self._reversed_padding_repeated_twice = [
                p for p in reversed(self.padding) for _ in range(2)
            ]
        self.weight = Parameter(factory.empty(out_channels, in_channels // groups,
                                              *self.kernel_size, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(factory.empty(out_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_layer_init_(self.weight, self.bias)

    def _check_input(self, input) -> None:
        if input.ndim not in (3, 4):
            raise RuntimeError(
                f"Conv2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape "
                f"{input.shape}"
            )
        channels = input.shape[-3]
        if channels != self.in_channels:
            raise RuntimeError(
                f"Conv2d: expected input with in_channels={self.in_channels} channels (dim "
                f"{input.ndim - 3}), got {channels} channels in input of shape {input.shape}"
            )
        if input.dtype != self.weight.dtype:
            raise RuntimeError(
                f"Conv2d: input dtype {input.dtype} does not match weight dtype "
                f"{self.weight.dtype}"
            )

    def forward(self, input):
        self._check_input(input)
        if self.padding_mode != "zeros":
            padded = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return F.conv2d(padded, self.weight, self.bias, self.stride, 0, self.dilation,
                            self.groups)
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding,
                        self.dilation, self.groups)

    def extra_repr(self) -> str:
        return _extra_repr(self)


class ConvTranspose2d(Module):
    """Applies a 2-D transposed convolution over (N, C_in, H, W) (or unbatched) input.

    weight: (in_channels, out_channels // groups, kH, kW), as PyTorch's; forward(input,
    output_size=None) picks the output_padding that gives `output_size`, as PyTorch's.
    Only padding_mode='zeros' (PyTorch's only mode for it too).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__()
        op = "ConvTranspose2d"
        in_channels, out_channels, groups = _channels(op, in_channels, out_channels, groups)
        if padding_mode != "zeros":
            raise ValueError(f'{op}: only "zeros" padding_mode is supported, got '
                             f"{padding_mode!r}")
        self.kernel_size = pair(op, "kernel_size", kernel_size, 1)
        self.stride = pair(op, "stride", stride, 1)
        self.padding = pair(op, "padding", padding, 0)
        self.output_padding = pair(op, "output_padding", output_padding, 0)
        self.dilation = pair(op, "dilation", dilation, 1)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.padding_mode = padding_mode
        self.transposed = True
        self.weight = Parameter(factory.empty(in_channels, out_channels // groups,
                                              *self.kernel_size, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(factory.empty(out_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # PyTorch's fan-in for this weight is dim 1 times the kernel, as for Conv2d's.
        init.default_layer_init_(self.weight, self.bias)

    def _output_padding(self, input, output_size) -> tuple:
        """The output_padding that makes the output `output_size` (its last two entries)."""
        if output_size is None:
            return self.output_padding
        size = tuple(int(v) for v in output_size)[-2:]
        if len(size) != 2:
            raise ValueError(f"ConvTranspose2d: output_size must have at least 2 entries, got "
                             f"{tuple(output_size)}")
        extra = []
        for i, want in enumerate(size):
            smallest = ((input.shape[-2 + i] - 1) * self.stride[i] - 2 * self.padding[i]
                        + self.dilation[i] * (self.kernel_size[i] - 1) + 1)
            largest = smallest + self.stride[i] - 1
            if not smallest <= want <= largest:
                raise ValueError(
                    f"ConvTranspose2d: requested an output size of {size}, but valid sizes "
                    f"range from {smallest} to {largest} (for an input of {input.shape[-2:]})"
                )
            extra.append(want - smallest)
        return tuple(extra)

    def forward(self, input, output_size=None):
        if input.ndim not in (3, 4):
            raise RuntimeError(f"ConvTranspose2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) "
                               f"input, got shape {input.shape}")
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups,
                                  self.dilation)

    def extra_repr(self) -> str:
        return _extra_repr(self)
