"""Element-wise ops: arithmetic, unary math, activations, clamp, maximum/minimum, where.

Gradients at kinks follow PyTorch: relu'(0) = 0, abs'(0) = 0, clamp passes the gradient at
its bounds, and ties in maximum/minimum split the gradient in half.
"""

from __future__ import annotations

import numbers

from gpugrad import backend
from gpugrad.autograd.function import Function
from gpugrad.ops.common import (
    broadcast_shapes, check_scalar_fits, constant, operands, scalar_dtype,
)
from gpugrad.tensor import Tensor


def _xp(a):
    return backend.array_module(a)


# ----------------------------------------------------------------------------- binary


class Add(Function):
    keeps_inputs = False  # backward needs only gy

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        return gy, gy


class Sub(Function):
    keeps_inputs = False  # backward needs only gy

    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        return gy, Neg.apply(gy) if self.needs_input_grad[1] else None


# Backward formulas call Function.apply directly where both operands are already tensors of
# the gradient's dtype: the operand checks of the public functions would only add overhead.


class Mul(Function):
    def forward(self, a, b):
        return a * b

    def backward(self, gy):
        a, b = self.inputs
        ga = Mul.apply(gy, b) if self.needs_input_grad[0] else None
        gb = Mul.apply(gy, a) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        return a / b

    def backward(self, gy):
        a, b = self.inputs
        ga = Div.apply(gy, b) if self.needs_input_grad[0] else None
        gb = -gy * a / (b * b) if self.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    save_outputs = True

    def forward(self, a, b):
        if a.dtype.kind in "iu":
            return _integer_power(a, b)
        return a**b

    def backward(self, gy):
        a, b = self.inputs
        ga = gb = None
        if self.needs_input_grad[0]:
            # d(a^b)/da = b a^(b-1); PyTorch makes it 0 where b == 0 (even at a == 0).
            ga = where(b == 0, 0.0, gy * b * a ** (b - 1))
        if self.needs_input_grad[1]:
            # d(a^b)/db = a^b log a; 0 where a == 0 and b >= 0, as in PyTorch.
            y = self.saved_output()
            gb = where((a == 0) & (b >= 0), 0.0, gy * y * log(a))
        return ga, gb


def _integer_power(a, b):
    """a ** b for integer arrays, negative exponents included as in PyTorch: 1 / a**|b|
    truncated, so 0 but for a = 1 (1) and a = -1 (+-1). NumPy refuses negative ones."""
    xp = _xp(a)
    negative = b < 0
    if not bool(xp.any(negative)):
        return a**b
    y = a ** xp.where(negative, 0, b).astype(b.dtype, copy=False)
    odd = (b % 2) != 0
    inverse = xp.where(a == 1, 1, xp.where(a == -1, xp.where(odd, -1, 1), 0))
    return xp.where(negative, inverse, y).astype(y.dtype, copy=False)


class Maximum(Function):
    def forward(self, a, b):
        return _xp(a).maximum(a, b)

    def backward(self, gy):
        a, b = self.inputs
        half = gy * 0.5
        ga = where(a > b, gy, where(a == b, half, 0.0))
        gb = where(b > a, gy, where(a == b, half, 0.0))
        return ga, gb


class Minimum(Function):
    def forward(self, a, b):
        return _xp(a).minimum(a, b)

    def backward(self, gy):
        a, b = self.inputs
        half = gy * 0.5
        ga = where(a < b, gy, where(a == b, half, 0.0))
        gb = where(b < a, gy, where(a == b, half, 0.0))
        return ga, gb


class Remainder(Function):
    """a - floor(a / b) * b, the sign of b's (Python's %). d/da = 1, d/db = -floor(a / b)."""

    def forward(self, a, b):
        return _xp(a).remainder(a, b)

    def backward(self, gy):
        a, b = self.inputs
        ga = gy if self.needs_input_grad[0] else None
        gb = None
        if self.needs_input_grad[1]:
            q = Tensor(_xp(a.data).floor_divide(a.data, b.data), a.device)  # no grad: a step
            gb = Mul.apply(Neg.apply(gy), q)
        return ga, gb


def add(a, b, alpha=1):
    if alpha != 1:
        b = mul(b, alpha)
    return Add.apply(*operands("add", a, b))


def sub(a, b, alpha=1):
    if alpha != 1:
        b = mul(b, alpha)
    return Sub.apply(*operands("sub", a, b))


