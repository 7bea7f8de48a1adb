"""Reductions: sum, mean, var, std, amax/amin, max/min (with indices), prod, argmax/argmin."""

from __future__ import annotations

import builtins
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
    def forward(self, x, axes, keepdim):
        self.in_shape = x.shape
        self.kept = _kept_shape(x.shape, axes)
        return _xp(x).sum(x, axis=axes, keepdims=keepdim)

    def backward(self, gy):
        from gpugrad.ops.shape import broadcast_to, reshape

        return (broadcast_to(reshape(gy, self.kept), self.in_shape),)


class SumTo(Function):
    """Sum a broadcast gradient back to `shape` (undoes broadcasting; the engine calls it)."""

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
    elif x.dtype.kind in "bi":
        x = x.to(backend.int64)
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


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance with Bessel's correction by default (`correction=1`), as in PyTorch."""
    if correction is None:
        correction = 0 if unbiased is False else 1
    axes = normalize_dims("var", dim, x.ndim)
    n = _count(x.shape, axes)
    centered = x - mean(x, dim=axes, keepdim=True)
    denom = builtins.max(n - correction, 0)
    total = sum(centered * centered, dim=axes, keepdim=keepdim)
    return total * (1.0 / denom if denom else float("nan"))


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    from gpugrad.ops.elementwise import sqrt

    return sqrt(var(x, dim=dim, unbiased=unbiased, keepdim=keepdim, correction=correction))


class Amax(Function):
    """max over axes; ties share the gradient evenly, as PyTorch's amax does."""

    save_outputs = True

    is_min = False

    def forward(self, x, axes, keepdim):
        xp = _xp(x)
        if x.size == 0:
            raise RuntimeError(
                f"{'amin' if self.is_min else 'amax'}: cannot reduce an empty tensor of shape "
                f"{x.shape}"
            )
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
    return Amax.apply(x, axes=normalize_dims("amax", dim, x.ndim), keepdim=keepdim)


def amin(x, dim=None, keepdim=False):
    return Amin.apply(x, axes=normalize_dims("amin", dim, x.ndim), keepdim=keepdim)


class MaxDim(Function):
    """max along one dim returning (values, indices); the gradient goes to the index only."""

    is_min = False

    def forward(self, x, dim, keepdim):
        xp = _xp(x)
        if x.shape and x.shape[dim] == 0:
            raise IndexError(f"max: cannot reduce over a zero-size dimension {dim} of {x.shape}")
        arg = xp.argmin if self.is_min else xp.argmax
        idx = xp.expand_dims(arg(x, axis=dim), dim) if x.ndim else xp.asarray(0)
        values = xp.take_along_axis(x, idx, axis=dim) if x.ndim else x
        self.dim, self.keepdim, self.in_shape = dim, keepdim, x.shape
        self.idx = idx
        if not keepdim and x.ndim:
            values, idx = values.squeeze(dim), idx.squeeze(dim)
        return values, idx.astype(backend.int64)

    def backward(self, gy, _gidx):
        from gpugrad.ops.indexing import scatter_along

        if self.inputs[0].ndim == 0:
            return (gy,)
        if not self.keepdim:
            from gpugrad.ops.shape import unsqueeze

            gy = unsqueeze(gy, self.dim)
        idx = Tensor(self.idx, gy.device)
        return (scatter_along(gy, idx, self.dim, self.in_shape),)


class MinDim(MaxDim):
    is_min = True


def max(x, dim=None, keepdim=False):
    """max(x): the largest value; max(x, dim): (values, indices); max(x, y): maximum."""
    if isinstance(dim, Tensor):
        from gpugrad.ops.elementwise import maximum

        return maximum(x, dim)
    if dim is None:
        return amax(x)
    dim = normalize_dim("max", dim, x.ndim)
    return values_indices(*MaxDim.apply(x, dim=dim, keepdim=keepdim))


def min(x, dim=None, keepdim=False):
    if isinstance(dim, Tensor):
        from gpugrad.ops.elementwise import minimum

        return minimum(x, dim)
    if dim is None:
        return amin(x)
    dim = normalize_dim("min", dim, x.ndim)
    return values_indices(*MinDim.apply(x, dim=dim, keepdim=keepdim))


def _arg(name, x, dim, keepdim):
    xp = _xp(x.data)
    fn = xp.argmax if name == "argmax" else xp.argmin
    if x.data.size == 0:
        raise RuntimeError(f"{name}: cannot reduce an empty tensor of shape {x.shape}")
    if dim is None:
        out = fn(x.data.reshape(-1))
        if keepdim:
            out = out.reshape((1,) * x.ndim)
    else:
        dim = normalize_dim(name, dim, x.ndim)
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

    m = amax(x, dim=dim, keepdim=True).detach()
    xp = _xp(m.data)
    m = Tensor(xp.where(xp.isfinite(m.data), m.data, 0).astype(m.dtype), m.device)
    out = log(sum(exp(x - m), dim=dim, keepdim=True)) + m
    if not keepdim:
        from gpugrad.ops.shape import squeeze

        out = squeeze(out, dim)
    return out


def norm(x, p=2, dim=None, keepdim=False):
    from gpugrad.ops.elementwise import abs, sqrt

    if p == 2 or p == "fro":
        return sqrt(sum(x * x, dim=dim, keepdim=keepdim))
    if p == 1:
        return sum(abs(x), dim=dim, keepdim=keepdim)
    return sum(abs(x) ** p, dim=dim, keepdim=keepdim) ** (1.0 / p)


def all(x, dim=None, keepdim=False):
    xp = _xp(x.data)
    axes = normalize_dims("all", dim, x.ndim)
    return Tensor(xp.asarray(xp.all(x.data, axis=axes, keepdims=keepdim)), x.device)


def any(x, dim=None, keepdim=False):
    xp = _xp(x.data)
    axes = normalize_dims("any", dim, x.ndim)
    return Tensor(xp.asarray(xp.any(x.data, axis=axes, keepdims=keepdim)), x.device)


def nonzero(x, as_tuple=False):
    xp = _xp(x.data)
    idx = xp.nonzero(x.data)
    if as_tuple:
        return tuple(Tensor(i.astype(backend.int64), x.device) for i in idx)
    return Tensor(xp.stack(idx, axis=1).astype(backend.int64), x.device)
