"""Launch Numba-compiled CUDA kernels through CuPy, without Numba's per-call machinery.

Numba compiles each kernel (once per signature) and links it to a cubin; launching it through
Numba then costs 60-130 us of Python per call on an H200 host (typing every argument through
the CUDA array interface, wrapping CuPy arrays, building ctypes values), against ~9 us for a
CuPy ufunc. Measured there, that made the LeNet step launch-bound. Here the same cubin is
loaded once into a CuPy module and launched with CuPy's driver call, the arguments laid out as
Numba's kernel ABI expects them:

- an array of n dimensions is 5 + 2n parameters: meminfo and parent (unused, 0), the item
  count, the item size, the data pointer, then n extents and n strides in bytes;
- an integer is its own width (int64 here), a float32 / float64 its own, a bool one byte.

``kernel_params`` builds that list; a test checks it against the parameter list of each
kernel's PTX. Only C-contiguous CuPy arrays and plain scalars take this path; anything else
returns None from ``numba_argtypes`` and goes through Numba's own launcher.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.np import numpy_support

_array_types: dict = {}


_INT64 = np.iinfo(np.int64)


def _array_type(dtype, ndim):
    key = (dtype, ndim)
    ty = _array_types.get(key)
    if ty is None:
        ty = _array_types[key] = types.Array(numpy_support.from_dtype(dtype), ndim, "C")
    return ty


def numba_argtypes(args, array_class):
    """The Numba types Numba itself would give `args` (instances of `array_class` must be
    C-contiguous), or None when some argument needs Numba's own launcher."""
    out = []
    try:
        for a in args:
            if isinstance(a, array_class):
                if not a.flags.c_contiguous:
                    return None
                out.append(_array_type(a.dtype, a.ndim))
            elif isinstance(a, (bool, np.bool_)):
                out.append(types.boolean)
            elif isinstance(a, int):
                if not _INT64.min <= a <= _INT64.max:
                    return None  # Numba types it uint64 or refuses it; let Numba decide
                out.append(types.int64)
            elif isinstance(a, float):
                out.append(types.float64)
            elif isinstance(a, np.generic) and a.dtype.kind in "iuf":
                out.append(numpy_support.from_dtype(a.dtype))
            else:
                return None
    except NotImplementedError:  # a dtype Numba cannot type: its launcher says so clearly
        return None
    return tuple(out)


def _data_pointer(a) -> int:
    return a.data.ptr


def kernel_params(argtypes, args, data_pointer=_data_pointer) -> list:
    """The flat kernel parameters, as NumPy scalars of the widths Numba's ABI uses."""
    params = []
    for ty, a in zip(argtypes, args, strict=True):
        if isinstance(ty, types.Array):
            params += [np.uint64(0), np.uint64(0), np.int64(a.size), np.int64(a.itemsize),
                       np.uint64(data_pointer(a))]
            params += [np.int64(n) for n in a.shape]
            params += [np.int64(s) for s in a.strides]
        elif ty == types.boolean:
            params.append(np.uint8(bool(a)))
        elif isinstance(ty, (types.Integer, types.Float)):
            params.append(np.dtype(str(ty)).type(a))
        else:
            raise TypeError(f"no launch ABI for a {ty} argument")
    return params


def cubin_bytes(image) -> bytes:
    """The bytes of the linked image Numba hands back: raw bytes from older numba-cuda, a
    ``cuda.core.ObjectCode`` (bytes in ``.code``, or a file path) from numba-cuda 0.30 on."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    code = getattr(image, "code", None)
    if isinstance(code, str):
        with open(code, "rb") as f:
            return f.read()
    if code is None:
        raise TypeError(f"cannot read a linked image from a {type(image).__name__}")
    return bytes(code)


class CupyLauncher:
    """One kernel specialization, compiled by Numba and loaded into a CuPy module."""

    def __init__(self, dispatcher, argtypes, cp):
        compiled = dispatcher.compile(argtypes)
        module = cp.cuda.function.Module()
        module.load(cubin_bytes(compiled.library.get_cubin()))
        self._module = module  # the function lives as long as its module
        self._function = module.get_function(compiled.entry_name)
        self.argtypes = argtypes

    def __call__(self, blocks, threads, args, stream) -> None:
        params = kernel_params(self.argtypes, args)
        self._function((blocks, 1, 1), (threads, 1, 1), tuple(params), stream=stream)
