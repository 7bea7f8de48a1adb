"""Starts simulated_cuda_training.py in a child process with NUMBA_ENABLE_CUDASIM=1 (it must be
set before numba.cuda is imported, so it cannot run in this process)."""

from pathlib import Path


def test_simulated_cuda_training_path(run_under_simulator):
    output = run_under_simulator(Path(__file__).with_name("simulated_cuda_training.py"),
                                 timeout=600)
    assert "4 passed" in output