def mul(a, b):
    return Mul.apply(*operands("mul", a, b))


def _is_float_tensor(v) -> bool:
    return isinstance(v, Tensor) and v.dtype.kind == "f"


def div(a, b, rounding_mode=None):
    """a / b. True division makes integers the default float dtype (before any Python int
    meets the integer tensor: uint8 / 300 is 0.67, not a wrapped 300); "floor" and "trunc"
    round the quotient and keep an integer dtype, with no gradient (a step), as in PyTorch."""
    if rounding_mode == "floor":
        return floor_divide(a, b, op="div")
    if rounding_mode == "trunc":
        return _trunc_divide(a, b)
    if rounding_mode is not None:
        raise ValueError(
            f"div: expected rounding_mode None, 'floor' or 'trunc', got {rounding_mode!r}"
        )
    if not (_is_float_tensor(a) or _is_float_tensor(b)):
        a = _float(a) if isinstance(a, Tensor) else a
        b = _float(b) if isinstance(b, Tensor) else b
    return Div.apply(*operands("div", a, b))


def _check_integer_divisor(op: str, a: Tensor, b: Tensor) -> None:
    """Integer division by zero raises, as in PyTorch (NumPy would give 0 and a warning).
    A float divisor of 0 gives inf or nan, as in PyTorch."""
    if a.dtype.kind in "biu" and bool(_xp(b.data).any(b.data == 0)):
        raise ZeroDivisionError(f"{op}: integer division by zero")


def floor_divide(a, b, op="floor_divide"):
    """a // b, rounded toward minus infinity (Python's //); no gradient, as its derivative is
    zero wherever it exists (PyTorch leaves it unimplemented)."""
    a, b = operands(op, a, b)
    _check_integer_divisor(op, a, b)
    return Tensor(_xp(a.data).floor_divide(a.data, b.data), a.device)


def _trunc_divide(a, b):
    a, b = operands("div", a, b)
    _check_integer_divisor("div", a, b)
    xp = _xp(a.data)
    if a.dtype.kind == "f":
        return Tensor(xp.trunc(a.data / b.data), a.device)
    q = xp.floor_divide(a.data, b.data)
    # Floor and trunc differ where the quotient is negative and inexact: one step up.
    q = q + ((q < 0) & (q * b.data != a.data)).astype(q.dtype)
    return Tensor(q, a.device)


def remainder(a, b):
    """a % b with the divisor's sign (Python's %, PyTorch's remainder); differentiable in
    both operands for floats."""
    a, b = operands("remainder", a, b)
    _check_integer_divisor("remainder", a, b)
    return Remainder.apply(a, b)


def pow(a, b):
    if (isinstance(a, Tensor) and a.dtype.kind in "biu" and isinstance(b, numbers.Integral)
            and not isinstance(b, bool) and b < 0):
        raise ValueError(
            f"pow: integers to negative integer powers are not allowed ({a.dtype} tensor ** {b})"
        )
    return Pow.apply(*operands("pow", a, b))


def maximum(a, b):
    return Maximum.apply(*operands("maximum", a, b))


def minimum(a, b):
    return Minimum.apply(*operands("minimum", a, b))


# ----------------------------------------------------------------------------- unary


class Neg(Function):
    keeps_inputs = False  # backward needs only gy

    def forward(self, x):
        return -x

    def backward(self, gy):
        return (-gy,)


class Abs(Function):
    def forward(self, x):
        return _xp(x).abs(x)

    def backward(self, gy):
        (x,) = self.inputs
        return (gy * sign(x),)


class Exp(Function):
    keeps_inputs = False  # backward reads no input

    save_outputs = True

    def forward(self, x):
        return _xp(x).exp(x)

    def backward(self, gy):
        return (Mul.apply(gy, self.saved_output()),)


class Log(Function):
    def forward(self, x):
        return _xp(x).log(x)

    def backward(self, gy):
        (x,) = self.inputs
        return (Div.apply(gy, x),)


class Log1p(Function):
    def forward(self, x):
        return _xp(x).log1p(x)

    def backward(self, gy):
        (x,) = self.inputs
        return (gy / (x + 1.0),)


class Sqrt(Function):
    keeps_inputs = False  # backward reads no input

    save_outputs = True

    def forward(self, x):
        return _xp(x).sqrt(x)

    def backward(self, gy):
        return (gy / (self.saved_output() * 2.0),)


