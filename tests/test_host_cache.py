"""The CPU buffer cache: reuse only once every user of a buffer is gone, limits, threads."""

import gc
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpugrad import host_cache

BIG = (512, 1024)  # 2 MiB of float32: above MIN_BYTES


@pytest.fixture(autouse=True)
def fresh_cache():
    limit = host_cache.get_limit()
    host_cache.set_limit(host_cache.DEFAULT_LIMIT)
    gc.collect()  # arrays left in cycles by earlier tests would turn idle mid-test
    host_cache.empty_cache()
    yield
    host_cache.set_limit(limit)
    host_cache.empty_cache()


def address(a):
    return a.__array_interface__["data"][0]


def test_arrays_have_the_asked_shape_and_dtype():
    before = host_cache.info()["buffers"]
    a = host_cache.empty(BIG, np.float32)
    b = host_cache.empty(3 << 20, np.float64)
    assert a.shape == BIG and a.dtype == np.float32 and a.flags.c_contiguous
    assert b.shape == (3 << 20,) and b.dtype == np.float64 and b.flags.c_contiguous
    assert b.ctypes.data % 16 == 0
    a[...] = 1.5  # writable
    assert host_cache.info()["buffers"] == before + 2


def test_small_arrays_are_not_cached():
    before = host_cache.info()["buffers"]
    a = host_cache.empty((10, 10), np.float32)
    assert a.flags.owndata and host_cache.info()["buffers"] == before


def test_a_buffer_is_reused_once_its_array_dies():
    hits = host_cache.info()["hits"]
    a = host_cache.empty(BIG, np.float32)
    where = address(a)
    del a
    b = host_cache.empty(BIG, np.float32)
    assert address(b) == where
    assert host_cache.info()["hits"] == hits + 1


@pytest.mark.parametrize("borrow", [
    lambda a: a.reshape(-1)[7:],  # a view of a view
    lambda a: memoryview(a),
    lambda a: np.frombuffer(a, dtype=np.uint8),
    lambda a: a.T,
    lambda a: [a[0]],  # a row held in a list
])
def test_a_buffer_is_not_reused_while_anything_borrows_it(borrow):
    a = host_cache.empty(BIG, np.float32)
    a[...] = 3.0
    held = borrow(a)
    del a
    b = host_cache.empty(BIG, np.float32)
    b[...] = -1.0
    kept = np.asarray(held[0] if isinstance(held, list) else held)
    assert not np.shares_memory(kept, b)
    assert np.frombuffer(kept.tobytes(), np.float32)[0] == 3.0  # untouched
    idle = host_cache.info()["idle_bytes"]
    del held, kept, b
    assert host_cache.info()["idle_bytes"] == idle + 2 * np.prod(BIG) * 4


def test_different_dtypes_of_one_size_share_buffers():
    a = host_cache.empty(BIG, np.float32)
    where = address(a)
    del a
    b = host_cache.empty((np.prod(BIG) // 2,), np.float64)
    assert address(b) == where


def test_limit_bounds_the_idle_bytes_and_zero_turns_the_cache_off():
    nbytes = np.prod(BIG) * 4
    host_cache.set_limit(2 * nbytes)
    arrays = [host_cache.empty(BIG, np.float32) for _ in range(4)]
    del arrays
    # The buffers were all in use when allocated; once idle, the next allocation trims them.
    host_cache.empty((3 << 20,), np.uint8)
    assert host_cache.info()["idle_bytes"] <= 2 * nbytes
    host_cache.set_limit(0)
    assert host_cache.info()["idle_bytes"] == 0
    a = host_cache.empty(BIG, np.float32)
    assert a.flags.owndata  # off: plain np.empty


def test_empty_cache_releases_idle_buffers_only():
    before = host_cache.info()  # buffers other live objects of this process still use
    keep = host_cache.empty(BIG, np.float32)
    drop = host_cache.empty(BIG, np.float32)
    del drop
    host_cache.empty_cache()
    info = host_cache.info()
    assert info["buffers"] == before["buffers"] + 1 and info["idle_bytes"] == 0
    assert info["held_bytes"] == before["held_bytes"] + keep.nbytes


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="cpu cache limit must be a non-negative int"):
        host_cache.set_limit(-1)
    with pytest.raises(ValueError, match="got 1.5"):
        host_cache.set_limit(1.5)


def test_bad_environment_limit_is_refused(monkeypatch):
    monkeypatch.setenv("GPUGRAD_CPU_CACHE_BYTES", "lots")
    with pytest.raises(ValueError, match="GPUGRAD_CPU_CACHE_BYTES must be a non-negative"):
        host_cache._limit_from_env()
    monkeypatch.setenv("GPUGRAD_CPU_CACHE_BYTES", "0")
    assert host_cache._limit_from_env() == 0


def test_threads_never_get_the_same_live_buffer():
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        for _ in range(50):
            a = host_cache.empty(BIG, np.float32)
            a[...] = seed
            if rng.random() < 0.5:
                threading.Event().wait(0.0005)
            if not (a == seed).all():
                errors.append(seed)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5), st.sampled_from([1, 2, 3])),
                min_size=1, max_size=30))
