"""A cache of large CPU buffers, handed out again once every array using them has died.

The CPU counterpart of CuPy's memory pool. A fresh NumPy array of more than a few MB gets new
pages from the kernel (glibc maps anything above its mmap threshold, at most 32 MiB, afresh
and unmaps it on free), and the first write to each 4 KiB page faults: a kernel writing a new
64 MB output spends more time faulting than moving data. Measured on the 2-core bench machine,
ReLU forward+backward on 16M floats: 19.7 ms into new arrays, 12.7 ms into reused ones. The
training loop frees and reallocates the same sizes every step, so reuse pays there too.

How the cache knows a buffer is free: every array it hands out is a view of a cached base array,
and a NumPy view keeps its base alive (a view of a view points at the base directly), as does
anything else that borrows the memory (memoryview, DLPack capsule, ctypes, a Numba array). So
the base's reference count is exactly the cache's own while nothing uses it, and only then is
it reused. At import a self-test checks that this interpreter counts references that way (it
would not on a free-threaded build, for one); if not, the cache stays off.

Only buffers of at least MIN_BYTES are cached (malloc already recycles smaller ones). Idle
buffers are kept up to a limit (default 1 GiB, or GPUGRAD_CPU_CACHE_BYTES; set_limit(0) or
GPUGRAD_CPU_CACHE_BYTES=0 turns the cache off): each miss, and every TRIM_EVERY-th hit, drops
idle buffers beyond it, the least recently used of each size first.
"""

from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np

MIN_BYTES = 1 << 20
DEFAULT_LIMIT = 1 << 30
TRIM_EVERY = 16

_lock = threading.Lock()
# Set while this thread holds _lock: a call that arrives then (from a __del__ or a weakref
# callback run by a garbage collection inside the locked region) bypasses the cache instead of
# waiting forever on a lock its own thread holds.
_state = threading.local()
# nbytes -> bases of that size (1-D uint8 arrays), most recently handed out last.
_buffers: dict[int, list[np.ndarray]] = {}
_stats = {"hits": 0, "misses": 0}


def _reset_after_fork() -> None:
    # A fork copies the lock in whatever state another thread had it; the child has only the
    # forking thread, so it starts with a fresh lock.
    global _lock, _state
    _lock = threading.Lock()
    _state = threading.local()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _limit_from_env() -> int:
    value = os.environ.get("GPUGRAD_CPU_CACHE_BYTES", "")
    if not value:
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        limit = -1
    if limit < 0:
        raise ValueError(
            f"GPUGRAD_CPU_CACHE_BYTES must be a non-negative integer (bytes), got {value!r}"
        )
    return limit


def _refs(bases: list, i: int) -> int:
    """The reference count of bases[i]. Every check goes through here, as does the calibration
    below, so the references the check itself adds are the same each time."""
    return sys.getrefcount(bases[i])


def _calibrate() -> int | None:
    """The count of a base only the cache holds, or None when counts do not tell an idle base
    from one in use on this interpreter (then the cache stays off)."""
    if not getattr(sys, "_is_gil_enabled", lambda: True)():
        return None  # free-threaded CPython: reference counts are split between threads
    probe = [np.empty(16, np.uint8)]
    idle = _refs(probe, 0)
    view = probe[0].view(np.float32).reshape(2, 2)
    row = view[1]
    used = _refs(probe, 0)
    del view, row
    if used <= idle or _refs(probe, 0) != idle:
        return None
    return idle


_IDLE = _calibrate()
_limit = _limit_from_env() if _IDLE is not None else 0


def _take_idle(bases: list) -> np.ndarray | None:
    # Most recently used first: its pages are the likeliest to still be in cache and TLB.
    for i in reversed(range(len(bases))):
        if _refs(bases, i) == _IDLE:
            base = bases.pop(i)
            bases.append(base)  # most recently used last
            return base
    return None