class Sin(Function):
    def forward(self, x):
        return _xp(x).sin(x)

    def backward(self, gy):
        (x,) = self.inputs
        return (gy * cos(x),)


class Cos(Function):
    def forward(self, x):
        return _xp(x).cos(x)

    def backward(self, gy):
        (x,) = self.inputs
        return (-gy * sin(x),)


class Tanh(Function):
    keeps_inputs = False  # backward reads no input

    save_outputs = True

    def forward(self, x):
        return _xp(x).tanh(x)

    def backward(self, gy):
        y = self.saved_output()
        return (gy * (1.0 - y * y),)


class Sigmoid(Function):
    keeps_inputs = False  # backward reads no input

    save_outputs = True

    def forward(self, x):
        xp = _xp(x)
        # Two branches so neither exp overflows: 1/(1+e^-x) for x >= 0, e^x/(1+e^x) below.
        e = xp.exp(-xp.abs(x))
        return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)

    def backward(self, gy):
        y = self.saved_output()
        return (gy * y * (1.0 - y),)


class Relu(Function):
    """max(x, 0). Backward keeps only the output: gx = gy where y > 0 (relu'(0) = 0)."""

    save_outputs = True
    keeps_inputs = False  # the output is all backward reads

    def forward(self, x):
        from gpugrad.kernels.activation import relu_forward

        return relu_forward(x, self.device)

    def backward(self, gy):
        return (relu_backward(self.saved_output(), gy),)


class ReluBackward(Function):
    """gy masked where y > 0. Linear in gy, so its own gradient is the same mask."""

    def forward(self, y, gy):
        from gpugrad.kernels.activation import relu_backward as relu_backward_kernel

        return relu_backward_kernel(y, gy, self.device)

    def backward(self, ggx):
        y, _ = self.inputs
        return None, relu_backward(y, ggx)


def relu_backward(y: Tensor, gy: Tensor) -> Tensor:
    return ReluBackward.apply(y, gy)


class Clamp(Function):
    def forward(self, x, lo, hi):
        self.lo, self.hi = lo, hi
        return _xp(x).clip(x, lo, hi)

    def backward(self, gy):
        # PyTorch passes the gradient where lo <= x <= hi (bounds included).
        (x,) = self.inputs
        xp = _xp(x.data)
        mask = xp.ones(x.shape, dtype=bool)
        if self.lo is not None:
            mask &= x.data >= self.lo
        if self.hi is not None:
            mask &= x.data <= self.hi
        return (where(Tensor(mask, x.device), gy, 0.0),)


def neg(x):
    if isinstance(x, Tensor) and x.dtype.kind == "b":
        raise TypeError(
            "neg: negation, the `-` operator, on a bool tensor is not supported; "
            "use `~` or logical_not() to invert a mask"
        )
    return Neg.apply(x)


def abs(x):
    return Abs.apply(x)


def exp(x):
    return Exp.apply(_float(x, "exp"))


def log(x):
    return Log.apply(_float(x, "log"))


def log1p(x):
    return Log1p.apply(_float(x, "log1p"))


def sqrt(x):
    return Sqrt.apply(_float(x, "sqrt"))


def rsqrt(x):
    return 1.0 / sqrt(x)


def sin(x):
    return Sin.apply(_float(x, "sin"))


def cos(x):
    return Cos.apply(_float(x, "cos"))


def tanh(x):
    return Tanh.apply(_float(x, "tanh"))


def sigmoid(x):
    return Sigmoid.apply(_float(x, "sigmoid"))


def square(x):
    return mul(x, x)


def reciprocal(x):
    return div(1.0, x)


def relu(x):
    return Relu.apply(x)


def clamp(x, min=None, max=None):
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    if isinstance(x, Tensor) and x.dtype.kind in "biu" and any(
            isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral)
            for v in (min, max)):
        x = x.to(backend.get_default_dtype())  # an int tensor clamped to a float: as PyTorch
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        # Tensor bounds: a composite of maximum/minimum, differentiable in the bounds too.
        y = x if min is None else maximum(x, min)
        return y if max is None else minimum(y, max)
    return Clamp.apply(x, lo=min, hi=max)


clip = clamp


