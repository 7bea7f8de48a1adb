"""LayerNorm / GroupNorm, as PyTorch's: statistics from the input itself in training and in
evaluation alike, so no running buffers; only the optional affine parameters."""

from __future__ import annotations

from gpugrad import factory
from gpugrad.nn import init
from gpugrad.nn.functional_norm import group_norm, layer_norm, normalized_shape_tuple
from gpugrad.nn.module import Module
from gpugrad.nn.parameter import Parameter
from gpugrad.ops.conv import integer


def register_affine(module: Module, shape, affine: bool, bias: bool, dtype, device) -> None:
    """The norm layers' learnable scale and shift: `weight` and (with `bias`) `bias`
    Parameters of `shape` when `affine`, registered as None otherwise, as PyTorch's do."""
    if affine:
        module.weight = Parameter(factory.empty(shape, dtype=dtype, device=device))
        if bias:
            module.bias = Parameter(factory.empty(shape, dtype=dtype, device=device))
        else:
            module.register_parameter("bias", None)
    else:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)


def reset_affine(module: Module) -> None:
    """Scale ones, shift zeros (where they exist)."""
    if module.weight is not None:
        init.ones_(module.weight)
    if module.bias is not None:
        init.zeros_(module.bias)


class LayerNorm(Module):
    """Layer norm over the trailing dims `normalized_shape` (an int: the last dim), with a
    per-element weight and bias of that shape when `elementwise_affine` (`bias=False` keeps
    the weight only)."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.normalized_shape = normalized_shape_tuple("LayerNorm", normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        register_affine(self, self.normalized_shape, elementwise_affine, bias, dtype, device)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_affine(self)

    def forward(self, input):
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


class GroupNorm(Module):
    """Group norm of (N, C, *) input: C = num_channels split into num_groups groups, with a
    per-channel weight and bias when `affine` (`bias=False`, keyword as in PyTorch 2.13,
    keeps the weight only)."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, device=None, dtype=None, *, bias: bool = True):
        super().__init__()
        num_groups = integer("GroupNorm", "num_groups", num_groups, 1)
        num_channels = integer("GroupNorm", "num_channels", num_channels, 0)
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        register_affine(self, num_channels, affine, bias, dtype, device)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_affine(self)

    def forward(self, input):
        return group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, "
                f"affine={self.affine}, bias={self.bias is not None}")


__all__ = ["GroupNorm", "LayerNorm"]