class _Locked:
    """`with _Locked() as ok:` holds _lock; ok is False on a re-entrant call from this thread."""

    def __enter__(self):
        if getattr(_state, "inside", False):
            self.ok = False
            return False
        _lock.acquire()
        _state.inside = True
        self.ok = True
        return True

    def __exit__(self, *exc):
        if self.ok:
            _state.inside = False
            _lock.release()
        return False


def empty(shape, dtype) -> np.ndarray:
    """np.empty(shape, dtype), from a cached buffer when the array is large enough."""
    dtype = np.dtype(dtype)
    dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if dtype.hasobject or not all(isinstance(d, (int, np.integer)) and d >= 0 for d in dims):
        return np.empty(shape, dtype)  # NumPy's own answer, or its own error
    nbytes = math.prod(dims) * dtype.itemsize
    if nbytes < MIN_BYTES:
        return np.empty(dims, dtype)
    with _Locked() as ok:
        if not ok or _limit == 0:
            return np.empty(dims, dtype)
        bases = _buffers.get(nbytes)
        base = _take_idle(bases) if bases else None
        if base is None:
            _stats["misses"] += 1
            _evict(_limit - nbytes)  # room for the new buffer once it is idle
            base = np.empty(nbytes, np.uint8)
            _buffers.setdefault(nbytes, []).append(base)
        else:
            _stats["hits"] += 1
            if _stats["hits"] % TRIM_EVERY == 0:
                _evict(_limit - nbytes)  # as on a miss: this one will be idle again
        # Views of the base: they keep it alive, which is how the cache sees it in use.
        return base.view(dtype).reshape(dims)


def empty_like(a) -> np.ndarray:
    """A C-contiguous array of a's shape and dtype, as empty()."""
    return empty(a.shape, a.dtype)


def _idle_bases():
    """(nbytes, base) of every idle buffer, least recently used first within each size."""
    return [(nbytes, bases[i]) for nbytes, bases in _buffers.items()
            for i in range(len(bases)) if _refs(bases, i) == _IDLE]


def _evict(keep_bytes: int) -> None:
    """Drop idle buffers until at most keep_bytes of them remain. Caller holds _lock."""
    idle = _idle_bases()
    held = sum(nbytes for nbytes, _ in idle)
    for nbytes, base in idle:
        if held <= keep_bytes:
            break
        bases = _buffers[nbytes]
        bases[:] = [b for b in bases if b is not base]
        held -= nbytes
    for nbytes in [n for n, bases in _buffers.items() if not bases]:
        del _buffers[nbytes]


def empty_cache() -> None:
    """Return every idle buffer to the system (arrays in use keep theirs)."""
    with _Locked() as ok:
        if ok:
            _evict(0)


def set_limit(nbytes: int) -> None:
    """Keep at most `nbytes` of idle buffers; 0 turns the cache off and forgets every buffer
    (those in use are freed as usual when their arrays die)."""
    global _limit
    if not isinstance(nbytes, (int, np.integer)) or isinstance(nbytes, bool) or nbytes < 0:
        raise ValueError(f"cpu cache limit must be a non-negative int (bytes), got {nbytes!r}")
    if _IDLE is None:
        return  # the cache cannot run on this interpreter; it stays off
    with _Locked() as ok:
        if not ok:
            raise RuntimeError("host_cache.set_limit called from inside the cache (a finalizer)")
        _limit = int(nbytes)
        if _limit == 0:
            _buffers.clear()
        else:
            _evict(_limit)


def get_limit() -> int:
    return _limit


def info() -> dict:
    """Bytes held (in use and idle), idle bytes, buffer count, limit, and hit/miss counts."""
    with _Locked() as ok:
        if not ok:
            return {}
        held = sum(nbytes * len(bases) for nbytes, bases in _buffers.items())
        idle = sum(nbytes for nbytes, _ in _idle_bases())
        count = sum(len(bases) for bases in _buffers.values())
        return {"held_bytes": held, "idle_bytes": idle, "buffers": count, "limit": _limit,
                "enabled": _IDLE is not None and _limit > 0, **_stats}
