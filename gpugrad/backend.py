"""The device-agnostic array backend: the only module that imports CuPy.

Everything above this module asks it for the array module of a device (`xp`), moves arrays
between devices, and draws random numbers from per-device generators. NumPy backs the CPU;
CuPy backs CUDA. Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) with no usable GPU,
the "cuda" device is NumPy-backed, so the whole CUDA path (dispatch, Numba kernels, autograd)
runs on a CPU-only machine.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from gpugrad import host_blas, host_cache

# dtypes are NumPy dtypes; gpugrad re-exports them as gg.float32, gg.int64, ...
float16 = np.dtype("float16")
float32 = np.dtype("float32")
float64 = np.dtype("float64")
int8 = np.dtype("int8")
uint8 = np.dtype("uint8")
int16 = np.dtype("int16")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")

_default_dtype = float32


def get_default_dtype() -> np.dtype:
    return _default_dtype


def set_default_dtype(dtype) -> None:
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype not in (float32, float64):
        raise TypeError(f"set_default_dtype: expected float32 or float64, got {dtype}")
    _default_dtype = dtype


def is_floating(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


# ----------------------------------------------------------------------------- devices


class device:
    """A device: ``gg.device("cpu")``, ``gg.device("cuda")``, ``gg.device("cuda", 1)``."""

    __slots__ = ("type", "index")

    def __init__(self, spec, index: int | None = None):
        if isinstance(spec, device):
            self.type, self.index = spec.type, spec.index
            return
        if not isinstance(spec, str):
            raise TypeError(f"device: expected a string like 'cpu' or 'cuda:0', got {spec!r}")
        kind, sep, idx = spec.partition(":")
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
        if sep:
            if index is not None or not idx.isdigit():
                raise ValueError(f"device: bad device string {spec!r}")
            index = int(idx)
        if kind == "cpu" and index not in (None, 0):
            raise ValueError(f"device: the cpu has no index, got {spec!r}")
        if kind == "cuda" and index is None:
            index = 0
        self.type = kind
        self.index = index if kind == "cuda" else None

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = device(other)
            except (TypeError, ValueError):
                return False
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type='{self.type}'" + (
            f", index={self.index})" if self.index is not None else ")"
        )


CPU = device("cpu")


def as_device(spec) -> device:
    """Parse a device spec (None means the CPU) and check that it can be used."""
    if spec is None:
        return CPU
    dev = spec if isinstance(spec, device) else device(spec)
    if dev.type == "cuda":
        _require_cuda(dev)
    return dev


# ----------------------------------------------------------------------------- CUDA


def simulator_enabled() -> bool:
    """True when Numba's CUDA simulator is switched on for this process."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


_cupy = None
_cupy_error: str | None = None
_cupy_checked = False
_lock = threading.Lock()


def _load_cupy():
    """Import CuPy once; remember why it is unusable if it is."""
    global _cupy, _cupy_error, _cupy_checked
    with _lock:
        if _cupy_checked:
            return _cupy
        _cupy_checked = True
        try:
            import cupy
        except ImportError as e:
            _cupy_error = (
                f"CuPy is not installed ({e}). Install the CUDA extra that matches your driver: "
                "pip install 'gpugrad[cuda12]' or pip install 'gpugrad[cuda13]'"
            )
            return None
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # CuPy raises CUDARuntimeError without a driver or GPU
            _cupy_error = f"CuPy is installed but no CUDA GPU is usable: {e}"
            return None
        if count == 0:
            _cupy_error = "CuPy is installed but no CUDA GPU was found"
            return None
        _cupy = cupy
        return _cupy


def cupy_module():
    """The cupy module when a GPU is usable, else None."""
    return _load_cupy()


def uses_simulated_cuda() -> bool:
    """True when 'cuda' tensors are NumPy arrays run through Numba's CUDA simulator."""
    return simulator_enabled() and _load_cupy() is None


def cuda_is_available() -> bool:
    return _load_cupy() is not None or simulator_enabled()


