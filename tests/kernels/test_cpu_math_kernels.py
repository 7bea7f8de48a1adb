"""exp_fast, the vectorizable float32 exp of the CPU twins: accuracy and special values."""

import math

import numpy as np
from numba import njit

from gpugrad.kernels.cpu_math import exp_fast


@njit
def _exp_all(x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = exp_fast(x[i])
    return out


def test_float32_within_3_ulp_of_float64_exp():
    x = np.linspace(-86.0, 88.0, 400_001).astype(np.float32)
    got = _exp_all(x)
    assert got.dtype == np.float32
    exact = np.exp(x.astype(np.float64))
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got - exact) / ulp) <= 3.0


def test_float32_special_values():
    x = np.array([0.0, -0.0, -np.inf, -1e4, -88.0, np.inf, 1e4, 89.0, np.nan], np.float32)
    got = _exp_all(x)
    assert got[0] == 1 and got[1] == 1
    np.testing.assert_array_equal(got[2:5], 0.0)  # exactly 0: softmax of a masked logit
    np.testing.assert_array_equal(got[5:8], np.inf)
    assert np.isnan(got[8])


def test_float64_is_libm_exp():
    x = np.array([-700.0, -1.5, 0.0, 2.25, 700.0])
    np.testing.assert_array_equal(_exp_all(x), [math.exp(v) for v in x])
