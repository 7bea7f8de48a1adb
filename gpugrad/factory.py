"""Creating tensors: `gg.tensor`, zeros/ones/full/empty, ranges, random tensors, interop."""

from __future__ import annotations

import math
import numbers

import numpy as np

from gpugrad import backend
from gpugrad.ops.common import is_int
from gpugrad.tensor import Tensor


# The dtypes gpugrad computes in (NumPy's names, native byte order).
SUPPORTED_DTYPES = tuple(np.dtype(t) for t in (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64",
))


def check_dtype(op: str, dtype) -> np.dtype:
    """`dtype` as a NumPy dtype, or a TypeError naming `op` if gpugrad can't compute in it."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{op}: {dtype!r} is not a dtype") from None
    if dt not in SUPPORTED_DTYPES:
        if dt.kind == "c":
            raise TypeError(f"{op}: complex numbers are not supported (dtype {dt})")
        if dt.kind in "biuf" and dt.newbyteorder("=") in SUPPORTED_DTYPES:
            raise TypeError(f"{op}: dtype {dt.str} is not in the machine's byte order")
        raise TypeError(
            f"{op}: unsupported dtype {dt} (gpugrad supports bool, int8, int16, int32, int64, "
            "uint8, uint16, uint32, uint64, float16, float32 and float64)"
        )
    return dt


def _resolve(dtype, device, default=None, op="factory"):
    dev = backend.as_device(device)
    if dtype is not None:
        dt = check_dtype(op, dtype)
    else:
        dt = default or backend.get_default_dtype()
    return dt, dev


def _finish(array, dev, requires_grad):
    return Tensor(array, dev, requires_grad=requires_grad)


def _native(arr: np.ndarray, op: str) -> np.ndarray:
    """A NumPy array gpugrad can hold: a big-endian one converted (a copy), others checked."""
    dt = arr.dtype
    if dt.kind in "biuf" and not dt.isnative and dt.newbyteorder("=") in SUPPORTED_DTYPES:
        return arr.astype(dt.newbyteorder("="))
    check_dtype(op, dt)
    return arr


def _leaf_dtypes(data, out: set) -> None:
    """Collect into `out` the dtypes PyTorch infers for the leaves of nested lists/tuples."""
    types = set(map(type, data))
    for t in types:
        if t is list or t is tuple:
            for item in data:
                if type(item) is t:
                    _leaf_dtypes(item, out)
        elif t is bool:
            out.add(backend.bool_)
        elif t is int:
            out.add(backend.int64)
        elif t is float:
            out.add(backend.get_default_dtype())
        elif t is complex:
            raise TypeError("tensor: complex numbers are not supported")
        elif issubclass(t, np.generic):
            out.add(np.dtype(t))  # a NumPy scalar keeps its dtype, as in PyTorch
        elif issubclass(t, (Tensor, np.ndarray)):
            out.update(item.dtype for item in data if type(item) is t)
        else:
            raise TypeError(
                f"tensor: could not infer a dtype from the data (got Python objects of type "
                f"{t.__name__}); nested lists must be rectangular and hold numbers"
            )


def _promote(a: np.dtype, b: np.dtype) -> np.dtype:
    # PyTorch's promoteTypes: a float beats any integer (int64 + float16 is float16).
    if (a.kind == "f") != (b.kind == "f"):
        return a if a.kind == "f" else b
    return np.promote_types(a, b)


def _infer_dtype(data) -> np.dtype:
    """The dtype PyTorch's torch.tensor infers for `data` (a number or nested sequences)."""
    if isinstance(data, (list, tuple)):
        dtypes: set = set()
        _leaf_dtypes(data, dtypes)
        if not dtypes:
            return backend.get_default_dtype()
        out = None
        for dt in dtypes:
            out = dt if out is None else _promote(out, dt)
        return out
    dtypes = set()
    _leaf_dtypes([data], dtypes)
    return dtypes.pop()