def test_live_arrays_never_share_memory(ops):
    # A random program of allocations and releases: whatever the cache hands out never
    # overlaps an array still alive, and each keeps what was written into it.
    live = []
    for allocate, pick, megabytes in ops:
        if allocate or not live:
            a = host_cache.empty((megabytes << 18,), np.float32)
            a[...] = len(live) + 1
            live.append((a, len(live) + 1))
        else:
            live.pop(pick % len(live))
    for i, (a, value) in enumerate(live):
        assert (a == value).all()
        for b, _ in live[i + 1:]:
            assert not np.shares_memory(a, b)


def test_hits_trim_idle_buffers_beyond_the_limit():
    # Requests that all hit must still give back what the limit does not allow.
    nbytes = np.prod(BIG) * 4
    host_cache.set_limit(3 * nbytes)
    arrays = [host_cache.empty(BIG, np.float32) for _ in range(8)]
    host_cache.set_limit(2 * nbytes)  # lowered while all 8 are in use
    del arrays
    for _ in range(2 * host_cache.TRIM_EVERY):
        host_cache.empty(BIG, np.float32)  # hits only
    assert host_cache.info()["idle_bytes"] <= 2 * nbytes


def test_turning_the_cache_off_forgets_buffers_in_use():
    a = host_cache.empty(BIG, np.float32)
    host_cache.set_limit(0)
    del a
    info = host_cache.info()
    assert info["buffers"] == 0 and info["held_bytes"] == 0 and not info["enabled"]


def test_an_allocation_from_a_finalizer_inside_the_cache_does_not_deadlock():
    # A garbage collection can run inside the cache's locked region; a __del__ that allocates
    # then must not wait on the lock its own thread holds. Each finalizer leaves new cyclic
    # garbage, so some collection is bound to run while the lock is held.
    import gc as gc_module

    depth = [0]
    inside = []

    class Node:
        def __del__(self):
            depth[0] += 1
            if depth[0] > 50:
                return
            b = Node()
            b.self = b
            del b
            inside.append(host_cache._lock.locked())
            host_cache.empty((2 << 20,), np.uint8)

    def work():
        keep = [host_cache.empty((1 << 20,), np.uint8) for _ in range(3)]  # noqa: F841
        a = Node()
        a.self = a
        del a
        threshold = gc_module.get_threshold()
        gc_module.set_threshold(1)
        try:
            host_cache.empty((4 << 20,), np.uint8)
        finally:
            gc_module.set_threshold(*threshold)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(timeout=30)
    assert not t.is_alive(), "deadlocked"
    assert any(inside)  # the finalizer did run inside the locked region


def test_odd_requests_behave_like_np_empty():
    a = host_cache.empty((1 << 18,), object)  # 2 MiB of references: not cacheable
    assert a.dtype == object and a.shape == (1 << 18,)
    before = host_cache.info()["buffers"]
    with pytest.raises(ValueError):
        host_cache.empty((-1024, -1024), np.float32)
    assert host_cache.info()["buffers"] == before
    assert host_cache.empty((0, 1 << 20), np.float32).shape == (0, 1 << 20)


def test_the_interpreter_passed_the_self_test():
    # On this CPython the reference counts tell an idle buffer from one in use.
    assert host_cache._IDLE is not None and host_cache.info()["enabled"]


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_child_forked_while_another_thread_holds_the_lock_can_allocate():
    import os

    held = threading.Event()
    release = threading.Event()

    def hold():
        with host_cache._lock:
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    try:
        pid = os.fork()
        if pid == 0:  # the child: without the reset this would wait forever
            import signal

            signal.alarm(20)
            a = host_cache.empty(BIG, np.float32)
            a[...] = 1.0
            os._exit(0 if float(a.sum()) == a.size else 1)
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        t.join()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