def _float(x: Tensor, op: str = "div") -> Tensor:
    """Integer inputs to float math become the default float dtype, as in PyTorch."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        return x.to(backend.get_default_dtype())
    return x


# ----------------------------------------------------------------------------- where / non-diff


class Where(Function):
    def forward(self, cond, a, b):
        return _xp(a).where(cond, a, b)

    def backward(self, gy):
        cond = self.inputs[0]
        ga = where(cond, gy, 0.0) if self.needs_input_grad[1] else None
        gb = where(cond, 0.0, gy) if self.needs_input_grad[2] else None
        return None, ga, gb


def where(condition, input=None, other=None):
    """Elements of `input` where `condition`, else of `other` (scalars broadcast).

    The condition must be bool (uint8 is read as nonzero, deprecated in PyTorch); two Python
    scalars give int64, bool or the default float dtype, as in PyTorch."""
    if input is None and other is None:
        from gpugrad.ops.indexing import nonzero

        return nonzero(condition, as_tuple=True)
    if not isinstance(condition, Tensor):
        raise TypeError(
            f"where: condition must be a bool Tensor, got {type(condition).__name__}"
        )
    if condition.dtype == backend.uint8:
        condition = condition.to(backend.bool_)
    elif condition.dtype != backend.bool_:
        raise RuntimeError(
            "where: expected condition to be a boolean tensor, but got a tensor with dtype "
            f"{condition.dtype}"
        )
    if isinstance(input, Tensor) or isinstance(other, Tensor):
        a, b = operands("where", input, other)
    else:
        dt = scalar_dtype(other, scalar_dtype(input, backend.bool_, "where"), "where")
        a = constant(input, dt, condition.device)
        b = constant(other, dt, condition.device)
    broadcast_shapes("where", condition.shape, a.shape, b.shape)
    return Where.apply(condition, a, b)


def masked_fill(x, mask, value):
    """`value` where `mask`, else `x`; the result keeps x's dtype (value cast), as in PyTorch."""
    if not isinstance(x, Tensor):
        raise TypeError(f"masked_fill: expected a Tensor input, got {type(x).__name__}")
    if not isinstance(mask, Tensor):
        raise TypeError(f"masked_fill: mask must be a bool Tensor, got {type(mask).__name__}")
    if mask.dtype != backend.bool_:
        raise RuntimeError(
            f"masked_fill: only supports boolean masks, but got mask with dtype {mask.dtype}"
        )
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(
                "masked_fill: only supports a 0-dimensional value tensor, but got tensor with "
                f"{value.ndim} dimension(s)"
            )
        if value.dtype != x.dtype:
            value = value.to(x.dtype)
    elif isinstance(value, numbers.Number) and not isinstance(value, complex):
        value = constant(check_scalar_fits("masked_fill", value, x.dtype), x.dtype, x.device)
    else:
        raise TypeError(
            f"masked_fill: value must be a number or a 0-d Tensor, got {type(value).__name__}"
        )
    return where(mask, value, x)


def sign(x):
    return Tensor(_xp(x.data).sign(x.data), x.device)


def floor(x):
    return Tensor(_xp(x.data).floor(x.data), x.device)


def ceil(x):
    return Tensor(_xp(x.data).ceil(x.data), x.device)


def round(x, decimals=0):
    return Tensor(_xp(x.data).round(x.data, decimals), x.device)


def _compare(name, ufunc_name, check=None, doc="a bool tensor with no grad"):
    """An element-wise op with no gradient: the ufunc on the promoted operands, after
    `check(name, a, b)` where one is given."""
    def compare(a, b):
        a, b = operands(name, a, b)
        if check is not None:
            check(name, a, b)
        xp = _xp(a.data)
        return Tensor(getattr(xp, ufunc_name)(a.data, b.data), a.device)

    compare.__name__ = name
    compare.__doc__ = f"Element-wise `{name}`; {doc}."
    return compare


lt = _compare("lt", "less")
le = _compare("le", "less_equal")
gt = _compare("gt", "greater")
ge = _compare("ge", "greater_equal")
eq = _compare("eq", "equal")
ne = _compare("ne", "not_equal")
logical_and = _compare("logical_and", "logical_and")
logical_or = _compare("logical_or", "logical_or")
logical_xor = _compare("logical_xor", "logical_xor")


def logical_not(x):
    return Tensor(_xp(x.data).logical_not(x.data), x.device)


def isnan(x):
    return Tensor(_xp(x.data).isnan(x.data), x.device)


def isinf(x):
    return Tensor(_xp(x.data).isinf(x.data), x.device)


def isfinite(x):
    return Tensor(_xp(x.data).isfinite(x.data), x.device)
