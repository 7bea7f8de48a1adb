"""A batch of matrix products on the CPU, split across threads, each product on one BLAS thread.

NumPy's ``matmul`` on a stack of matrices calls BLAS once per matrix, and OpenBLAS splits each
call across its threads and joins them again. For Winograd's 16 small GEMMs per convolution
pass that is 16 wake-ups and joins; when another process competes for the cores, a join can
wait a whole scheduler slice, and the 16 products took ~130 ms instead of ~2.5 (measured on
the 2-core bench VM with a second training process running). Here the stack is cut into one
slice per BLAS thread, each slice runs on a worker of a small thread pool (NumPy releases the
GIL inside BLAS) with BLAS limited to one thread: one join per batch, and as fast when the
machine is idle. threadpoolctl sets the BLAS thread count (OpenBLAS or MKL alike).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

# Below this many multiply-adds per batch, a plain np.matmul is cheaper than a hand-off.
MIN_SPLIT_WORK = 1 << 20

_lock = threading.Lock()
# One batch at a time: the BLAS thread limit is process-wide, and two overlapping limits would
# restore each other's saved value in the wrong order.
_call_lock = threading.Lock()
_state = None  # (controller, pool, workers), built on first use


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

            controller = ThreadpoolController()
            blas = [lib for lib in controller.info() if lib.get("user_api") == "blas"]
            workers = max([lib["num_threads"] for lib in blas] or [1])
            # The calling thread computes one slice itself.
            pool = ThreadPoolExecutor(workers - 1, thread_name_prefix="gpugrad-blas") \
                if workers > 1 else None
            _state = (controller, pool, workers)
    return _state


def batched_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """np.matmul(a, b, out=out) for stacks whose leading axis is the batch (a and b already
    broadcast to it), the batch split across BLAS's thread count."""
    batch = out.shape[0]
    work = out.size * a.shape[-1]
    controller, pool, workers = _setup()
    if pool is None or batch < 2 or work < MIN_SPLIT_WORK:
        return np.matmul(a, b, out=out)
    parts = min(workers, batch)
    bounds = [batch * i // parts for i in range(parts + 1)]
    with _call_lock, controller.limit(limits=1, user_api="blas"):
        futures = [pool.submit(np.matmul, a[lo:hi], b[lo:hi], out=out[lo:hi])
                   for lo, hi in zip(bounds[1:-1], bounds[2:])]
        np.matmul(a[:bounds[1]], b[:bounds[1]], out=out[:bounds[1]])
        for f in futures:
            f.result()
    return out


def worker_count() -> int:
    """How many threads run_parts and batched_matmul split work across: BLAS's thread count."""
    return _setup()[2]


def run_parts(fn, parts: int) -> list:
    """[fn(0), ..., fn(parts - 1)], each part on its own worker thread (the calling thread runs
    part 0), with BLAS limited to one thread meanwhile: for work that interleaves Numba kernels
    (compiled nogil) with small BLAS calls, split once instead of once per call.
    At most worker_count() parts; an exception in any part is raised here."""
    controller, pool, workers = _setup()
    if parts > workers:
        raise ValueError(f"run_parts: {parts} parts for {workers} worker threads")
    if parts <= 1 or pool is None:
        with _call_lock, controller.limit(limits=1, user_api="blas"):
            return [fn(i) for i in range(parts)]
    with _call_lock, controller.limit(limits=1, user_api="blas"):
        futures = [pool.submit(fn, i) for i in range(1, parts)]
        try:
            first = fn(0)
        finally:
            wait(futures)  # every part ends before the lock and the BLAS limit go
    return [first, *(f.result() for f in futures)]
