"""Starts simulated_cuda_training.py in a child process with NUMBA_ENABLE_CUDASIM=1 (it must be
set before numba.cuda is imported, so it cannot run in this process)."""

import pytest


@pytest.mark.simulator("simulated_cuda_training.py", timeout=600)
def test_simulated_cuda_training_path(simulated):
    assert "6 passed" in simulated
