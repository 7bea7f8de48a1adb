"""More activations of `torch.nn.functional`: gelu, silu, mish, leaky_relu, elu, softplus,
hardtanh, relu6, hardsigmoid, hardswish (gpugrad.nn.functional re-exports them).

Each is a composition of gpugrad ops, so autograd differentiates it to any order. Two rules
keep the gradients PyTorch's and finite:

- At a kink, the branch a `where` picks is the one PyTorch's backward kernel picks, which is
  not always where `clamp` would put it (hardtanh's gradient is 0 at its bounds, clamp's 1).
- A branch the `where` does not pick still gets a zero gradient, and 0 * inf is NaN; so a
  branch that could overflow (exp, x^2) sees a clamped input, not x.
"""

from __future__ import annotations

import math
import numbers

from gpugrad import backend, ops
from gpugrad.nn._checks import _check_float_input, _check_tensor
from gpugrad.ops.special import erf, expm1
from gpugrad.tensor import Tensor

_SQRT1_2 = 1.0 / math.sqrt(2.0)          # exact gelu: x * Phi(x) = x/2 * (1 + erf(x/sqrt 2))
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)  # tanh gelu's inner scale, PyTorch's kBeta
_GELU_KAPPA = 0.044715
_GELU_APPROXIMATIONS = ("none", "tanh")


# ----------------------------------------------------------------------------- helpers


def _check_number(op: str, name: str, value) -> None:
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a number, got {type(value).__name__}")


def _maybe_inplace(op: str, input: Tensor, out: Tensor, inplace: bool) -> Tensor:
    """F.relu's rule for `inplace=True` (see gpugrad.nn.functional._maybe_inplace): written
    into `input` where nothing is recorded, refused on a leaf that requires grad, a new
    tensor on a recorded non-leaf. Imported here, not at the top: functional imports us."""
    from gpugrad.nn.functional import _maybe_inplace as maybe_inplace

    return maybe_inplace(op, input, out, inplace)


def _softplus(z: Tensor) -> Tensor:
    """log(1 + exp(z)) that neither overflows nor loses its gradient (functional's helper)."""
    from gpugrad.nn.functional import _softplus as softplus

    return softplus(z)


