"""gpugrad's CPU matrix products, split across its own threads, each product on one BLAS thread.

Two measured reasons not to let OpenBLAS thread a product itself:
- After a threaded call, OpenBLAS's idle workers spin (calling sched_yield) for about 2^28
  cycles, ~0.1 s, before they sleep. Whatever runs next on the cores competes with them: on
  the 2-core bench VM a Winograd conv2d forward+backward took 25.6 ms right after an
  im2col one (whose GEMMs woke OpenBLAS's threads) against 15.7 ms after another Winograd one,
  and PyTorch's convolution ran about 2x slower after a NumPy GEMM.
- NumPy's ``matmul`` on a stack of matrices calls BLAS once per matrix; OpenBLAS splits and
  joins each call. For Winograd's 16 small GEMMs that is 16 wake-ups and joins; with another
  process competing for the cores a join can wait a whole scheduler slice (the 16 products took
  ~130 ms instead of ~2.5 with a second training process running).
So a large stack of products is cut into one slice per worker thread along the batch, each
slice runs on a worker of a small thread pool (NumPy releases the GIL inside BLAS) with BLAS
limited to one thread, and OpenBLAS's own threads are not woken. A single product runs on
OpenBLAS's own threads: for one large matrix they are 5-35% faster than slices (im2col's GEMMs,
linear layers; measured on the 2-core VM with gpugrad's short OPENBLAS_THREAD_TIMEOUT in
effect), and the way a product is computed must not depend on anything but its shapes: slicing
only when OpenBLAS would spin for long (NumPy imported first) changed the last bits of a
training run between processes, and a resumed run no longer matched the uninterrupted one. The worker count is BLAS's
thread count when gpugrad first multiplies (threadpoolctl reads and sets it, OpenBLAS or MKL).
run_parts gives the same workers to other work that interleaves Numba kernels (compiled nogil)
with small BLAS calls (kernels/conv_winograd_blocked.py).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

# Below this many multiply-adds a product runs on the calling thread: a hand-off to the pool
# costs more than it saves.
MIN_SPLIT_WORK = 1 << 20
# OpenBLAS multiplies matrices up to this many multiply-adds (M * N * K) on one thread by
# itself (65536 x GEMM_MULTITHREAD_THRESHOLD, 4 by default): no need to limit it.
BLAS_SINGLE_THREAD_WORK = 1 << 18

_lock = threading.Lock()
# One limited region at a time: the BLAS thread limit is process-wide, and two overlapping
# limits would restore each other's saved value in the wrong order.
_call_lock = threading.Lock()
_state = None  # (BLAS library controllers, pool, workers), built on first use


def _reset_after_fork():
    # A forked child inherits the pool object but not its threads.
    global _state, _lock, _call_lock
    _state = None
    _lock = threading.Lock()
    _call_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _setup():
    global _state
    with _lock:
        if _state is None:
            from threadpoolctl import ThreadpoolController

            libs = [lib for lib in ThreadpoolController().lib_controllers
                    if lib.user_api == "blas"]
            workers = max([lib.num_threads for lib in libs] or [1])
            # The calling thread computes one slice itself.
            pool = ThreadPoolExecutor(workers - 1, thread_name_prefix="gpugrad-blas") \
                if workers > 1 else None
            _state = (libs, pool, workers)
    return _state


class _OneBlasThread:
    """BLAS limited to one thread inside, restored after; holds _call_lock. (threadpoolctl's
    own limit() costs ~17 us a call, the library controllers' setters ~2 us.)"""

    def __init__(self, libs):
        self.libs = libs

    def __enter__(self):
        _call_lock.acquire()
        try:
            self.saved = [lib.get_num_threads() for lib in self.libs]
            for lib in self.libs:
                lib.set_num_threads(1)
        except BaseException:
            _call_lock.release()
            raise
        return self

    def __exit__(self, *exc):
        try:
            for lib, n in zip(self.libs, self.saved):
                lib.set_num_threads(n)
        finally:
            _call_lock.release()
        return False


def worker_count() -> int:
    """How many threads matmul and run_parts split work across: BLAS's thread count."""
    return _setup()[2]


def _slices(a, b, out, parts):
    """[(a part, b part, out part)] cutting out into `parts` pieces: along the batch when it
    has that many matrices, else along the larger of the rows and the columns (a stack of
    fewer matrices than threads)."""
    if out.ndim > 2 and out.shape[0] >= parts:
        axis_a = axis_b = axis_out = 0
        size = out.shape[0]
    elif out.shape[-2] >= out.shape[-1]:
        axis_a, axis_b, axis_out = a.ndim - 2, None, out.ndim - 2
        size = out.shape[-2]
    else:
        axis_a, axis_b, axis_out = None, b.ndim - 1, out.ndim - 1
        size = out.shape[-1]
    bounds = [size * i // parts for i in range(parts + 1)]

    def cut(x, axis, lo, hi):
        if axis is None:
            return x
        index = [slice(None)] * x.ndim
        index[axis] = slice(lo, hi)
        return x[tuple(index)]

    return [(cut(a, axis_a, lo, hi), cut(b, axis_b, lo, hi), cut(out, axis_out, lo, hi))
            for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """np.matmul(a, b, out=out) for NumPy arrays of 2 or more dimensions (batch dims broadcast
    to out's), split across the workers when large (see the module docstring)."""
    m, k = a.shape[-2:]
    n = b.shape[-1]
    if m * n * k <= BLAS_SINGLE_THREAD_WORK and out.size * k < MIN_SPLIT_WORK:
        return np.matmul(a, b, out=out)
    if out.size == m * n:  # one product: OpenBLAS threads it best
        return np.matmul(a, b, out=out)
    libs, pool, workers = _setup()
    if out.ndim > 2:
        a = np.broadcast_to(a, (*out.shape[:-2], *a.shape[-2:]))
        b = np.broadcast_to(b, (*out.shape[:-2], *b.shape[-2:]))
    parts = _slices(a, b, out, workers) \
        if pool is not None and out.size * k >= MIN_SPLIT_WORK else [(a, b, out)]
    with _OneBlasThread(libs):
        futures = [pool.submit(np.matmul, *part[:2], out=part[2]) for part in parts[1:]]
        try:
            np.matmul(*parts[0][:2], out=parts[0][2])
        finally:
            wait(futures)
        for f in futures:
            f.result()
    return out


def run_parts(fn, parts: int) -> list:
    """[fn(0), ..., fn(parts - 1)], each part on its own worker thread (the calling thread runs
    part 0), with BLAS limited to one thread meanwhile: for work that interleaves Numba kernels
    (compiled nogil) with small BLAS calls, split once instead of once per call.
    At most worker_count() parts; an exception in any part is raised here."""
    libs, pool, workers = _setup()
    if parts > workers:
        raise ValueError(f"run_parts: {parts} parts for {workers} worker threads")
    with _OneBlasThread(libs):
        if parts <= 1 or pool is None:
            return [fn(i) for i in range(parts)]
        futures = [pool.submit(fn, i) for i in range(1, parts)]
        try:
            first = fn(0)
        finally:
            wait(futures)  # every part ends before the lock and the BLAS limit go
    return [first, *(f.result() for f in futures)]
