"""Every op of gpugrad: one Function per op (forward and backward together) and the function
users call. Tensor methods and the top-level `gg.*` functions forward here."""

from gpugrad.ops.bitwise import bitwise_and, bitwise_not, bitwise_or, bitwise_xor  # noqa: F401
from gpugrad.ops.common import check_same_device  # noqa: F401
from gpugrad.ops.elementwise import (  # noqa: F401
    abs, add, ceil, clamp, clip, cos, div, eq, exp, floor, floor_divide, ge, gt, isfinite, isinf,
    isnan, le, log, log1p, logical_and, logical_not, logical_or, logical_xor, lt, masked_fill,
    maximum, minimum, mul, ne, neg, pow, reciprocal, relu, relu_backward, remainder, round,
    rsqrt, sigmoid, sign, sin, sqrt, square, sub, tanh, where,
)
from gpugrad.ops.indexing import gather, getitem, nonzero, scatter_along, setitem_  # noqa: F401
from gpugrad.ops.linalg import bmm, linear, matmul, mm  # noqa: F401
from gpugrad.ops.reduce import (  # noqa: F401
    all, amax, amin, any, argmax, argmin, logsumexp, max, mean, min, norm, prod, std, sum,
    sum_to, var,
)
from gpugrad.ops.shape import (  # noqa: F401
    broadcast_to, cast, cat, chunk, clone, concat, concatenate, contiguous, expand, expand_as,
    flatten, permute, reshape, reshape_as, split, squeeze, stack, to_device, transpose, unsqueeze,
    view, view_as,
)
from gpugrad.ops.softmax import log_softmax, softmax  # noqa: F401
from gpugrad.ops.special import erf, expm1  # noqa: F401
