"""`Linear` (y = x W^T + b) and `Identity`."""

from __future__ import annotations


from gpugrad import factory
from gpugrad.nn import functional as F
from gpugrad.nn import init
from gpugrad.nn.module import Module
from gpugrad.nn.parameter import Parameter
from gpugrad.ops.conv import integer


class Identity(Module):
    """Returns its input; accepts (and ignores) any constructor arguments."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """y = x @ weight.T + bias, weight (out_features, in_features), PyTorch's default init."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__()
        in_features = integer("Linear", "in_features", in_features, 0)
        out_features = integer("Linear", "out_features", out_features, 0)
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(factory.empty(out_features, in_features, dtype=dtype,
                                              device=device))
        if bias:
            self.bias = Parameter(factory.empty(out_features, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, input):
        if input.ndim == 0 or input.shape[-1] != self.in_features:
            raise RuntimeError(
                f"Linear: expected input with in_features={self.in_features} in its last "
                f"dimension, got input of shape {input.shape}"
            )
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")