# ----------------------------------------------------------------------------- smooth


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x), Phi the standard normal CDF; approximate='tanh' uses PyTorch's tanh form
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    _check_float_input("gelu", input)
    if not isinstance(approximate, str) or approximate not in _GELU_APPROXIMATIONS:
        raise ValueError(
            f"gelu: approximate argument must be either none or tanh, got {approximate!r}"
        )
    if approximate == "tanh" and input.dtype == backend.float16:
        # x^3 overflows float16 from |x| ~ 40, and 0 * inf in its gradient is NaN: the tanh
        # form runs in float32 (PyTorch computes half-precision math in float32 too).
        return gelu(input.to(backend.float32), approximate).to(backend.float16)
    if approximate == "none":
        # erf saturates at +-1 and its gradient exp(-x^2/2) underflows to 0: finite everywhere.
        return input * 0.5 * (1.0 + erf(input * _SQRT1_2))
    # x^3 overflows float32 only beyond |x| ~ 7e12; tanh' = 1 - tanh^2 is then exactly 0.
    inner = (input + input * input * input * _GELU_KAPPA) * _SQRT_2_OVER_PI
    return 0.5 * input * (1.0 + ops.tanh(inner))


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x) (swish); gpugrad's sigmoid never overflows."""
    _check_float_input("silu", input)
    return _maybe_inplace("silu", input, input * ops.sigmoid(input), inplace)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x)), with the softplus that is exact and finite for any x."""
    _check_float_input("mish", input)
    return _maybe_inplace("mish", input, input * ops.tanh(_softplus(input)), inplace)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold, as PyTorch (the
    gradient there is exactly 1)."""
    _check_float_input("softplus", input)
    _check_number("softplus", "beta", beta)
    _check_number("softplus", "threshold", threshold)
    z = input * beta
    # The stable softplus, not log1p(exp(z)): where threshold is large, PyTorch's overflows
    # (inf, and a NaN gradient, for float32 beta x > 88.7); this one stays exact.
    return ops.where(z > threshold, input, _softplus(z) / beta)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, alpha (exp(x) - 1) for x <= 0 (so the gradient at 0 is alpha, as
    PyTorch's)."""
    _check_float_input("elu", input)
    _check_number("elu", "alpha", alpha)
    # expm1 for the digits near 0; the clamp keeps exp from overflowing for large positive x
    # (whose zero gradient would then be 0 * inf), and passes the gradient at 0 itself.
    negative = alpha * expm1(ops.clamp(input, max=0.0))
    return _maybe_inplace("elu", input, ops.where(input > 0, input, negative), inplace)


# ----------------------------------------------------------------------------- piecewise linear


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x for x > 0, negative_slope * x otherwise (the gradient at 0 is negative_slope)."""
    _check_float_input("leaky_relu", input)
    _check_number("leaky_relu", "negative_slope", negative_slope)
    out = ops.where(input > 0, input, input * negative_slope)
    return _maybe_inplace("leaky_relu", input, out, inplace)


def _hardtanh(op: str, input, min_val, max_val, inplace: bool) -> Tensor:
    _check_tensor(op, "input", input)
    _check_number(op, "min_val", min_val)
    _check_number(op, "max_val", max_val)
    if min_val > max_val:
        raise ValueError(f"{op}: min_val cannot be greater than max_val "
                         f"(got min_val={min_val}, max_val={max_val})")
    kind = input.dtype.kind
    if kind == "b":
        raise RuntimeError(f"{op}: Bool inputs not supported")
    if kind in "iu":
        # PyTorch clamps integers too, with the limits cast to the integer type (truncated).
        if kind == "u" and (min_val < 0 or max_val < 0):
            raise RuntimeError(f"{op}: cannot do hardtanh on an unsigned type with negative "
                               f"limits (got {input.dtype})")
        out = ops.clamp(input, int(min_val), int(max_val))
    else:
        # The gradient passes strictly inside (min_val, max_val), 0 at the bounds as in
        # PyTorch; clamp would pass it at the bounds too, so it only gives the values outside.
        # Python floats: NumPy's clip would widen float32 to float64 for NumPy float64 bounds.
        min_val, max_val = float(min_val), float(max_val)
        inside = (input > min_val) & (input < max_val)
        out = ops.where(inside, input, ops.clamp(input.detach(), min_val, max_val))
    return _maybe_inplace(op, input, out, inplace)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0,
             inplace: bool = False) -> Tensor:
    """x clamped to [min_val, max_val]; gradient 1 strictly inside, 0 at and beyond the
    bounds, as PyTorch. Integer tensors are clamped too (no gradient), as in PyTorch."""
    return _hardtanh("hardtanh", input, min_val, max_val, inplace)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6): hardtanh(x, 0, 6), so the gradient is 0 at 0 and at 6."""
    return _hardtanh("relu6", input, 0.0, 6.0, inplace)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """(x + 3) / 6 clamped to [0, 1]; gradient 1/6 strictly inside (-3, 3), else 0."""
    _check_float_input("hardsigmoid", input)
    inside = (input > -3.0) & (input < 3.0)
    outside = ops.clamp(input.detach() + 3.0, 0.0, 6.0) / 6.0  # 0 or 1 (NaN stays NaN)
    out = ops.where(inside, (input + 3.0) / 6.0, outside)
    return _maybe_inplace("hardsigmoid", input, out, inplace)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * hardsigmoid(x): 0 for x <= -3, x for x >= 3, x (x + 3) / 6 between. PyTorch's
    gradient is 0 at -3 and 1 at 3 (not the middle piece's -1/2 and 3/2)."""
    _check_float_input("hardswish", input)
    # The middle piece sees x clamped to [-3, 3] (where it is picked, that is x): an inf
    # input would make its product inf and its zero gradient NaN.
    mid = ops.clamp(input, -3.0, 3.0)
    out = ops.where(input >= 3.0, input,
                    ops.where(input <= -3.0, 0.0, mid * (mid + 3.0) / 6.0))
    return _maybe_inplace("hardswish", input, out, inplace)


__all__ = [
    "elu", "gelu", "hardsigmoid", "hardswish", "hardtanh", "leaky_relu", "mish", "relu6",
    "silu", "softplus",
]
