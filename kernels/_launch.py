"""How a kernel dispatcher picks its path, and how a CPU twin or a CUDA kernel is launched.

Every dispatcher asks ``choose_path`` first: the NumPy reference when reference mode is on, the
CUDA kernel for a "cuda" device, else the CPU twin. ``numba.cuda`` is imported only here and in
the ``*_cuda`` modules, and only on the first CUDA launch, so importing gpugrad.kernels stays cheap
on a CPU-only machine and never compiles anything.
"""

from __future__ import annotations

import functools
import warnings

import numba
import numpy as np

from gpugrad import backend
from gpugrad.kernels import config

REFERENCE = "reference"
CPU = "cpu"
CUDA = "cuda"

# Elementwise kernels: threads per block, and a grid cap past which grid-stride loops take over.
THREADS_PER_BLOCK = 256
MAX_BLOCKS = 8192

# CPU twins touching fewer elements than this run on the calling thread alone. Waking Numba's
# OpenMP pool costs a fixed ~75 us with passive waiting (gpugrad's default) on the 2-core bench
# VM, against ~4 us on one thread; a 2-thread ReLU only wins from ~500k floats, exp-heavy
# kernels (cross-entropy) from ~100k.
PARALLEL_MIN_WORK = 1 << 17

# The simulator runs one Python thread per CUDA thread. A tiny grid keeps it fast and makes the
# grid-stride loops wrap around many times, so the simulated tests exercise them.
SIMULATOR_THREADS_PER_BLOCK = 32
SIMULATOR_MAX_BLOCKS = 2


def choose_path(op: str, device, *arrays) -> str:
    """REFERENCE, CPU or CUDA for a call of `op` on `device`; checks the arrays live there."""
    dev = backend.as_device(device)  # a bad device raises in reference mode too
    if config.reference_enabled():
        if dev.type == "cuda" and not backend.cuda_is_available():
            raise RuntimeError(f"{op}: device {dev} requested but CUDA is unavailable: "
                               f"{backend.cuda_unavailable_reason()}")
        return REFERENCE
    if dev.type == "cpu":
        for a in arrays:
            if backend.array_module(a) is not np:
                raise TypeError(f"{op}: device is cpu but got a {type(a).__name__} on the GPU")
        return CPU
    if backend.uses_simulated_cuda():
        return CUDA
    cp = backend.cupy_module()
    for a in arrays:
        if not isinstance(a, cp.ndarray):
            raise TypeError(
                f"{op}: device is {dev} so it expects CuPy arrays, got {type(a).__name__}; "
                "move it with gpugrad.backend.to_device first (kernels never copy to the GPU)"
            )
        if a.device.id != dev.index:
            raise ValueError(f"{op}: device is {dev} but an array lives on cuda:{a.device.id}")
    return CUDA


def run_cpu_twin(twin, work: int, *args):
    """Call a parallel Numba twin, on all threads only when `work` elements repay waking them."""
    if work >= PARALLEL_MIN_WORK:
        return twin(*args)
    threads = numba.get_num_threads()
    if threads == 1:
        return twin(*args)
    # Numba's thread count is per calling thread, so this does not leak into other threads.
    numba.set_num_threads(1)
    try:
        return twin(*args)
    finally:
        numba.set_num_threads(threads)


