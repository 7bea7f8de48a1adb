"""softmax and log_softmax along a dim, stable: shift by the row max, log-sum-exp."""

from __future__ import annotations

from gpugrad import backend
from gpugrad.autograd.function import Function
from gpugrad.ops.common import normalize_dim
from gpugrad.tensor import Tensor


def _xp(a):
    return backend.array_module(a)


class Softmax(Function):
    keeps_inputs = False  # backward reads no input

    save_outputs = True

    def forward(self, x, dim):
        xp = _xp(x)
        self.dim = dim
        if x.size == 0:
            return xp.empty_like(x)  # nothing to normalise, and no row max to shift by
        e = xp.exp(x - x.max(axis=dim, keepdims=True))
        e /= e.sum(axis=dim, keepdims=True)
        return e

    def backward(self, gy):
        from gpugrad.ops.reduce import sum

        y = self.saved_output()
        # J^T gy for y = softmax(x): y * (gy - <gy, y>) along the dim.
        return (y * (gy - sum(gy * y, dim=self.dim, keepdim=True)),)


class LogSoftmax(Function):
    keeps_inputs = False  # backward reads no input

    save_outputs = True

    def forward(self, x, dim):
        xp = _xp(x)
        self.dim = dim
        if x.size == 0:
            return xp.empty_like(x)  # nothing to normalise, and no row max to shift by
        shifted = x - x.max(axis=dim, keepdims=True)
        # lse: log of the row's sum of exps, after the shift (so no exp overflows).
        lse = xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
        return shifted - lse

    def backward(self, gy):
        from gpugrad.ops.elementwise import exp
        from gpugrad.ops.reduce import sum

        y = self.saved_output()
        return (gy - exp(y) * sum(gy, dim=self.dim, keepdim=True),)


def _prepare(op, x, dim, dtype):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if dtype is not None:
        x = x.to(dtype)
    if x.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected a floating-point input, got {x.dtype}")
    if dim is None:
        raise TypeError(f"{op}: the `dim` argument is required")
    return x, normalize_dim(op, dim, x.ndim)


def softmax(x, dim=None, dtype=None):
    x, d = _prepare("softmax", x, dim, dtype)
    return Softmax.apply(x, dim=d)


def log_softmax(x, dim=None, dtype=None):
    x, d = _prepare("log_softmax", x, dim, dtype)
    return LogSoftmax.apply(x, dim=d)
