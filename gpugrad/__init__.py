"""gpugrad: a small, hackable reverse-mode autodiff library with PyTorch's API.

    import gpugrad as gg
    x = gg.randn(3, 4, requires_grad=True)
    (x.relu() ** 2).sum().backward()
"""

import os as _os
import sys as _sys

# Numba's OpenMP workers spin after every parallel loop by default and then fight NumPy's BLAS
# threads for the cores: passive waiting halves the CPU training step (78 -> 37 ms, LeNet,
# batch 64, 2 cores). It must be set before Numba's first parallel call; a user's value wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "passive")
# OpenBLAS (NumPy's BLAS) keeps its threads spinning for 2**28 cycles (~0.1 s) after every GEMM,
# so the Numba kernel that follows (im2col, col2im, ReLU, pooling) runs on cores those threads
# are burning: on 2 cores im2col took 2.0 ms instead of 1.15. 2**18 cycles (~0.1 ms) still keeps
# the threads warm across back-to-back GEMMs. The LeNet CPU step went from ~38 to ~33 ms.
# OpenBLAS reads this when NumPy is first imported: it has no effect if NumPy came first
# (`gpugrad info` says which); a user's value wins.
_BLAS_TIMEOUT_TOO_LATE = (
    "numpy" in _sys.modules and "OPENBLAS_THREAD_TIMEOUT" not in _os.environ
)
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "18")

from gpugrad.backend import (  # noqa: F401,E402
    bool_ as bool, device, float16, float32, float64, get_default_dtype, int8, int16, int32,
    int64, manual_seed, set_default_dtype, uint8,
)
from gpugrad.tensor import Tensor  # noqa: F401
from gpugrad.ops import (  # noqa: F401
    abs, add, all, amax, amin, any, argmax, argmin, bitwise_and, bitwise_not, bitwise_or,
    bitwise_xor, bmm, broadcast_to, cat, ceil, chunk, clamp, clip, clone, concat, concatenate,
    cos, div, eq, erf, exp, expand_as, expm1, flatten, floor, floor_divide, gather, ge, gt, isfinite, isinf,
    isnan, le, log, log1p, log_softmax, logical_and, logical_not, logical_or, logical_xor,
    logsumexp, lt, masked_fill, matmul, max, maximum, mean, min, minimum, mm, mul, ne, neg,
    nonzero, norm, permute, pow, prod, reciprocal, relu, remainder, reshape, round, rsqrt,
    sigmoid, sign, sin, softmax, split, sqrt, square, squeeze, stack, std, sub, sum, tanh,
    transpose, unsqueeze, var, where,
)
from gpugrad.factory import (  # noqa: F401
    arange, as_tensor, empty, empty_like, eye, from_dlpack, from_numpy, full, full_like, linspace,
    ones, ones_like, rand, rand_like, randint, randn, randn_like, randperm, tensor, zeros,
    zeros_like,
)
from gpugrad.autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from gpugrad import autograd, backend, cuda, data, nn, optim, profiler  # noqa: F401
from gpugrad.serialization import load, save  # noqa: F401

__version__ = "0.1.0"

float = float32
double = float64
long = int64
half = float16
