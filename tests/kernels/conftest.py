"""Fixtures shared by the kernel tests."""

import pytest


@pytest.fixture(params=["one_thread", "all_threads"])
def twin_threads(request, monkeypatch):
    """Run the CPU twins on the calling thread only, or on Numba's whole pool (both paths of
    _launch.run_cpu_twin, whatever the array size)."""
    from gpugrad.kernels import _launch

    limit = 1 << 62 if request.param == "one_thread" else 0
    monkeypatch.setattr(_launch, "PARALLEL_MIN_WORK", limit)
    return request.param


@pytest.fixture
def cp():
    """CuPy, for tests that run kernels on a real GPU (skips without one)."""
    from gpugrad import backend

    module = backend.cupy_module()
    if module is None:
        pytest.skip("needs CuPy and a CUDA GPU")
    return module
