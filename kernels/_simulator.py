"""What Numba's CUDA simulator lacks and gpugrad's kernels use: warp shuffles, and libdevice's
``umul64hi`` (the simulator's libdevice functions are typing stubs that return None).

The simulator (NUMBA_ENABLE_CUDASIM=1) runs each CUDA thread as a Python thread but has no
``cuda.shfl_*_sync``. ``install()`` adds ``shfl_xor_sync`` to its fake ``cuda`` module, built
from the simulator's own block barrier: every thread posts its value, the block meets, each
thread reads its partner lane's value, and the block meets again before the slots are reused.

That emulation is exact for the way gpugrad's kernels shuffle: every thread of the block calls
it at the same point with the full mask (block-uniform loops). It is not for a shuffle inside a
branch that only some threads take: the simulator releases a barrier once every live thread
waits at any barrier, so such a shuffle would pair with another barrier and read stale slots
(real hardware would shuffle within the warp).
"""

from __future__ import annotations

import threading

import numpy as np

WARP = 32


def _shfl_xor_sync(self, mask, value, lane_mask):
    thread = threading.current_thread()
    slots = thread._manager.__dict__.setdefault("_gpugrad_shuffle_slots", {})
    slots[thread.thread_id] = value
    thread.syncthreads()
    lane = thread.thread_id % WARP
    result = slots[thread.thread_id - lane + (lane ^ lane_mask)]
    # Nobody may post the next shuffle's value before every thread has read this one.
    thread.syncthreads()
    return result


_U64 = 2**64 - 1


def _umul64hi(x, y):
    """The high 64 bits of the 128-bit product of x and y read as uint64s."""
    return np.uint64(((int(x) & _U64) * (int(y) & _U64)) >> 64)


def install() -> None:
    """Give the simulator's fake cuda module shfl_xor_sync, and libdevice a working
    umul64hi (once each; a no-op where they exist)."""
    from numba.cuda import libdevice
    from numba.cuda.simulator.kernelapi import FakeCUDAModule

    if not hasattr(FakeCUDAModule, "shfl_xor_sync"):
        FakeCUDAModule.shfl_xor_sync = _shfl_xor_sync
    if libdevice.umul64hi is not _umul64hi:
        libdevice.umul64hi = _umul64hi
