"""Input checks shared by the kernel dispatchers: clear errors instead of wrong answers."""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_float_array(op: str, name: str, a, ndim: int | None = None, shape=None) -> None:
    """Raise unless `a` is a float32/float64 array with `ndim` dimensions / this `shape`."""
    dtype = getattr(a, "dtype", None)
    if dtype is None or not hasattr(a, "shape"):
        raise TypeError(f"{op}: {name} must be an array, got {type(a).__name__}")
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must be float32 or float64, got {dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{op}: {name} must have {ndim} dimensions, got shape {tuple(a.shape)}")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise ValueError(f"{op}: {name} must have shape {tuple(shape)}, got {tuple(a.shape)}")


def check_same_dtype(op: str, name: str, a, dtype) -> None:
    if a.dtype != dtype:
        raise TypeError(f"{op}: {name} must be {dtype} like the input, got {a.dtype}")
