"""Creating tensors: `gg.tensor`, zeros/ones/full/empty, ranges, random tensors, interop."""

from __future__ import annotations

import numpy as np

from gpugrad import backend
from gpugrad.tensor import Tensor


def _resolve(dtype, device, default=None):
    dev = backend.as_device(device)
    dt = np.dtype(dtype) if dtype is not None else (default or backend.get_default_dtype())
    return dt, dev


def _finish(array, dev, requires_grad):
    return Tensor(array, dev, requires_grad=requires_grad)


def _infer_array(data, dtype=None):
    """NumPy arrays keep their dtype; Python floats become the default float dtype."""
    if isinstance(data, np.ndarray):
        return data if dtype is None else data.astype(dtype)
    try:
        arr = np.array(data, dtype=dtype)
    except ValueError as e:
        raise ValueError(f"tensor: could not build a tensor from ragged nested data ({e})") from None
    if arr.dtype == object:
        raise TypeError(
            f"tensor: could not infer a dtype from the data (got Python objects of type "
            f"{type(data).__name__}); nested lists must be rectangular and hold numbers"
        )
    if dtype is not None:
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"tensor: unsupported dtype {arr.dtype} (bool, int, uint and float "
                            "dtypes are supported)")
        return arr
    if arr.dtype.kind == "f" and not isinstance(data, np.generic):
        arr = arr.astype(backend.get_default_dtype())
    elif arr.dtype.kind in "iu" and not isinstance(data, np.generic):
        arr = arr.astype(backend.int64)
    elif arr.dtype.kind == "c":
        raise TypeError("tensor: complex numbers are not supported")
    elif arr.dtype.kind not in "biuf":
        raise TypeError(f"tensor: unsupported data of dtype {arr.dtype}")
    return arr


def tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A new tensor holding a copy of `data` (nested lists, scalars, arrays or a Tensor)."""
    if isinstance(data, Tensor):
        arr = data.data
        dev = backend.as_device(device) if device is not None else data.device
        arr = backend.to_device(arr, dev)
        arr = arr.astype(dtype if dtype is not None else arr.dtype, copy=True)
        return _finish(arr, dev, requires_grad)
    cp = backend.cupy_module()
    if cp is not None and isinstance(data, cp.ndarray):
        dev = backend.as_device(device) if device is not None else backend.device_of_array(data)
        arr = backend.to_device(data, dev)
        arr = arr.astype(dtype if dtype is not None else arr.dtype, copy=True)
        return _finish(arr, dev, requires_grad)
    arr = _infer_array(data, None if dtype is None else np.dtype(dtype))
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
    if isinstance(data, np.ndarray) and (dtype is None or data.dtype == np.dtype(dtype)) and (
        device is None or backend.as_device(device).type == "cpu"
    ):
        return Tensor(data, backend.CPU)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A CPU tensor sharing memory with `array`."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray, got {type(array).__name__}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"from_numpy: unsupported dtype {array.dtype}")
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
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"{op}: expected non-negative integer sizes, got {tuple(size)}")
    return tuple(int(s) for s in size)


def _count(op, name, n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{op}: {name} must be a non-negative integer, got {n!r}")
    return int(n)


def _filled(op, fill, size, dtype, device, requires_grad):
    dt, dev = _resolve(dtype, device)
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
    if dtype is None and isinstance(fill_value, bool):
        dtype = backend.bool_
    elif dtype is None and isinstance(fill_value, int):
        dtype = backend.int64
    return _filled("full", fill_value, (size,) if isinstance(size, int) else tuple(size), dtype, device,
                   requires_grad)


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


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise ValueError(
            f"arange: upper bound and step sign are inconsistent (start={start}, end={end}, "
            f"step={step})"
        )
    all_ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    dt, dev = _resolve(dtype, device, backend.int64 if all_ints else None)
    xp = backend.xp_for(dev)
    with backend.device_context(dev):
        arr = xp.arange(start, end, step).astype(dt)
    return _finish(arr, dev, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False) -> Tensor:
    dt, dev = _resolve(dtype, device)
    xp = backend.xp_for(dev)
    with backend.device_context(dev):
        arr = xp.linspace(start, end, _count("linspace", "steps", steps)).astype(dt)
    return _finish(arr, dev, requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    dt, dev = _resolve(dtype, device)
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
    dt, dev = _resolve(dtype, device)
    with backend.device_context(dev):
        arr = _draw(backend.generator(dev).random, _sizes("rand", size), dt)
    return _finish(arr, dev, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal, from the device's generator (seeded by gg.manual_seed)."""
    dt, dev = _resolve(dtype, device)
    with backend.device_context(dev):
        arr = _draw(backend.generator(dev).standard_normal, _sizes("randn", size), dt)
    return _finish(arr, dev, requires_grad)


def randint(low, high=None, size=None, dtype=None, device=None) -> Tensor:
    """Integers in [low, high), as PyTorch's randint(low=0, high, size)."""
    if size is None:
        if high is None or not isinstance(high, (tuple, list)):
            raise TypeError("randint: expected (high, size) or (low, high, size)")
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    if high <= low:
        raise ValueError(f"randint: expected low < high, got low={low}, high={high}")
    dt, dev = _resolve(dtype, device, backend.int64)
    with backend.device_context(dev):
        arr = backend.generator(dev).integers(low, high, size=_sizes("randint", size)).astype(dt)
    return _finish(arr, dev, False)


def randperm(n, dtype=None, device=None) -> Tensor:
    dt, dev = _resolve(dtype, device, backend.int64)
    with backend.device_context(dev):
        arr = backend.generator(dev).permutation(_count("randperm", "n", n)).astype(dt)
    return _finish(arr, dev, False)
