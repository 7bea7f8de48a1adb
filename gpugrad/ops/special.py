"""Special functions: erf (for exact GELU) and expm1 (for ELU).

Both backwards are written with gpugrad ops, so they are differentiable to any order.
"""

from __future__ import annotations

import math

from gpugrad import backend
from gpugrad.autograd.function import Function
from gpugrad.ops.elementwise import _float, exp, mul

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


class Erf(Function):
    """erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt; d/dx = 2/sqrt(pi) * exp(-x^2)."""

    def forward(self, x):
        return backend.erf(x)

    def backward(self, gy):
        (x,) = self.inputs
        # exp(-x^2) underflows to 0 for large |x| (never inf), so the gradient stays finite.
        return (gy * (exp(-mul(x, x)) * _TWO_OVER_SQRT_PI),)


class Expm1(Function):
    """exp(x) - 1, exact near 0 where exp(x) - 1 loses the low digits; d/dx = exp(x)."""

    def forward(self, x):
        return backend.array_module(x).expm1(x)

    def backward(self, gy):
        # exp(x), not the output + 1: for x below about -17 (float32) the output rounds to -1
        # and y + 1 would be 0, where exp(x) is still a normal number (PyTorch's elu keeps it).
        (x,) = self.inputs
        return (mul(gy, exp(x)),)


def erf(x):
    """The error function, element-wise; integer and bool inputs become the default float
    dtype, as in PyTorch."""
    return Erf.apply(_float(x, "erf"))


def expm1(x):
    """exp(x) - 1, element-wise, accurate for small x; integers become the default float."""
    return Expm1.apply(_float(x, "expm1"))
