"""Run the CUDA kernels under Numba's CUDA simulator, in a subprocess.

NUMBA_ENABLE_CUDASIM=1 only takes effect if it is set before numba.cuda is first imported, and
this pytest process must keep the real numba.cuda, so simulated_cuda_cases.py runs in a child.
"""

import os
import subprocess
import sys
from pathlib import Path

CASES = Path(__file__).with_name("simulated_cuda_cases.py")


def test_cuda_kernels_under_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(CASES), "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    report = result.stdout[-4000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    assert " passed" in result.stdout and "skipped" not in result.stdout, report
