"""Run the CUDA kernels under Numba's CUDA simulator, in a subprocess.

NUMBA_ENABLE_CUDASIM=1 only takes effect if it is set before numba.cuda is first imported, and
this pytest process must keep the real numba.cuda, so simulated_cuda_cases.py runs in a child
(started when collection ends: see tests/conftest.py).
"""

import pytest


@pytest.mark.simulator("simulated_cuda_cases.py")
def test_cuda_kernels_under_the_simulator(simulated):
    assert " passed" in simulated
