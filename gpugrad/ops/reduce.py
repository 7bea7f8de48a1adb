"""Reductions: sum, mean, var, std, amax/amin, max/min (with indices), prod, argmax/argmin,
logsumexp, norm."""

from __future__ import annotations

import builtins
import math
import numbers
from collections import namedtuple

from gpugrad import backend
from gpugrad.autograd.function import Function
from gpugrad.ops.common import normalize_dim, normalize_dims
from gpugrad.tensor import Tensor

values_indices = namedtuple("values_indices", ["values", "indices"])


def _xp(a):
    return backend.array_module(a)


def _kept_shape(shape, axes):
    """`shape` with the reduced `axes` kept as size 1 (axes None means all)."""
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    keeps_inputs = False  # backward reads no input

    def forward(self, x, axes, keepdim):
        self.in_shape = x.shape
        self.kept = _kept_shape(x.shape, axes)
        return _xp(x).sum(x, axis=axes, keepdims=keepdim)

    def backward(self, gy):
        from gpugrad.ops.shape import broadcast_to, reshape

        return (broadcast_to(reshape(gy, self.kept), self.in_shape),)


class SumTo(Function):
    """Sum a broadcast gradient back to `shape` (undoes broadcasting; the engine calls it)."""

    keeps_inputs = False  # backward reads no input

    def forward(self, x, shape):
        self.in_shape = x.shape
        lead = x.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1
        )
        y = _xp(x).sum(x, axis=axes, keepdims=True) if axes else x
        if lead:
            y = y.reshape(shape)
        return y

    def backward(self, gy):
        from gpugrad.ops.shape import broadcast_to

        return (broadcast_to(gy, self.in_shape),)


def sum_to(x: Tensor, shape) -> Tensor:
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return SumTo.apply(x, shape=shape)


def sum(x, dim=None, keepdim=False, dtype=None):
    axes = normalize_dims("sum", dim, x.ndim)
    if dtype is not None:
        x = x.to(dtype)
    elif x.dtype.kind in "biu":
        x = x.to(backend.int64)  # bool and every integer sum in int64, as in PyTorch
    return Sum.apply(x, axes=axes, keepdim=keepdim)


def _count(shape, axes):
    n = 1
    for i, size in enumerate(shape):
        if axes is None or i in axes:
            n *= size
    return n