def _overflow(dtype, what="a Python int") -> Exception:
    if what == "a Python int":
        return ValueError(f"tensor: a Python int cannot be converted to {dtype} without "
                          "overflow (Python ints must fit in int64, as in PyTorch)")
    return RuntimeError(f"tensor: {what} cannot be converted to type {dtype} without overflow")


def _build(data, dtype=None):
    try:
        return np.array(data, dtype=dtype)
    except ValueError as e:
        msg = str(e)
        if "sequence" in msg or "inhomogeneous" in msg:
            raise ValueError(
                f"tensor: could not build a tensor from ragged nested data ({msg})"
            ) from None
        raise ValueError(f"tensor: {msg}") from None
    except OverflowError as e:
        raise ValueError(f"tensor: {e}") from None


def _to_int_dtype(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """arr cast to an integer dtype with PyTorch's checks: NaN, inf and values out of range
    raise; a negative int into an unsigned dtype wraps (-1 gives 255 for uint8)."""
    info = np.iinfo(dtype)
    if arr.dtype == object:
        raise _overflow(dtype)
    if arr.size and arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or arr.min() < info.min or arr.max() > info.max:
            raise _overflow(dtype, "a NaN, infinite or out-of-range value")
    elif arr.size and arr.dtype.kind in "iu":
        lo, hi = int(arr.min()), int(arr.max())
        if hi > info.max or (lo < info.min if dtype.kind == "i" else -lo > info.max):
            if hi > np.iinfo(np.int64).max:
                raise _overflow(dtype)
            raise _overflow(dtype, f"the value {hi if hi > info.max else lo}")
    return arr.astype(dtype)


def _infer_array(data, dtype=None):
    """NumPy arrays keep their dtype (byte order made native); nested lists and scalars infer
    theirs as torch.tensor does: Python floats give the default float dtype, ints int64, and
    NumPy scalars and 0-d tensors keep theirs."""
    if isinstance(data, np.ndarray):
        arr = _native(data, "tensor")
        return arr if dtype is None else arr.astype(dtype)  # as PyTorch: a plain cast
    if dtype is not None:
        if dtype.kind in "iu":
            return _to_int_dtype(_build(data), dtype)
        return _build(data, dtype)
    if not isinstance(data, (list, tuple, numbers.Number, np.generic, Tensor)):
        if not (hasattr(data, "__array__") or hasattr(data, "__array_interface__")):
            raise TypeError(f"tensor: could not infer a dtype from data of type "
                            f"{type(data).__name__}; expected numbers, nested lists or arrays")
        return _native(_build(data), "tensor")  # an array-like (a torch tensor, ...)
    inferred = _infer_dtype(data)
    check_dtype("tensor", inferred)
    if inferred.kind in "iu":
        arr = _build(data)
        if arr.dtype.kind not in "biu" or (arr.dtype == np.uint64 and inferred != np.uint64):
            raise _overflow(inferred)
        return arr.astype(inferred, copy=False)
    return _build(data, inferred)


def tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A new tensor holding a copy of `data` (nested lists, scalars, arrays or a Tensor)."""
    if isinstance(data, Tensor):
        arr = data.data
        dev = backend.as_device(device) if device is not None else data.device
        arr = backend.to_device(arr, dev)
        arr = arr.astype(check_dtype("tensor", dtype) if dtype is not None else arr.dtype,
                         copy=True)
        return _finish(arr, dev, requires_grad)
    cp = backend.cupy_module()
    if cp is not None and isinstance(data, cp.ndarray):
        dev = backend.as_device(device) if device is not None else backend.device_of_array(data)
        arr = backend.to_device(data, dev)
        arr = arr.astype(check_dtype("tensor", dtype if dtype is not None else arr.dtype),
                         copy=True)
        return _finish(arr, dev, requires_grad)
    arr = _infer_array(data, None if dtype is None else check_dtype("tensor", dtype))
    dev = backend.as_device(device)
    if dev.type == "cpu" or backend.uses_simulated_cuda():
        arr = np.array(arr, copy=True)
    else:
        arr = backend.to_device(arr, dev)
    return _finish(arr, dev, requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like `tensor`, but shares memory when no copy is needed."""
    if isinstance(data, Tensor) and (dtype is None or data.dtype == np.dtype(dtype)) and (
        device is None or data.device == backend.as_device(device)
    ):
        return data
    if isinstance(data, np.ndarray) and data.dtype in SUPPORTED_DTYPES and (
        dtype is None or data.dtype == np.dtype(dtype)
    ) and (device is None or backend.as_device(device).type == "cpu"):
        return Tensor(data, backend.CPU)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A CPU tensor sharing memory with `array`."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray, got {type(array).__name__}")
    dt = array.dtype
    if dt.kind in "biuf" and not dt.isnative and dt.newbyteorder("=") in SUPPORTED_DTYPES:
        # PyTorch refuses it too; a copy could not share memory with `array`.
        raise ValueError(
            f"from_numpy: the array's byte order ({dt.str}) is not the machine's, so a tensor "
            "can't share its memory; convert it first: "
            "array.astype(array.dtype.newbyteorder('=')), or use gg.tensor (a copy)"
        )
    check_dtype("from_numpy", dt)
    return Tensor(array, backend.CPU)


