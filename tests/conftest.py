"""Shared test set-up: the `gpu` marker skips without a real CUDA GPU, seeds are fixed, and
`run_under_simulator` runs a test file under Numba's CUDA simulator."""

import os
import subprocess
import sys

import numpy as np
import pytest


def _real_gpu() -> bool:
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _real_gpu():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU with CuPy")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    import gpugrad as gg

    gg.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture
def run_under_simulator():
    """run(path, timeout=300): pytest `path` in a child with NUMBA_ENABLE_CUDASIM=1 (it only
    takes effect before numba.cuda is first imported, and this process keeps the real one);
    asserts it passed with nothing skipped and returns its stdout."""

    def run(path, timeout=300):
        env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
        result = subprocess.run(
            [sys.executable, "-m", "pytest", str(path), "-q", "-p", "no:cacheprovider"],
            capture_output=True, text=True, env=env, timeout=timeout,
        )
        report = result.stdout[-4000:] + result.stderr[-2000:]
        assert result.returncode == 0, report
        assert " passed" in result.stdout and "skipped" not in result.stdout, report
        return result.stdout

    return run