def mean(x, dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        x = x.to(dtype)
    if x.dtype.kind != "f":
        raise RuntimeError(
            f"mean: could not infer output dtype; input dtype must be floating point, "
            f"got {x.dtype}"
        )
    axes = normalize_dims("mean", dim, x.ndim)
    n = _count(x.shape, axes)
    return Sum.apply(x, axes=axes, keepdim=keepdim) * (1.0 / n if n else float("nan"))


def _require_float(op, x):
    if x.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected a floating-point input, got {x.dtype}")


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance with Bessel's correction by default (`correction=1`), as in PyTorch."""
    return _var("var", x, dim, unbiased, keepdim, correction)


def _var(op, x, dim, unbiased, keepdim, correction):
    """var, with errors naming `op` (std calls it too)."""
    _require_float(op, x)
    if correction is None:
        correction = 0 if unbiased is False else 1
    axes = normalize_dims(op, dim, x.ndim)
    n = _count(x.shape, axes)
    centered = x - mean(x, dim=axes, keepdim=True)
    denom = builtins.max(n - correction, 0)
    total = sum(centered * centered, dim=axes, keepdim=keepdim)
    return total * (1.0 / denom if denom else float("nan"))


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    from gpugrad.ops.elementwise import sqrt

    return sqrt(_var("std", x, dim, unbiased, keepdim, correction))


def _reduces_empty(shape, axes):
    """Whether a reduction over `axes` (None: all) meets an empty dim, i.e. reduces nothing."""
    return 0 in (shape if axes is None else [shape[a] for a in axes])


def _check_nonempty(op, shape, axes):
    """Reductions without an identity (max, min, argmax) need something to reduce (PyTorch)."""
    if not _reduces_empty(shape, axes):
        return
    if axes is None:
        raise RuntimeError(
            f"{op}: expected a non-empty tensor to reduce over all dims (or a dim to reduce), "
            f"got shape {shape}"
        )
    a = next(a for a in axes if shape[a] == 0)
    raise IndexError(
        f"{op}: expected a non-empty dimension to reduce, got dimension {a} of size 0 in shape "
        f"{shape}"
    )


class Amax(Function):
    """max over axes; ties share the gradient evenly, as PyTorch's amax does."""

    save_outputs = True

    is_min = False

    def forward(self, x, axes, keepdim, op):
        xp = _xp(x)
        _check_nonempty(op, x.shape, axes)
        self.kept = _kept_shape(x.shape, axes)
        self.axes = axes
        fn = xp.min if self.is_min else xp.max
        return fn(x, axis=axes, keepdims=keepdim)

    def backward(self, gy):
        from gpugrad.ops.elementwise import eq, where
        from gpugrad.ops.shape import reshape

        (x,) = self.inputs
        y = reshape(self.saved_output(), self.kept)
        mask = eq(x, y)
        count = sum(mask, dim=self.axes, keepdim=True).to(x.dtype)
        return (where(mask, reshape(gy, self.kept) / count, 0.0),)


class Amin(Amax):
    is_min = True


def amax(x, dim=None, keepdim=False):
    return Amax.apply(x, axes=normalize_dims("amax", dim, x.ndim), keepdim=keepdim, op="amax")


def amin(x, dim=None, keepdim=False):
    return Amin.apply(x, axes=normalize_dims("amin", dim, x.ndim), keepdim=keepdim, op="amin")


class MaxDim(Function):
    """max along one dim returning (values, indices); the gradient goes to the index only."""

    is_min = False

    def forward(self, x, dim, keepdim):
        xp = _xp(x)
        if x.ndim:
            _check_nonempty("min" if self.is_min else "max", x.shape, (dim,))
        arg = xp.argmin if self.is_min else xp.argmax
        idx = xp.expand_dims(arg(x, axis=dim), dim) if x.ndim else xp.asarray(0)
        values = xp.take_along_axis(x, idx, axis=dim) if x.ndim else x
        self.dim, self.keepdim, self.in_shape = dim, keepdim, x.shape
        self.idx = idx
        if not keepdim and x.ndim:
            values, idx = values.squeeze(dim), idx.squeeze(dim)
        return values, idx.astype(backend.int64)

    def backward(self, gy, _gidx):
        from gpugrad.ops.indexing import ScatterAlong

        if self.inputs[0].ndim == 0:
            return (gy,)
        if not self.keepdim:
            from gpugrad.ops.shape import unsqueeze

            gy = unsqueeze(gy, self.dim)
        # The Function, not scatter_along: argmax's indices need none of its checks, whose
        # min/max read-back would wait for the GPU on every backward.
        return (ScatterAlong.apply(gy, index=self.idx.astype(backend.int64, copy=False),
                                   dim=self.dim, shape=self.in_shape),)


class MinDim(MaxDim):
    is_min = True


def max(x, dim=None, keepdim=False):
    """max(x): the largest value; max(x, dim): (values, indices); max(x, y): maximum."""
    if isinstance(dim, Tensor):
        from gpugrad.ops.elementwise import maximum

        return maximum(x, dim)
    if dim is None:
        return Amax.apply(x, axes=None, keepdim=False, op="max")
    dim = normalize_dim("max", dim, x.ndim)
    return values_indices(*MaxDim.apply(x, dim=dim, keepdim=keepdim))


def min(x, dim=None, keepdim=False):
    if isinstance(dim, Tensor):
        from gpugrad.ops.elementwise import minimum

        return minimum(x, dim)
    if dim is None:
        return Amin.apply(x, axes=None, keepdim=False, op="min")
    dim = normalize_dim("min", dim, x.ndim)
    return values_indices(*MinDim.apply(x, dim=dim, keepdim=keepdim))


def _arg(name, x, dim, keepdim):
    xp = _xp(x.data)
    fn = xp.argmax if name == "argmax" else xp.argmin
    if dim is None:
        _check_nonempty(name, x.shape, None)
        out = fn(x.data.reshape(-1))
        if keepdim:
            out = out.reshape((1,) * x.ndim)
    else:
        dim = normalize_dim(name, dim, x.ndim)
        if x.ndim:
            _check_nonempty(name, x.shape, (dim,))
        out = fn(x.data, axis=dim) if x.ndim else xp.asarray(0)
        if keepdim and x.ndim:
            out = xp.expand_dims(out, dim)
    return Tensor(xp.asarray(out, dtype=backend.int64), x.device)


def argmax(x, dim=None, keepdim=False):
    return _arg("argmax", x, dim, keepdim)


def argmin(x, dim=None, keepdim=False):
    return _arg("argmin", x, dim, keepdim)


class Prod(Function):
    save_outputs = True

    def forward(self, x, axes, keepdim):
        self.kept = _kept_shape(x.shape, axes)
        self.axes = axes
        return _xp(x).prod(x, axis=axes, keepdims=keepdim)

    def backward(self, gy):
        from gpugrad.ops.shape import reshape

        (x,) = self.inputs
        gy = reshape(gy, self.kept)
        xp = _xp(x.data)
        if not bool(xp.any(x.data == 0)):
            # No zeros: d(prod)/dx_i = prod / x_i, written with ops so it differentiates again.
            return (gy * reshape(self.saved_output(), self.kept) / x,)
        # With zeros, the product of all the other entries: exclusive products from both
        # sides along the flattened reduced axes. First-order only (documented).
        others = _prod_of_others(xp, x.data, self.axes)
        return (gy * Tensor(others, x.device),)


def _prod_of_others(xp, x, axes):
    nd = x.ndim
    axes = tuple(range(nd)) if axes is None else axes
    rest = tuple(i for i in range(nd) if i not in axes)
    moved = xp.transpose(x, rest + axes)
    lead = moved.shape[: len(rest)]
    flat = moved.reshape(lead + (-1,))
    ones = xp.ones(lead + (1,), dtype=x.dtype)
    left = xp.cumprod(xp.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
    right = xp.flip(
        xp.cumprod(xp.concatenate([ones, xp.flip(flat, -1)[..., :-1]], axis=-1), axis=-1), -1
    )
    others = (left * right).reshape(moved.shape)
    inverse = tuple(int(i) for i in xp.argsort(xp.asarray(rest + axes)).tolist())
    return xp.transpose(others, inverse)


def prod(x, dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        x = x.to(dtype)
    return Prod.apply(x, axes=normalize_dims("prod", dim, x.ndim), keepdim=keepdim)


def logsumexp(x, dim, keepdim=False):
    """log(sum(exp(x))) computed stably (shift by the max, which carries no gradient)."""
    from gpugrad.ops.elementwise import exp, log
    from gpugrad.ops.shape import squeeze

    axes = normalize_dims("logsumexp", dim, x.ndim)
    if x.dtype.kind != "f":
        x = x.to(backend.get_default_dtype())  # bool and integer input, as in PyTorch
    if _reduces_empty(x.shape, axes):
        # A sum of no exps is 0 and its log -inf, as in PyTorch (x has no entries to differentiate).
        out = sum(x, dim=axes, keepdim=True) - math.inf
    else:
        m = amax(x, dim=axes, keepdim=True).detach()
        xp = _xp(m.data)
        m = Tensor(xp.where(xp.isfinite(m.data), m.data, 0).astype(m.dtype), m.device)
        out = log(sum(exp(x - m), dim=axes, keepdim=True)) + m
    return out if keepdim else squeeze(out, axes)


class Norm(Function):
    """The vector p-norm over axes. Backward is PyTorch's, which gives a zero norm a zero
    gradient (a subgradient) instead of the 0/0 of differentiating the formula."""

    save_outputs = True

    def forward(self, x, p, axes, keepdim):
        xp = _xp(x)
        self.p, self.axes, self.kept = p, axes, _kept_shape(x.shape, axes)
        a = xp.abs(x)
        if p == math.inf:
            return a.max(axis=axes, keepdims=keepdim)
        if p == -math.inf:
            return a.min(axis=axes, keepdims=keepdim)
        if p == 0:
            return (x != 0).sum(axis=axes, keepdims=keepdim).astype(x.dtype)
        if p == 1:
            return a.sum(axis=axes, keepdims=keepdim)
        if p == 2:
            return xp.sqrt((x * x).sum(axis=axes, keepdims=keepdim))
        if p < 0:
            # |0| ** p is inf, and the sum's 1/p power then 0; said without NumPy's warning.
            powered = xp.where(a == 0, xp.inf, xp.where(a == 0, 1, a) ** p)
        else:
            powered = a**p
        return powered.sum(axis=axes, keepdims=keepdim) ** (1.0 / p)

    def backward(self, gy):
        from gpugrad.ops.elementwise import abs, eq, sign, where
        from gpugrad.ops.shape import reshape

        (x,) = self.inputs
        p = self.p
        gy = reshape(gy, self.kept)
        y = reshape(self.saved_output(), self.kept)
        if p == 0:
            # A count: piecewise constant.
            with backend.device_context(x.device):
                return (Tensor(_xp(x.data).zeros_like(x.data), x.device),)
        if math.isinf(p):
            # Like amax of |x|: ties share the gradient.
            mask = eq(abs(x), y)
            count = sum(mask, dim=self.axes, keepdim=True).to(x.dtype)
            return (sign(x) * where(mask, gy / count, 0.0),)
        if p == 1:
            return (sign(x) * gy,)
        if p == 2:
            return (x * (gy / _one_where_zero(y)),)
        if p > 1:
            # d|x|_p/dx = sign(x) |x|^(p-1) / y^(p-1); where y is 0 so is every x, and with it
            # the gradient.
            return (sign(x) * abs(x) ** (p - 1) * (gy / _one_where_zero(y) ** (p - 1)),)
        # p < 1: the same, written as |x|^(p-1) * y^(1-p) so that a zero norm gives 0, and an
        # x of 0 (whose |x|^(p-1) is infinite) a zero gradient, as PyTorch has it.
        return (sign(x) * _one_where_zero(abs(x)) ** (p - 1) * (gy * y ** (1 - p)),)


def _one_where_zero(t):
    """`t` with its zeros replaced by ones: where t is 0 the other factor is 0 too, and the
    replacement only keeps a 0/0 out of the product."""
    from gpugrad.ops.elementwise import where

    return where(t == 0, 1.0, t)


def norm(x, p=2, dim=None, keepdim=False):
    """The vector p-norm over `dim` (all dims by default): p may be any number, inf, -inf, 0
    (the count of non-zeros) or 'fro' (2)."""
    if p == "fro":
        p = 2
    if not isinstance(p, numbers.Real):
        raise ValueError(f"norm: expected p to be a number or 'fro', got {p!r}")
    if x.dtype.kind != "f":
        raise RuntimeError(f"norm: expected a floating-point input, got {x.dtype}")
    axes = normalize_dims("norm", dim, x.ndim)
    if (math.isinf(p) or p < 0) and _reduces_empty(x.shape, axes):
        reduced = "all dims" if axes is None else f"dims {axes}"
        raise RuntimeError(
            f"norm: the {p} norm has no identity, so expected no empty dimension to reduce, "
            f"got shape {x.shape} reduced over {reduced}"
        )
    return Norm.apply(x, p=float(p), axes=axes, keepdim=keepdim)


def all(x, dim=None, keepdim=False):
    xp = _xp(x.data)
    axes = normalize_dims("all", dim, x.ndim)
    return Tensor(xp.asarray(xp.all(x.data, axis=axes, keepdims=keepdim)), x.device)


def any(x, dim=None, keepdim=False):
    xp = _xp(x.data)
    axes = normalize_dims("any", dim, x.ndim)
    return Tensor(xp.asarray(xp.any(x.data, axis=axes, keepdims=keepdim)), x.device)


