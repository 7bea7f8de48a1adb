"""kernels/cuda_math.py: exp2_flush compiles to the one-instruction hardware exp2 in float32
and to libdevice's exp2 in float64 (PTX, no GPU needed). Its simulator stand-in is exercised by
every simulated cross-entropy forward (tests/kernels/simulated_cuda_cases.py)."""

import math
import re

import pytest

pytest.importorskip("gpugrad.kernels.ptx", reason="numba-cuda is not installed")

from numba import cuda, types  # noqa: E402
from numba.core.errors import TypingError  # noqa: E402

from gpugrad.kernels.cuda_math import exp2_flush  # noqa: E402


def _kernel(x, out):
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = exp2_flush(x[i] - x[i + 1])


def _math_exp2_kernel(x, out):
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = math.exp2(x[i] - x[i + 1])


def _ptx(dtype, kernel=_kernel):
    sig = (types.Array(dtype, 1, "C"), types.Array(dtype, 1, "C"))
    code, _ = cuda.compile_ptx(kernel, sig, cc=(9, 0))
    return code


def test_float32_is_the_flushed_hardware_exp2():
    code = _ptx(types.float32)
    assert len(re.findall(r"\bex2\.approx\.ftz\.f32\b", code)) == 1
    assert not re.findall(r"\bex2\.approx\.f32\b", code)
    assert not re.findall(r"\.f64\b", code)


def test_float64_is_libdevice_exp2_not_an_approximation():
    code = _ptx(types.float64)
    assert "ex2.approx" not in code
    # The same polynomial as math.exp2 compiles to: the same float64 FMAs.
    reference = _ptx(types.float64, _math_exp2_kernel)
    assert code.count("fma.rn.f64") == reference.count("fma.rn.f64") > 0


def test_other_types_are_refused_at_compile_time():
    with pytest.raises(TypingError):
        cuda.compile_ptx(_kernel, (types.Array(types.int64, 1, "C"),
                                   types.Array(types.int64, 1, "C")), cc=(9, 0))
