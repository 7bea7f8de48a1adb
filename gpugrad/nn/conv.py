"""`Conv2d`: 2-D convolution with PyTorch's arguments, default init and padding modes."""

from __future__ import annotations

from gpugrad import factory
from gpugrad.nn import functional as F
from gpugrad.nn import init
from gpugrad.nn.module import Module
from gpugrad.nn.parameter import Parameter
from gpugrad.ops.conv import integer, pair

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


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
        # The geometry checks are F.conv2d's (ints within int64, no bool, float or str).
        in_channels = integer(op, "in_channels", in_channels, 0)
        out_channels = integer(op, "out_channels", out_channels, 0)
        groups = integer(op, "groups", groups, 1)
        if in_channels % groups != 0:
            raise ValueError(f"{op}: in_channels must be divisible by groups, got "
                             f"in_channels={in_channels}, groups={groups}")
        if out_channels % groups != 0:
            raise ValueError(f"{op}: out_channels must be divisible by groups, got "
                             f"out_channels={out_channels}, groups={groups}")
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
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s
