"""Operand handling shared by the ops: scalars to tensors, dtype promotion, checks."""

from __future__ import annotations

import numbers

import numpy as np

from gpugrad import backend
from gpugrad.tensor import Tensor


def check_same_device(op: str, *tensors: Tensor) -> None:
    dev = tensors[0].device
    for t in tensors[1:]:
        if t.device != dev:
            raise RuntimeError(
                f"{op}: expected all tensors on the same device, got {dev} and {t.device}"
            )


def result_dtype(a, b) -> np.dtype:
    """PyTorch's promotion: a float beats an integer whatever its width."""
    a, b = np.dtype(a), np.dtype(b)
    if a == b:
        return a
    if a.kind == "f" and b.kind != "f":
        return a
    if b.kind == "f" and a.kind != "f":
        return b
    return np.result_type(a, b)


def scalar_dtype(value, like_dtype) -> np.dtype:
    """The dtype a Python scalar takes next to a tensor of `like_dtype` (PyTorch rules)."""
    like_dtype = np.dtype(like_dtype)
    if isinstance(value, (bool, np.bool_)):
        return like_dtype
    if isinstance(value, numbers.Integral):
        return like_dtype if like_dtype.kind != "b" else backend.int64
    if isinstance(value, numbers.Real):
        return like_dtype if like_dtype.kind == "f" else backend.get_default_dtype()
    raise TypeError(f"unsupported operand type {type(value).__name__}")


def constant(value, dtype, device) -> Tensor:
    """A tensor that holds a constant (no grad) on `device`."""
    if device.type == "cpu":
        return Tensor(np.asarray(value, dtype=dtype), device)
    xp = backend.xp_for(device)
    with backend.device_context(device):
        return Tensor(xp.asarray(value, dtype=dtype), device)


def operands(op: str, a, b) -> tuple[Tensor, Tensor]:
    """Make tensors of a binary op's operands, promoting dtypes as PyTorch does."""
    a_is, b_is = isinstance(a, Tensor), isinstance(b, Tensor)
    if a_is and b_is:
        if a.data.shape == b.data.shape and a.data.dtype is b.data.dtype and a.device is b.device:
            return a, b  # the common case: nothing to promote or check
        if a.device != b.device:
            raise RuntimeError(
                f"{op}: expected both operands on the same device, got {a.device} and {b.device}"
            )
        if a.shape != b.shape:
            broadcast_shapes(op, a.shape, b.shape)
        dt = result_dtype(a.dtype, b.dtype)
        if a.dtype != dt:
            a = a.to(dt)
        if b.dtype != dt:
            b = b.to(dt)
        return a, b
    if a_is:
        dt = scalar_dtype(b, a.dtype)
        if a.dtype != dt:
            a = a.to(dt)
        b = constant(_plain(op, b), dt, a.device)
        if b.ndim:
            broadcast_shapes(op, a.shape, b.shape)
        return a, b
    if b_is:
        dt = scalar_dtype(a, b.dtype)
        if b.dtype != dt:
            b = b.to(dt)
        a = constant(_plain(op, a), dt, b.device)
        if a.ndim:
            broadcast_shapes(op, a.shape, b.shape)
        return a, b
    raise TypeError(f"{op}: expected at least one Tensor operand")


def _plain(op, value):
    if isinstance(value, (numbers.Number, np.generic)):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        return np.asarray(value)
    raise TypeError(f"{op}: unsupported operand type {type(value).__name__}")


def broadcast_shapes(op: str, *shapes) -> tuple:
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            f"{op}: shapes {' and '.join(str(tuple(s)) for s in shapes)} are not broadcastable"
        ) from None


def normalize_dim(op: str, dim: int, ndim: int) -> int:
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(
            f"{op}: dimension out of range (expected to be in range of [{-n}, {n - 1}], "
            f"but got {dim})"
        )
    return dim % n


def normalize_dims(op: str, dim, ndim: int) -> tuple | None:
    """A sorted tuple of non-negative axes, or None for 'all dims'."""
    if dim is None:
        return None
    if isinstance(dim, (int, np.integer)):
        dim = (int(dim),)
    dims = tuple(sorted({normalize_dim(op, d, ndim) for d in dim}))
    if ndim == 0:
        return ()
    return dims


def as_tensor(value, like: Tensor | None = None) -> Tensor:
    if isinstance(value, Tensor):
        return value
    device = like.device if like is not None else backend.CPU
    dtype = None
    if like is not None and isinstance(value, numbers.Number):
        dtype = scalar_dtype(value, like.dtype)
    arr = np.asarray(value, dtype=dtype)
    if dtype is None and arr.dtype == np.float64 and not isinstance(value, np.ndarray):
        arr = arr.astype(backend.get_default_dtype())
    return Tensor(backend.to_device(arr, device), device)
