"""host_blas.matmul and backend.matmul: the same numbers as np.matmul, and the BLAS
thread count left as it was."""

import os
import signal
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from gpugrad import backend, host_blas


def _blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.mark.parametrize("batch, m, k, n", [(16, 64, 32, 3136), (3, 70, 33, 900), (16, 2, 3, 4),
                                            (1, 300, 40, 500), (5, 64, 64, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batched_products_equal_numpy(batch, m, k, n, dtype):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((batch, m, k)).astype(dtype)
    b = rng.standard_normal((batch, k, n)).astype(dtype)
    out = np.full((batch, m, n), np.nan, dtype)
    before = _blas_threads()
    assert host_blas.matmul(a, b, out) is out
    np.testing.assert_allclose(out, np.matmul(a, b), rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-4 if dtype == np.float32 else 1e-10)
    assert _blas_threads() == before


def test_strided_operands_and_output():
    """Winograd hands it transposed views and an output with padding between the matrices."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((16, 2, 8, 40))[..., :32]  # (16, 2, 8, 32), strided rows
    b = rng.standard_normal((16, 2, 700, 32)).transpose(0, 1, 3, 2)  # (16, 2, 32, 700)
    flat = np.zeros((16, 2 * 8 * 700 + 5))
    out = flat[:, :2 * 8 * 700].reshape(16, 2, 8, 700)
    host_blas.matmul(a, b, out)
    np.testing.assert_allclose(out, np.matmul(a, b), rtol=1e-12, atol=1e-10)
    assert not flat[:, 2 * 8 * 700:].any()  # the padding is untouched


def test_backend_matmul_broadcasts_and_allocates():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((1, 64, 32))
    b = rng.standard_normal((8, 32, 600))
    np.testing.assert_allclose(backend.matmul(a, b), np.matmul(a, b), rtol=1e-12, atol=1e-10)


# 2-D products split by rows (tall) or columns (wide), a batch too short to split by matrices,
# broadcast batch dims, tiny products that skip the split, transposed operands.
@pytest.mark.parametrize("a_shape, b_shape, transpose", [
    ((2000, 300), (300, 64), False), ((64, 300), (300, 5000), False),
    ((1, 700, 300), (300, 700), False), ((3, 1, 500, 200), (4, 200, 300), False),
    ((5, 7), (7, 3), False), ((800, 400), (400, 900), True),
])
def test_large_and_small_products_equal_numpy(a_shape, b_shape, transpose):
    rng = np.random.default_rng(6)
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    if transpose:
        a, b = np.ascontiguousarray(a.T).T, np.ascontiguousarray(b.T).T  # column-major views
    before = _blas_threads()
    expected = np.matmul(a.astype(np.float64), b.astype(np.float64))
    out = backend.matmul(a, b)
    assert out.shape == expected.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-3)
    assert _blas_threads() == before


def test_slices_cover_the_result_once():
    a, b = np.zeros((3, 10, 4)), np.zeros((3, 4, 7))
    out = np.zeros((3, 10, 7))
    for parts in (1, 2, 3, 5):
        pieces = host_blas._slices(a, b, out, parts)
        for _, _, piece in pieces:
            piece += 1
        covered = out.copy()
        out[:] = 0
        assert (covered == 1).all(), parts


def test_concurrent_callers_get_right_answers_and_the_thread_count_survives():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((16, 64, 32))
    b = rng.standard_normal((16, 32, 1000))
    expected = np.matmul(a, b)
    before = _blas_threads()
    errors = []

    def worker():
        out = np.empty_like(expected)
        for _ in range(20):
            host_blas.matmul(a, b, out)
            if not np.allclose(out, expected, rtol=1e-12, atol=1e-10):
                errors.append("wrong product")

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert _blas_threads() == before


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_builds_its_own_pool():
    a = np.random.default_rng(4).standard_normal((16, 64, 32))
    b = np.random.default_rng(5).standard_normal((16, 32, 1000))
    host_blas.matmul(a, b, np.empty((16, 64, 1000)))  # the parent's pool exists
    pid = os.fork()
    if pid == 0:  # child: a pool inherited without its threads would hang here
        signal.alarm(30)  # ... so a hang kills the child, and the test fails
        out = np.empty((16, 64, 1000))
        host_blas.matmul(a, b, out)
        os._exit(0 if np.allclose(out, np.matmul(a, b)) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_run_parts_runs_every_part_once_in_order_on_one_blas_thread():
    before = _blas_threads()
    workers = host_blas.worker_count()
    seen = []

    def part(i):
        seen.append((i, threading.get_ident(), _blas_threads()))
        return i * 10

    assert host_blas.run_parts(part, workers) == [10 * i for i in range(workers)]
    assert sorted(i for i, _, _ in seen) == list(range(workers))
    assert all(threads == [1] * len(before) for _, _, threads in seen)
    assert len({ident for _, ident, _ in seen}) == workers  # each part on its own thread
    assert _blas_threads() == before


def test_run_parts_raises_what_a_part_raises_after_all_parts_end():
    workers = host_blas.worker_count()
    finished = []

    def part(i):
        if i == 0:
            raise KeyError("part 0 failed")
        finished.append(i)

    with pytest.raises(KeyError, match="part 0 failed"):
        host_blas.run_parts(part, workers)
    assert sorted(finished) == list(range(1, workers))
    with pytest.raises(ValueError, match=rf"run_parts: {workers + 1} parts for {workers} worker"):
        host_blas.run_parts(part, workers + 1)



def test_a_single_product_gives_np_matmuls_bits_whatever_numpy_was_imported_after():
    """A single product runs as np.matmul does (OpenBLAS's threads), in every process: a
    resumed training run must reproduce the uninterrupted one to the bit."""
    import subprocess
    import sys

    code = ("import {first}\nimport numpy as np\nfrom gpugrad import backend\n"
            "rng = np.random.default_rng(0)\n"
            "a = rng.standard_normal((300, 700)).astype(np.float32)\n"
            "b = rng.standard_normal((700, 900)).astype(np.float32)\n"
            "print(np.array_equal(backend.matmul(a, b), np.matmul(a, b)), "
            "backend.matmul(a, b).tobytes().hex()[:64])")
    outs = [subprocess.run([sys.executable, "-c", code.format(first=first)], check=True,
                           capture_output=True, text=True).stdout.split()
            for first in ("numpy", "gpugrad")]
    assert outs[0][0] == outs[1][0] == "True"
    assert outs[0][1] == outs[1][1]