def cuda_device_count() -> int:
    cp = _load_cupy()
    if cp is not None:
        return cp.cuda.runtime.getDeviceCount()
    return 1 if simulator_enabled() else 0


def cuda_unavailable_reason() -> str | None:
    if cuda_is_available():
        return None
    _load_cupy()
    return _cupy_error


def _require_cuda(dev: device) -> None:
    if not cuda_is_available():
        raise RuntimeError(f"device {dev} requested but CUDA is unavailable: {_cupy_error}")
    count = cuda_device_count()
    if dev.index >= count:
        raise RuntimeError(f"device {dev} requested but only {count} CUDA device(s) exist")


def xp_for(dev: device):
    """The array module (numpy or cupy) holding arrays of device `dev`."""
    if dev.type == "cpu" or uses_simulated_cuda():
        return np
    return _cupy


def array_module(a):
    """The array module of an array (numpy for anything that is not a CuPy array)."""
    cp = _cupy
    if cp is not None and isinstance(a, cp.ndarray):
        return cp
    return np


def device_of_array(a) -> device:
    cp = _cupy
    if cp is not None and isinstance(a, cp.ndarray):
        return device("cuda", a.device.id)
    return CPU


def empty(shape, dtype, like):
    """An uninitialised C-contiguous array on the array module of `like`. Large CPU arrays
    come from host_cache (reused pages, no page faults); CuPy has its own pool."""
    if array_module(like) is np:
        return host_cache.empty(shape, dtype)
    with like.device:  # on like's GPU, whichever is current
        return _cupy.empty(shape, dtype)


def empty_like(a):
    """empty(a.shape, a.dtype, like=a)."""
    return empty(a.shape, a.dtype, a)


def matmul(a, b, out=None):
    """a @ b for arrays of 2 or more dimensions, into `out` when given. On the CPU a large
    product lands in a cached buffer (conv2d's GEMM outputs are MBs, every step); a large stack
    of products runs on gpugrad's own threads, one BLAS thread each, and a single product on
    OpenBLAS's own threads (see host_blas). CuPy allocates from its own pool."""
    xp = array_module(a)
    if xp is not np or a.ndim < 2 or b.ndim < 2:
        return xp.matmul(a, b) if out is None else xp.matmul(a, b, out=out)
    if out is None:
        shape = (*np.broadcast_shapes(a.shape[:-2], b.shape[:-2]), a.shape[-2], b.shape[-1])
        out = host_cache.empty(shape, np.result_type(a, b))
    return host_blas.matmul(a, b, out)


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def device_context(dev: device):
    """A context that makes `dev` current for allocations (a no-op on the CPU, and where no
    CuPy is loaded: NumPy-backed "cuda" tensors, as under the CUDA simulator)."""
    if dev.type == "cuda" and _cupy is not None and not uses_simulated_cuda():
        return _cupy.cuda.Device(dev.index)
    return _NullContext()


def to_device(a, dev: device):
    """Copy array `a` to device `dev` (returns `a` itself when it is already there)."""
    cp = _cupy
    if dev.type == "cpu" or uses_simulated_cuda():
        if cp is not None and isinstance(a, cp.ndarray):
            return cp.asnumpy(a)
        return np.asarray(a)
    with cp.cuda.Device(dev.index):
        if isinstance(a, cp.ndarray) and a.device.id == dev.index:
            return a
        return cp.asarray(a)


def to_numpy(a) -> np.ndarray:
    cp = _cupy
    if cp is not None and isinstance(a, cp.ndarray):
        return cp.asnumpy(a)
    return np.asarray(a)


def synchronize(dev: device | None = None) -> None:
    """Wait for queued GPU work (a no-op on the CPU); benchmarks call it around timers."""
    cp = _cupy
    if cp is not None and (dev is None or dev.type == "cuda"):
        cp.cuda.get_current_stream().synchronize()


# ----------------------------------------------------------------------------- random numbers

