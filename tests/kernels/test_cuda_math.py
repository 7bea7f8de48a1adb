"""kernels/cuda_math.py: exp2_flush compiles to the one-instruction hardware exp2 in float32
and to libdevice's exp2 in float64 (PTX, no GPU needed). Its simulator stand-in is exercised by
every simulated cross-entropy forward (tests/kernels/simulated_cuda_cases.py)."""

import math
import re

import pytest

pytest.importorskip("gpugrad.kernels.ptx", reason="numba-cuda is not installed")

from numba import cuda, types  # noqa: E402
from numba.core import errors as core_errors  # noqa: E402
from numba.cuda.core import errors as cuda_errors  # noqa: E402

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
    # numba-cuda raises its own TypingError (numba.cuda.core.errors), not numba.core's.
    with pytest.raises((cuda_errors.TypingError, core_errors.TypingError)):
        cuda.compile_ptx(_kernel, (types.Array(types.int64, 1, "C"),
                                   types.Array(types.int64, 1, "C")), cc=(9, 0))


@pytest.mark.gpu
def test_on_a_gpu_it_is_exp2_to_the_bit_down_to_the_denormals(cp):
    """On the GPU itself: equal to the bit to math.exp2's float32 build (the same MUFU.EX2
    with a denormal fix-up) wherever 2^x is a normal float32, and 0 where it is not."""
    import numpy as np

    x = np.concatenate([np.linspace(-150, 128, 20001, dtype=np.float32),
                        np.float32([-126, -125.5, -126.5, 0, -0.0, np.inf, -np.inf, np.nan])])
    flushed, exact = cp.empty_like(cp.asarray(x)), cp.empty_like(cp.asarray(x))

    @cuda.jit
    def both(x, flushed, exact):
        i = cuda.grid(1)
        if i < x.shape[0]:
            flushed[i] = exp2_flush(x[i])
            exact[i] = math.exp2(x[i])

    both[(x.size + 255) // 256, 256](cp.asarray(x), flushed, exact)
    flushed, exact = cp.asnumpy(flushed), cp.asnumpy(exact)
    normal = np.abs(exact) >= np.finfo(np.float32).tiny
    np.testing.assert_array_equal(flushed[normal], exact[normal])
    assert (flushed[~normal & ~np.isnan(exact)] == 0).all()
    assert np.isnan(flushed[np.isnan(x)]).all()
