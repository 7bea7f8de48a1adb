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


# PyTorch's dtype categories, lowest first: a 0-d tensor only decides the result's dtype
# when its category is above that of the tensors with dimensions it meets.
DTYPE_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}


def tensors_result_dtype(a: Tensor, b: Tensor) -> np.dtype:
    """PyTorch's promotion of two tensors: as result_dtype, except that a 0-d tensor next to
    a tensor with dimensions of its category or above takes that tensor's dtype
    (float32 tensor + float64 0-d tensor is float32, int32 + int64 0-d is int32)."""
    cat_a, cat_b = DTYPE_CATEGORY[a.dtype.kind], DTYPE_CATEGORY[b.dtype.kind]
    if a.ndim == 0 and b.ndim != 0 and cat_a <= cat_b:
        return b.dtype
    if b.ndim == 0 and a.ndim != 0 and cat_b <= cat_a:
        return a.dtype
    return result_dtype(a.dtype, b.dtype)


def scalar_dtype(value, like_dtype, op: str = "operand") -> np.dtype:
    """The dtype a Python scalar takes next to a tensor of `like_dtype` (PyTorch rules)."""
    like_dtype = np.dtype(like_dtype)
    if isinstance(value, (bool, np.bool_)):
        return like_dtype
    if isinstance(value, numbers.Integral):
        return like_dtype if like_dtype.kind != "b" else backend.int64
    if isinstance(value, numbers.Real):
        return like_dtype if like_dtype.kind == "f" else backend.get_default_dtype()
    raise TypeError(f"{op}: unsupported operand type {type(value).__name__}, expected a Tensor "
                    "or a Python number")


def check_scalar_fits(op: str, value, dtype, floats: bool = True):
    """A Python number checked against `dtype` as PyTorch's checked conversion does; returns the
    value to store. A negative int wraps into an unsigned dtype (uint8: -1 gives 255, as in
    PyTorch), NaN, inf or an out-of-range value into an integer dtype raises, and so does a
    finite float beyond a float dtype's range when `floats` (PyTorch's fill / masked_fill)."""
    dtype = np.dtype(dtype)
    if isinstance(value, (bool, np.bool_)) or dtype.kind == "b":
        return value
    if dtype.kind in "iu" and isinstance(value, numbers.Integral):
        v = int(value)
        info = np.iinfo(dtype)
        ok = v <= info.max and (v >= info.min if dtype.kind == "i" else -v <= info.max)
        if ok:
            return v % (info.max + 1) if v < 0 and dtype.kind == "u" else v
    elif dtype.kind in "iu" and isinstance(value, numbers.Real):
        v = float(value)
        info = np.iinfo(dtype)
        if v == v and info.min <= v <= info.max:
            return v
    elif dtype.kind == "f" and isinstance(value, numbers.Real) and floats:
        v = float(value)
        big = float(np.finfo(dtype).max)
        if not (v == v and v not in (float("inf"), float("-inf")) and abs(v) > big):
            return value
    else:
        return value
    raise RuntimeError(f"{op}: value {value!r} cannot be converted to type {dtype} without "
                       "overflow")


def constant(value, dtype, device) -> Tensor:
    """A tensor that holds a constant (no grad) on `device`."""
    if type(value) is not float and isinstance(value, numbers.Integral) \
            and np.dtype(dtype).kind in "iu":  # (a float, the common case, skips the ABC check)
        # A Python int out of the dtype's range wraps around, as in PyTorch (uint8 + 300 adds
        # 44); NumPy would raise OverflowError.
        value = np.asarray(value).astype(dtype)
    if device.type == "cpu":
        return Tensor(np.asarray(value, dtype=dtype), device)
    xp = backend.xp_for(device)
    with backend.device_context(device):
        return Tensor(xp.asarray(value, dtype=dtype), device)


def operands(op: str, a, b) -> tuple[Tensor, Tensor]:
    """Make tensors of a binary op's operands, promoting dtypes as PyTorch does."""
    a_is, b_is = isinstance(a, Tensor), isinstance(b, Tensor)
    if a_is != b_is and isinstance(b if a_is else a, np.ndarray):
        # A NumPy array next to a tensor is a tensor (as torch.as_tensor would make it).
        if a_is:
            b, b_is = _array_operand(op, b, a.device), True
        else:
            a, a_is = _array_operand(op, a, b.device), True
    if a_is and b_is:
        if a.data.shape == b.data.shape and a.data.dtype is b.data.dtype and a.device is b.device:
            return a, b  # the common case: nothing to promote or check
        if a.device != b.device:
            raise RuntimeError(
                f"{op}: expected both operands on the same device, got {a.device} and {b.device}"
            )
        if a.shape != b.shape:
            broadcast_shapes(op, a.shape, b.shape)
        dt = tensors_result_dtype(a, b)
        if a.dtype != dt:
            a = a.to(dt)
        if b.dtype != dt:
            b = b.to(dt)
        return a, b
    if a_is:
        dt = scalar_dtype(b, a.dtype, op)
        if a.dtype != dt:
            a = a.to(dt)
        b = constant(_plain(op, b), dt, a.device)
        if b.ndim:
            broadcast_shapes(op, a.shape, b.shape)
        return a, b
    if b_is:
        dt = scalar_dtype(a, b.dtype, op)
        if b.dtype != dt:
            b = b.to(dt)
        a = constant(_plain(op, a), dt, b.device)
        if a.ndim:
            broadcast_shapes(op, a.shape, b.shape)
        return a, b
    raise TypeError(f"{op}: expected at least one Tensor operand")


def _array_operand(op: str, arr: np.ndarray, device) -> Tensor:
    if device.type != "cpu":
        raise TypeError(f"{op}: expected a Tensor on {device}, got a NumPy array (make it one "
                        f"with gg.tensor(array, device={str(device)!r}); no implicit copies)")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{op}: unsupported operand type ndarray of dtype {arr.dtype}")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return Tensor(arr, device)


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


def is_int(value) -> bool:
    """A Python or NumPy integer but not a bool: what a dim, a size or an index may be."""
    return type(value) is int or (  # the common case first: a plain int
        isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)))


def normalize_dim(op: str, dim: int, ndim: int) -> int:
    if not is_int(dim):
        raise TypeError(f"{op}: dim must be an int, got {dim!r} ({type(dim).__name__})")
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(
            f"{op}: dimension out of range (expected to be in range of [{-n}, {n - 1}], "
            f"but got {dim})"
        )
    return dim % n


def normalize_dims(op: str, dim, ndim: int) -> tuple | None:
    """A sorted tuple of non-negative axes, or None for 'all dims': None, and an empty tuple
    or list as in PyTorch (`x.sum(dim=())` sums everything). A dim given twice raises, as in
    PyTorch."""
    if dim is None:
        return None
    if is_int(dim):
        dim = (int(dim),)
    if not isinstance(dim, (tuple, list)):
        raise TypeError(
            f"{op}: dim must be an int or a tuple of ints, got {dim!r} ({type(dim).__name__})"
        )
    if len(dim) == 0:
        return None
    dims = [normalize_dim(op, d, ndim) for d in dim]
    for k, d in enumerate(dims):
        if d in dims[:k]:
            raise RuntimeError(f"{op}: dim {d} appears multiple times in the list of dims {dim}")
    if ndim == 0:
        return ()
    return tuple(sorted(dims))


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