_generators: dict = {}
_seed: int | None = None
# Set by gpugrad.cuda.manual_seed: the seed of CUDA generators only (None: _seed).
_cuda_seed: int | None = None


def generator(dev: device):
    """The random generator of device `dev` (NumPy Generator or CuPy RandomState)."""
    gen = _generators.get(dev)
    if gen is None:
        gen = _new_generator(dev, _seed_of(dev))
        _generators[dev] = gen
    return gen


def _seed_of(dev: device):
    return _cuda_seed if dev.type == "cuda" and _cuda_seed is not None else _seed


def _new_generator(dev: device, seed):
    if dev.type == "cpu" or uses_simulated_cuda():
        # Each simulated CUDA device gets its own stream of numbers, as a real one would.
        offset = 0 if dev.type == "cpu" else 1 + dev.index
        return np.random.default_rng(None if seed is None else [seed, offset])
    with _cupy.cuda.Device(dev.index):
        return _cupy.random.default_rng(seed)


def manual_seed(seed: int) -> None:
    """Seed the generators of every device (created now or later)."""
    global _seed, _cuda_seed
    _seed = _checked_seed("manual_seed", seed)
    _cuda_seed = None
    for dev in list(_generators):
        _generators[dev] = _new_generator(dev, _seed)


def manual_seed_cuda(seed: int) -> None:
    """Seed the CUDA devices' generators only (gpugrad.cuda.manual_seed), as PyTorch's
    torch.cuda.manual_seed_all: the CPU stream goes on untouched."""
    global _cuda_seed
    _cuda_seed = _checked_seed("cuda.manual_seed", seed)
    for dev in list(_generators):
        if dev.type == "cuda":
            _generators[dev] = _new_generator(dev, _cuda_seed)


def _checked_seed(op: str, seed) -> int:
    if not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{op}: expected an int, got {type(seed).__name__}")
    seed = int(seed)
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"{op}: seed must be in [-2**63, 2**64 - 1], got {seed}")
    # As PyTorch: a negative seed is taken modulo 2**64 (-1 is 2**64 - 1).
    return seed % 2**64


def get_rng_state() -> dict:
    """The bit-generator state of the CPU generator (for checkpoints)."""
    return generator(CPU).bit_generator.state


def set_rng_state(state: dict) -> None:
    generator(CPU).bit_generator.state = state


# ----------------------------------------------------------------------------- special functions

_erf_ufunc = None  # the Numba ufunc, compiled on first use (importing gpugrad stays fast)


def _numpy_erf():
    """math.erf as a NumPy ufunc for float32 and float64 (NumPy has no erf, and SciPy is not
    a dependency). Numba lowers math.erf to libm's erff / erf, as C code calling them would."""
    global _erf_ufunc
    with _lock:
        if _erf_ufunc is None:
            import math

            from numba import vectorize

            def erf_scalar(v):
                return math.erf(v)

            _erf_ufunc = vectorize(["float32(float32)", "float64(float64)"],
                                   cache=True)(erf_scalar)
        return _erf_ufunc


def erf(a):
    """The error function of a floating-point array (NumPy or CuPy), in the array's dtype."""
    if a.dtype.kind != "f":
        raise TypeError(f"erf: expected a floating-point array, got {a.dtype}")
    # float16 goes through float32 (PyTorch computes half-precision math in float too).
    work = a.astype(float32) if a.dtype == float16 else a
    cp = _cupy
    if cp is not None and isinstance(a, cp.ndarray):
        import cupyx.scipy.special

        out = cupyx.scipy.special.erf(work)
    else:
        out = np.asarray(_numpy_erf()(work))  # a 0-d input gives a scalar: make it an array
    return out.astype(a.dtype, copy=False)


def scatter_add(a, index, values) -> None:
    """a[index] += values, summing repeated indices (unbuffered, like np.add.at)."""
    cp = _cupy
    if cp is not None and isinstance(a, cp.ndarray):
        import cupyx

        cupyx.scatter_add(a, index, values)
    else:
        np.add.at(a, index, values)