def from_dlpack(obj) -> Tensor:
    """Zero-copy import of any DLPack producer (NumPy, CuPy, PyTorch, JAX...)."""
    if isinstance(obj, Tensor):
        return obj
    dev_type, dev_id = obj.__dlpack_device__()
    if int(dev_type) == 1:  # kDLCPU
        return Tensor(np.from_dlpack(obj), backend.CPU)
    if int(dev_type) == 2:  # kDLCUDA
        cp = backend.cupy_module()
        if cp is None:
            raise RuntimeError(f"from_dlpack: a CUDA array needs CuPy: {backend.cuda_unavailable_reason()}")
        return Tensor(cp.from_dlpack(obj), backend.device("cuda", int(dev_id)))
    raise RuntimeError(f"from_dlpack: unsupported DLPack device type {dev_type}")


def _sizes(op, size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for s in size:
        if not is_int(s) or s < 0:
            raise ValueError(f"{op}: expected non-negative integer sizes, got {tuple(size)}")
    return tuple(int(s) for s in size)


def _count(op, name, n):
    if not is_int(n) or n < 0:
        raise ValueError(f"{op}: {name} must be a non-negative integer, got {n!r}")
    return int(n)


def _filled(op, fill, size, dtype, device, requires_grad):
    dt, dev = _resolve(dtype, device, op=op)
    xp = backend.xp_for(dev)
    with backend.device_context(dev):
        arr = xp.full(_sizes(op, size), fill, dtype=dt)
    return _finish(arr, dev, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled("zeros", 0, size, dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled("ones", 1, size, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled("empty", 0, size, dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of `size` filled with `fill_value`; the dtype is inferred as in PyTorch (bool,
    int64 for any integer, else the default float) and the value checked against it."""
    from gpugrad.ops.common import check_scalar_fits

    if isinstance(fill_value, Tensor):
        if fill_value.ndim != 0:
            raise TypeError(
                f"full: fill_value must be a number or a 0-d tensor, got a tensor of shape "
                f"{fill_value.shape}"
            )
        fill_value = fill_value.item()
    if isinstance(fill_value, np.bool_):
        fill_value = float(fill_value)  # PyTorch reads a NumPy bool as a float
    if isinstance(fill_value, complex) or not isinstance(fill_value, numbers.Number):
        raise TypeError(f"full: fill_value must be a real number, got {fill_value!r}")
    if dtype is None and isinstance(fill_value, bool):
        dtype = backend.bool_
    elif dtype is None and isinstance(fill_value, numbers.Integral) and not isinstance(
        fill_value, np.bool_
    ):
        dtype = backend.int64
    dt = check_dtype("full", dtype) if dtype is not None else backend.get_default_dtype()
    fill_value = check_scalar_fits("full", fill_value, dt)
    return _filled("full", fill_value, (size,) if isinstance(size, int) else tuple(size), dt,
                   device, requires_grad)


def _like(x, dtype, device):
    return (dtype if dtype is not None else x.dtype), (device if device is not None else x.device)


def zeros_like(x, dtype=None, device=None, requires_grad=False) -> Tensor:
    dt, dev = _like(x, dtype, device)
    return zeros(x.shape, dtype=dt, device=dev, requires_grad=requires_grad)


def ones_like(x, dtype=None, device=None, requires_grad=False) -> Tensor:
    dt, dev = _like(x, dtype, device)
    return ones(x.shape, dtype=dt, device=dev, requires_grad=requires_grad)


def full_like(x, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    dt, dev = _like(x, dtype, device)
    return full(x.shape, fill_value, dtype=dt, device=dev, requires_grad=requires_grad)


def empty_like(x, dtype=None, device=None, requires_grad=False) -> Tensor:
    return zeros_like(x, dtype=dtype, device=device, requires_grad=requires_grad)


def _range_value(op, v):
    if isinstance(v, Tensor):
        if v.numel() != 1:
            raise TypeError(f"{op}: expected a number or a one-element tensor, got shape {v.shape}")
        v = v.item()
    if isinstance(v, np.bool_):
        v = bool(v)
    if isinstance(v, complex) or not isinstance(v, numbers.Real):
        raise TypeError(f"{op}: expected a real number, got {v!r}")
    return v


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    """start, start + step, ... up to end (excluded). As in PyTorch: int64 when start, end and
    step are integers, and an integer dtype truncates them first (arange(0, 2, 0.5,
    dtype=int64) has step 0 and raises)."""
    if end is None:
        start, end = 0, start
    start, end, step = (_range_value("arange", v) for v in (start, end, step))
    for v in (start, end, step):
        if not np.isfinite(v):
            raise RuntimeError(f"arange: unsupported range: {start} -> {end} (step {step})")
    all_ints = all(isinstance(v, numbers.Integral) for v in (start, end, step))
    dt, dev = _resolve(dtype, device, backend.int64 if all_ints else None, "arange")
    if dt.kind == "b":
        raise TypeError("arange: not implemented for dtype bool")
    if dt.kind in "iu":
        start, end, step = int(start), int(end), int(step)  # truncated, as in PyTorch
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise ValueError(
            f"arange: upper bound and step sign are inconsistent (start={start}, end={end}, "
            f"step={step})"
        )
    if dt.kind == "f":
        q = (end - start) / step
        n = math.ceil(q) if math.isfinite(q) else q
    else:
        n = -((start - end) // step)
    if not math.isfinite(n) or n > np.iinfo(np.int64).max:
        raise RuntimeError(
            f"arange: invalid size {float(n):.3g} for start={start}, end={end}, step={step} "
            "(possible overflow?)"
        )
    xp = backend.xp_for(dev)
    with backend.device_context(dev):
        if dt.kind in "iu":
            arr = xp.arange(start, end, step, dtype=np.int64).astype(dt)  # wraps, as PyTorch
        else:
            arr = xp.arange(start, end, step).astype(dt)
    return _finish(arr, dev, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False) -> Tensor:
    dt, dev = _resolve(dtype, device, op="linspace")
    xp = backend.xp_for(dev)
    with backend.device_context(dev):
        arr = xp.linspace(start, end, _count("linspace", "steps", steps)).astype(dt)
    return _finish(arr, dev, requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    dt, dev = _resolve(dtype, device, op="eye")
    xp = backend.xp_for(dev)
    with backend.device_context(dev):
        n = _count("eye", "n", n)
        m = n if m is None else _count("eye", "m", m)
        arr = xp.eye(n, m, dtype=dt)
    return _finish(arr, dev, requires_grad)


def _draw(method, size, dtype):
    """Draw float32/float64 directly; other float dtypes (float16) via float32."""
    if dtype.kind != "f":
        raise TypeError(f"expected a floating-point dtype for random floats, got {dtype}")
    if dtype in (backend.float32, backend.float64):
        return method(size, dtype=dtype)
    return method(size, dtype=backend.float32).astype(dtype)


def rand(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform on [0, 1), from the device's generator (seeded by gg.manual_seed)."""
    dt, dev = _resolve(dtype, device, op="rand")
    with backend.device_context(dev):
        arr = _draw(backend.generator(dev).random, _sizes("rand", size), dt)
    return _finish(arr, dev, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal, from the device's generator (seeded by gg.manual_seed)."""
    dt, dev = _resolve(dtype, device, op="randn")
    with backend.device_context(dev):
        arr = _draw(backend.generator(dev).standard_normal, _sizes("randn", size), dt)
    return _finish(arr, dev, requires_grad)


def _check_int_bound(op, name, v):
    if isinstance(v, Tensor) and v.ndim == 0 and v.dtype.kind in "iu":
        v = v.item()
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{op}: {name} must be an int, got {v!r}")
    if not -(2**63) <= v < 2**63:
        raise ValueError(f"{op}: {name}={v} does not fit in int64")
    return int(v)


def randint(low, high=None, size=None, dtype=None, device=None) -> Tensor:
    """Integers in [low, high), as PyTorch's randint(low=0, high, size); size is a tuple."""
    if size is None:
        if high is None or not isinstance(high, (tuple, list)):
            raise TypeError(
                "randint: expected randint(high, size) or randint(low, high, size) with size a "
                f"tuple of ints, got size {high!r}"
            )
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    if not isinstance(size, (tuple, list)):
        raise TypeError(f"randint: size must be a tuple of ints, got {size!r}")
    low, high = _check_int_bound("randint", "low", low), _check_int_bound("randint", "high", high)
    if high <= low:
        raise ValueError(f"randint: expected low < high, got low={low}, high={high}")
    dt, dev = _resolve(dtype, device, backend.int64, "randint")
    if dt.kind in "iub":
        info = np.iinfo(dt) if dt.kind != "b" else np.iinfo(np.uint8)
        top = 1 if dt.kind == "b" else info.max
        if not info.min <= low <= top:
            raise RuntimeError(f"randint: low={low} is out of bounds for {dt}")
        if not info.min <= high - 1 <= top:
            raise RuntimeError(f"randint: high - 1 = {high - 1} is out of bounds for {dt}")
    with backend.device_context(dev):
        arr = backend.generator(dev).integers(low, high, size=_sizes("randint", size)).astype(dt)
    return _finish(arr, dev, False)


def randperm(n, dtype=None, device=None) -> Tensor:
    """A random permutation of 0..n-1; n - 1 must be exact in `dtype`, as in PyTorch."""
    dt, dev = _resolve(dtype, device, backend.int64, "randperm")
    n = _count("randperm", "n", n)
    if dt.kind == "b":
        raise TypeError("randperm: not implemented for dtype bool")
    limit = np.iinfo(dt).max + 1 if dt.kind in "iu" else 2 ** (np.finfo(dt).nmant + 1) + 1
    if n > limit:
        raise RuntimeError(f"randperm: n={n} is too large for {dt} (at most {limit})")
    with backend.device_context(dev):
        arr = backend.generator(dev).permutation(n).astype(dt)
    return _finish(arr, dev, False)


def rand_like(x, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform on [0, 1) with x's shape (and dtype and device, unless given)."""
    dt, dev = _like(x, dtype, device)
    return rand(x.shape, dtype=dt, device=dev, requires_grad=requires_grad)


def randn_like(x, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal with x's shape (and dtype and device, unless given)."""
    dt, dev = _like(x, dtype, device)
    return randn(x.shape, dtype=dt, device=dev, requires_grad=requires_grad)
