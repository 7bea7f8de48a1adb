"""Activation modules: ReLU, Sigmoid, Tanh, Softmax, LogSoftmax, and GELU, SiLU, Mish,
LeakyReLU, ELU, Softplus, Hardtanh, ReLU6, Hardsigmoid, Hardswish (on
gpugrad.nn.functional_activations), with PyTorch's arguments and reprs."""

from __future__ import annotations

import numbers
import warnings

from gpugrad.nn import functional as F
from gpugrad.nn import functional_activations as FA
from gpugrad.nn.module import Module


class ReLU(Module):
    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.relu(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Sigmoid(Module):
    def forward(self, input):
        return F.sigmoid(input)


class Tanh(Module):
    def forward(self, input):
        return F.tanh(input)


class Softmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.log_softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


# ----------------------------------------------------------------------------- more activations


def _number(module: str, name: str, value):
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{module}: {name} must be a number, got {type(value).__name__}")
    return value


def _inplace_repr(inplace: bool, first: bool) -> str:
    """PyTorch's reprs show inplace only when it is True."""
    if not inplace:
        return ""
    return "inplace=True" if first else ", inplace=True"


class GELU(Module):
    def __init__(self, approximate: str = "none"):
        super().__init__()
        # Checked here, not only at the first forward as in PyTorch: the error names the layer.
        if not isinstance(approximate, str) or approximate not in ("none", "tanh"):
            raise ValueError(
                f"GELU: approximate must be either 'none' or 'tanh', got {approximate!r}"
            )
        self.approximate = approximate

    def forward(self, input):
        return FA.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class _InplaceActivation(Module):
    """An activation whose only argument is `inplace` (SiLU, Mish, Hardsigmoid, ...)."""

    _fn = None  # the functional form, set by each subclass
    _show_inplace = True  # PyTorch's Hardsigmoid and Hardswish leave it out of their reprs

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return self._fn(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return _inplace_repr(self.inplace, first=True) if self._show_inplace else ""


class SiLU(_InplaceActivation):
    _fn = staticmethod(FA.silu)


class Mish(_InplaceActivation):
    _fn = staticmethod(FA.mish)


class Hardsigmoid(_InplaceActivation):
    _fn = staticmethod(FA.hardsigmoid)
    _show_inplace = False


class Hardswish(_InplaceActivation):
    _fn = staticmethod(FA.hardswish)
    _show_inplace = False


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope = _number("LeakyReLU", "negative_slope", negative_slope)
        self.inplace = inplace

    def forward(self, input):
        return FA.leaky_relu(input, self.negative_slope, self.inplace)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}{_inplace_repr(self.inplace, False)}"


class ELU(Module):
    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha = _number("ELU", "alpha", alpha)
        self.inplace = inplace

    def forward(self, input):
        return FA.elu(input, self.alpha, self.inplace)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}{_inplace_repr(self.inplace, False)}"


class Softplus(Module):
    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta = _number("Softplus", "beta", beta)
        self.threshold = _number("Softplus", "threshold", threshold)

    def forward(self, input):
        return FA.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardtanh(Module):
    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False,
                 min_value: float | None = None, max_value: float | None = None):
        super().__init__()
        # min_value / max_value: PyTorch's old names, still accepted with a FutureWarning.
        if min_value is not None:
            warnings.warn("keyword argument `min_value` is deprecated and renamed to `min_val`",
                          FutureWarning, stacklevel=2)
            min_val = min_value
        if max_value is not None:
            warnings.warn("keyword argument `max_value` is deprecated and renamed to `max_val`",
                          FutureWarning, stacklevel=2)
            max_val = max_value
        name = type(self).__name__
        self.min_val = _number(name, "min_val", min_val)
        self.max_val = _number(name, "max_val", max_val)
        self.inplace = inplace
        if not self.max_val > self.min_val:
            raise ValueError(f"{name}: max_val ({self.max_val}) must be greater than min_val "
                             f"({self.min_val})")

    def forward(self, input):
        return FA.hardtanh(input, self.min_val, self.max_val, self.inplace)

    def extra_repr(self) -> str:
        return (f"min_val={self.min_val}, max_val={self.max_val}"
                f"{_inplace_repr(self.inplace, False)}")


class ReLU6(Hardtanh):
    """Hardtanh(0, 6), as PyTorch's ReLU6 (min_val and max_val are attributes)."""

    def __init__(self, inplace: bool = False):
        super().__init__(0.0, 6.0, inplace)

    def forward(self, input):
        return FA.relu6(input, self.inplace)  # errors name relu6

    def extra_repr(self) -> str:
        return _inplace_repr(self.inplace, first=True)
