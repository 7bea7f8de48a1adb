"""Starts simulated_cuda_training.py in a child process with NUMBA_ENABLE_CUDASIM=1 (it must be
set before numba.cuda is imported, so it cannot run in this process)."""

import os
import subprocess
import sys
from pathlib import Path


def test_simulated_cuda_training_path():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    here = Path(__file__).with_name("simulated_cuda_training.py")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(here)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "4 passed" in result.stdout