def launch_elementwise(kernel, n_items: int, device, *args) -> None:
    """Launch a grid-stride kernel that covers `n_items` work items."""
    if backend.uses_simulated_cuda():
        threads, max_blocks = SIMULATOR_THREADS_PER_BLOCK, SIMULATOR_MAX_BLOCKS
    else:
        threads, max_blocks = THREADS_PER_BLOCK, MAX_BLOCKS
    blocks = min(-(-n_items // threads), max_blocks)
    _launch(kernel, blocks, threads, device, args)


# Row kernels (the fused cross-entropy) give each row a warp, and a block this many rows.
ROWS_PER_BLOCK = 8
# Under the simulator two: blocks of two warps still meet every shuffle together, cheaply.
SIMULATOR_ROWS_PER_BLOCK = 2
WARP = 32


def launch_warp_rows(kernel, n_rows: int, device, *args) -> None:
    """Launch a kernel that gives each row one warp, ROWS_PER_BLOCK rows to a block (the
    kernel grid-strides over row groups, so any grid covers any number of rows)."""
    if backend.uses_simulated_cuda():
        rows, max_blocks = SIMULATOR_ROWS_PER_BLOCK, SIMULATOR_MAX_BLOCKS
    else:
        rows, max_blocks = ROWS_PER_BLOCK, MAX_BLOCKS
    _launch(kernel, min(-(-n_rows // rows), max_blocks), rows * WARP, device, args)


def _launch(kernel, blocks: int, threads: int, device, args) -> None:
    if blocks == 0:
        return
    if backend.uses_simulated_cuda():
        from gpugrad.kernels import _simulator

        _simulator.install()
        kernel[blocks, threads](*args)
        return
    cp = backend.cupy_module()
    index = backend.as_device(device).index
    if config.cuda_launcher() == "cupy":
        launcher = _cupy_launcher(kernel, args, index, cp)
        if launcher is not None:
            with cp.cuda.Device(index):
                launcher(blocks, threads, args, cp.cuda.get_current_stream())
            LAUNCHES["cupy"] += 1
            return
    from numba import cuda

    with cuda.gpus[index], cp.cuda.Device(index):
        stream_ptr = cp.cuda.get_current_stream().ptr
        launcher = _configured(kernel, blocks, threads, index, stream_ptr)
        launcher(*[_as_numba_array(cuda, a) for a in args])
    LAUNCHES["numba"] += 1


# How many launches took each path since import (the GPU tests check the CuPy path is used).
LAUNCHES = {"cupy": 0, "numba": 0}
_cupy_launchers: dict = {}
_UNAVAILABLE = object()


def _cupy_launcher(kernel, args, index, cp):
    """The CuPy launcher for this kernel, argument types and device (built on first use), or
    None where these arguments or this Numba cannot take that path."""
    from gpugrad.kernels import _cupy_launch

    argtypes = _cupy_launch.numba_argtypes(args, cp.ndarray)
    if argtypes is None:
        return None
    key = (kernel, argtypes, index)
    launcher = _cupy_launchers.get(key)
    if launcher is None:
        from numba import cuda

        try:
            with cuda.gpus[index], cp.cuda.Device(index):
                launcher = _cupy_launch.CupyLauncher(kernel, argtypes, cp)
        except _API_MISMATCH as exc:
            # This Numba or CuPy lacks what the CuPy path needs: Numba's launcher, for good.
            _warn_fallback(kernel, exc)
            launcher = _cupy_launchers[key] = _UNAVAILABLE
        except Exception as exc:
            # A failure that may pass (out of memory while loading the module, a fault left by
            # an earlier kernel): Numba's launcher this time, and the CuPy path tried again next
            # time. A lasting fault fails in Numba's launcher too, with its own error.
            _warn_fallback(kernel, exc)
            return None
        else:
            _cupy_launchers[key] = launcher
    return None if launcher is _UNAVAILABLE else launcher


# Errors that mean the installed Numba or CuPy cannot build the CuPy path at all.
_API_MISMATCH = (AttributeError, TypeError, ImportError, NotImplementedError)
_warned: set = set()


def _warn_fallback(kernel, exc) -> None:
    name = kernel.py_func.__name__
    if name in _warned:
        return
    _warned.add(name)
    warnings.warn(
        f"gpugrad: cannot launch {name} through CuPy ({exc!r}); using Numba's launcher for it",
        RuntimeWarning,
        stacklevel=5,
    )


@functools.lru_cache(maxsize=4096)
def _configured(kernel, blocks, threads, device_index, stream_ptr):
    """``kernel[blocks, threads, stream]`` on CuPy's stream `stream_ptr`, built once per shape."""
    from numba import cuda

    stream = cuda.external_stream(stream_ptr)
    # Numba warns about every grid under 128 blocks; small grids are deliberate here (small
    # tensors), and the warning would repeat for every new tensor size.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Grid size \d+ will likely result in GPU")
        return kernel[blocks, threads, stream]


def _as_numba_array(cuda, a):
    # The arrays were produced on CuPy's current stream and the kernel runs on that same stream,
    # so stream order already makes their contents visible. Handing CuPy arrays to Numba directly
    # would make it synchronize the host with that stream on every launch (CAI "stream" export).
    if hasattr(a, "__cuda_array_interface__"):
        return cuda.as_cuda_array(a, sync=False)
    return a
