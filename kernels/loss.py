"""Fused softmax cross-entropy with class-index targets: reference, CPU twin, dispatcher.

PyTorch's ``F.cross_entropy(logits, target, weight, ignore_index=..., label_smoothing=eps)``.
With w the class weights (ones when None), C classes, t = target[i] and logp = log_softmax:

    loss_i = (1 - eps) * w[t] * -logp[i, t]  +  eps / C * sum_c w[c] * -logp[i, c]

and loss_i = 0 where t == ignore_index. "mean" divides the sum of loss_i by the total weight
sum_i w[t_i] over rows not ignored (the row count when w is None): all rows ignored gives
0 / 0 = nan, as in PyTorch. The gradient is (softmax - target distribution) * scale, where the
target distribution puts (1 - eps) * w[t] on t plus eps / C * w[c] on every class and softmax is
weighted by their sum; no one-hot array is ever built.

``lse`` (saved for the backward) is float64 whatever the logits dtype: the backward rebuilds the
softmax as exp(x - lse), and a float32 lse would carry an absolute error of half an ulp of the
largest logit (5e-4 at 1e4) straight into every probability. The backward splits it into a float32
high part and a low correction, so the kernels themselves never do float64 arithmetic.
The CUDA kernels live in ``loss_cuda`` and are imported on first use.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from numba import njit, prange

from gpugrad import backend
from gpugrad.kernels._launch import CUDA, REFERENCE, choose_path, run_cpu_twin
from gpugrad.kernels.checks import check_float_array, check_same_dtype
from gpugrad.kernels.cpu_math import exp_fast

REDUCTIONS = ("mean", "sum", "none")


def check_targets(target, num_classes: int, ignore_index: int, op: str = "cross_entropy") -> None:
    """Raise ValueError naming the first bad label (and its flat index) unless every target is
    in [0, C) or ignored.

    On CuPy arrays this waits for the GPU and copies one flag to the host (and, for a bad label,
    the label). The CUDA cross-entropy forward checks its labels inside the kernel instead.
    """
    _check_label_array(op, target)
    if isinstance(num_classes, (bool, np.bool_)) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"{op}: num_classes must be an int, got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"{op}: num_classes must be >= 1, got {num_classes}")
    ignore_index = check_ignore_index(op, ignore_index)
    if target.size == 0:
        return
    flat = target.reshape(-1)
    if flat.dtype.kind == "i" and flat.dtype.itemsize < 8:
        flat = flat.astype(np.int64)  # so that a negative label reads as a huge unsigned one
    # Read as unsigned, a negative label is huge: one comparison checks both ends.
    unsigned = flat.view(np.dtype(f"u{flat.dtype.itemsize}"))
    bad = (unsigned >= num_classes) & (flat != ignore_index)
    if bool(bad.any()):
        _raise_bad_label(op, flat, int(bad.argmax()), num_classes, ignore_index)


def class_indices(target, num_classes: int, ignore_index: int, op: str = "cross_entropy"):
    """`target` as the int64 labels the kernels take. uint64 labels are range-checked first: a
    label of 2**63 or more would wrap to a negative one in the cast (-1 could pass as an
    ignore_index)."""
    _check_label_array(op, target)
    if target.dtype == np.uint64:
        check_targets(target, num_classes, ignore_index, op)
    return target.astype(np.int64, copy=False)


def check_ignore_index(op: str, ignore_index) -> int:
    """ignore_index as a Python int, which must be an integer (not a bool) that fits int64."""
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"{op}: ignore_index must be an int, "
                        f"got {type(ignore_index).__name__} {ignore_index!r}")
    value = int(ignore_index)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"{op}: ignore_index must fit in int64, got {value}")
    return value


def check_label_smoothing(op: str, label_smoothing) -> float:
    """label_smoothing as a float in [0, 1]."""
    if isinstance(label_smoothing, (bool, np.bool_)) or not isinstance(label_smoothing,
                                                                       numbers.Real):
        raise TypeError(f"{op}: label_smoothing must be a float, "
                        f"got {type(label_smoothing).__name__} {label_smoothing!r}")
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    return eps


def _check_label_array(op, target):
    kind = getattr(getattr(target, "dtype", None), "kind", None)
    if kind is None or kind not in "iu" or not hasattr(target, "reshape"):
        raise TypeError(
            f"{op}: target must be an integer array of class indices, "
            f"got {getattr(target, 'dtype', type(target).__name__)}"
        )


def _raise_bad_label(op, target, row, num_classes, ignore_index):
    raise ValueError(
        f"{op}: target label {int(target[row])} (flat index {row}) is out of range; "
        f"expected class indices in [0, {num_classes}) or ignore_index={ignore_index}"
    )


# ----------------------------------------------------------------------------- NumPy reference
# Computed in float64 whatever the input dtype (it is the oracle), then cast back.


def softmax_cross_entropy_forward_reference(
    logits, target, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"
):
    """(loss, lse, total_weight) by the textbook log-softmax composition."""
    xp = backend.array_module(logits)
    n, c = logits.shape
    x = logits.astype(np.float64)
    w = xp.ones(c) if weight is None else weight.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    lse = xp.log(xp.exp(x - m).sum(axis=1)) + m[:, 0]
    logp = x - lse[:, None]
    valid = target != ignore_index
    safe_target = xp.where(valid, target, 0)
    w_target = xp.where(valid, w[safe_target], 0.0)
    nll = xp.where(valid, -logp[xp.arange(n), safe_target], 0.0) * w_target
    loss = (1.0 - label_smoothing) * nll
    if label_smoothing > 0:
        smooth = xp.where(valid, -(logp * w).sum(axis=1), 0.0)
        loss = loss + label_smoothing / c * smooth
    total_weight = w_target.sum()
    if reduction == "sum":
        loss = loss.sum()
    elif reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            loss = loss.sum() / total_weight
    dtype = logits.dtype
    return xp.asarray(loss, dtype=dtype), lse, xp.asarray(total_weight, dtype=dtype)


def softmax_cross_entropy_backward_reference(
    logits,
    target,
    lse,
    gloss,
    weight=None,
    ignore_index=-100,
    label_smoothing=0.0,
    reduction="mean",
    total_weight=None,
):
    """dlogits = (softmax * sum(target distribution) - target distribution) * scale."""
    xp = backend.array_module(logits)
    n, c = logits.shape
    w = xp.ones(c) if weight is None else weight.astype(np.float64)
    p = xp.exp(logits.astype(np.float64) - lse.astype(np.float64)[:, None])
    valid = target != ignore_index
    safe_target = xp.where(valid, target, 0)
    w_target = xp.where(valid, w[safe_target], 0.0)
    eps = label_smoothing
    dist = xp.zeros((n, c))
    dist[xp.arange(n), safe_target] = (1.0 - eps) * w_target
    dist += eps / c * w[None, :] * valid[:, None]
    g = p * dist.sum(axis=1, keepdims=True) - dist
    gloss = xp.asarray(gloss, dtype=np.float64)
    if reduction == "none":
        scale = gloss[:, None]
    elif reduction == "sum":
        scale = gloss
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = gloss / xp.asarray(total_weight, dtype=np.float64)
    g = xp.where(valid[:, None], g * scale, 0.0)
    return g.astype(logits.dtype)


# ----------------------------------------------------------------------------- CPU twins
# Numba over NumPy: the NumPy composition makes five full passes over (N, C) temporaries for the
# forward and three for the backward; the twin reads each row once per pass while it sits in
# L1, with a vectorized float32 exp (cpu_math.exp_fast). Bench (N=4096, C=1000, float32,
# 2 threads): forward + backward 2.7x faster than NumPy, 1.5x than PyTorch
# (bench/results/kernels-cpu.json).

# No nnan/ninf: NaN and inf logits must still come out as NaN losses and gradients. No reassoc:
# it would license rewriting (x - hi) - lo as x - (hi + lo), undoing the float64 lse split.
_FASTMATH = {"contract", "nsz", "arcp"}
# Independent accumulators per row: LLVM keeps them in vector registers, which turns the max and
# sum reductions into SIMD loops without reassociating any single sum.
_LANES = 16


@njit(fastmath=_FASTMATH, cache=True, inline="always")
def _row_max(row):
    n = row.shape[0]
    m = row[0]
    lanes = np.full(_LANES, m, row.dtype)
    full = n - n % _LANES
    for b in range(0, full, _LANES):
        for k in range(_LANES):
            v = row[b + k]
            lanes[k] = v if v > lanes[k] else lanes[k]
    for k in range(_LANES):
        m = lanes[k] if lanes[k] > m else m
    for j in range(full, n):
        m = row[j] if row[j] > m else m
    return m


@njit(fastmath=_FASTMATH, cache=True, inline="always")
def _row_sum_exp(row, m):
    """sum_j exp(row[j] - m)."""
    n = row.shape[0]
    lanes = np.zeros(_LANES, row.dtype)
    full = n - n % _LANES
    for b in range(0, full, _LANES):
        for k in range(_LANES):
            lanes[k] += exp_fast(row[b + k] - m)
    s = row.dtype.type(0)
    for k in range(_LANES):
        s += lanes[k]
    for j in range(full, n):
        s += exp_fast(row[j] - m)
    return s


@njit(fastmath=_FASTMATH, cache=True, inline="always")
def _row_weighted_gap(row, m, weight):
    """sum_j weight[j] * (m - row[j]): every term is >= 0, so nothing cancels at large logits."""
    n = row.shape[0]
    lanes = np.zeros(_LANES, row.dtype)
    full = n - n % _LANES
    for b in range(0, full, _LANES):
        for k in range(_LANES):
            lanes[k] += weight[b + k] * (m - row[b + k])
    s = row.dtype.type(0)
    for k in range(_LANES):
        s += lanes[k]
    for j in range(full, n):
        s += weight[j] * (m - row[j])
    return s


@njit(parallel=True, fastmath=_FASTMATH, cache=True)
def _softmax_cross_entropy_forward_cpu(
    logits, target, weight, weight_sum, ignore_index, on_target, off_target,
    row_max, row_log_sum, row_loss, row_weight,
):  # fmt: skip
    n_cls = logits.shape[1]
    zero = logits.dtype.type(0)
    smoothing = off_target != zero
    for i in prange(logits.shape[0]):
        row = logits[i]
        m = _row_max(row)
        log_s = math.log(_row_sum_exp(row, m))
        row_max[i] = m
        row_log_sum[i] = log_s
        t = target[i]
        if t == ignore_index:
            row_loss[i] = zero
            row_weight[i] = zero
            continue
        if t < 0 or t >= n_cls:
            # The dispatcher checked the labels; a bad one must still never index out of bounds.
            row_loss[i] = math.nan
            row_weight[i] = math.nan
            continue
        wt = weight[t]
        # lse - x[t] as (m - x[t]) + log_s: exact differences first, so 1e4 logits lose nothing.
        loss = on_target * wt * ((m - row[t]) + log_s)
        if smoothing:
            # sum_c w[c] * (lse - x[c]) = sum_c w[c] * (m - x[c]) + log_s * sum_c w[c]
            loss += off_target * (_row_weighted_gap(row, m, weight) + log_s * weight_sum[0])
        row_loss[i] = loss
        row_weight[i] = wt


@njit(parallel=True, fastmath=_FASTMATH, cache=True)
def _softmax_cross_entropy_backward_cpu(
    logits, target, weight, weight_sum, ignore_index, on_target, off_target,
    lse_hi, lse_lo, scale, gx,
):  # fmt: skip
    n_rows, n_cls = logits.shape
    zero = logits.dtype.type(0)
    per_row = scale.shape[0] > 1
    for i in prange(n_rows):
        g = gx[i]
        t = target[i]
        if t == ignore_index:
            for j in range(n_cls):
                g[j] = zero
            continue
        if t < 0 or t >= n_cls:
            # Only reached with check_labels=False and a broken promise: NaN, not a stray read.
            for j in range(n_cls):
                g[j] = math.nan
            continue
        row = logits[i]
        sc = scale[i] if per_row else scale[0]
        wt = weight[t]
        coef = on_target * wt + off_target * weight_sum[0]
        hi = lse_hi[i]
        lo = lse_lo[i]
        for j in range(n_cls):
            g[j] = (exp_fast((row[j] - hi) - lo) * coef - off_target * weight[j]) * sc
        p_t = exp_fast((row[t] - hi) - lo)
        g[t] = (p_t * coef - off_target * wt - on_target * wt) * sc


# ----------------------------------------------------------------------------- dispatchers


def softmax_cross_entropy_forward(
    logits,
    target,
    weight=None,
    ignore_index=-100,
    label_smoothing=0.0,
    reduction="mean",
    device="cpu",
):
    """(loss, lse, total_weight): loss 0-d (mean/sum) or (N,) (none); lse (N,) float64."""
    op = "cross_entropy"
    arrays = [a for a in (logits, target, weight) if a is not None]
    path = choose_path(op, device, *arrays)
    n, c = _check_inputs(op, logits, target, weight, ignore_index, label_smoothing, reduction)
    if path != CUDA or target.dtype == np.uint64:
        # (The CUDA kernel checks int64 labels; a uint64 one might wrap in the cast.)
        check_targets(target, c, ignore_index, op)
    if path == REFERENCE:
        return softmax_cross_entropy_forward_reference(
            logits, target, weight, ignore_index, label_smoothing, reduction
        )
    xp = backend.array_module(logits)
    args = _kernel_args(xp, logits, target, weight, ignore_index, label_smoothing)
    # One buffer for the four per-row outputs: one allocation, and one reduction for the loss
    # and total weight below.
    rows = xp.empty((4, n), logits.dtype)
    row_max, row_log_sum, row_loss, row_weight = rows[0], rows[1], rows[2], rows[3]
    if path == CUDA:
        from gpugrad.kernels import loss_cuda

        # The kernel checks the labels itself and leaves the first bad row here (n: none), so
        # nothing waits for the GPU before it runs; the one read-back comes after everything
        # below is queued.
        first_bad = xp.full(1, n, np.int64)
        loss_cuda.softmax_cross_entropy_forward(*args, row_max, row_log_sum, row_loss,
                                                row_weight, first_bad, device)
    else:
        run_cpu_twin(_softmax_cross_entropy_forward_cpu, logits.size, *args,
                     row_max, row_log_sum, row_loss, row_weight)
    lse = xp.add(row_max, row_log_sum, dtype=np.float64)
    sums = rows[2:].sum(axis=1)
    total_weight = sums[1, ...]  # 0-d arrays, not NumPy scalars
    loss = sums[0, ...]
    if reduction == "none":
        loss = row_loss
    elif reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            loss = xp.asarray(loss / total_weight)
    if path == CUDA:
        row = int(first_bad[0])
        if row < n:
            _raise_bad_label(op, target, row, c, ignore_index)
    return loss, lse, total_weight


def softmax_cross_entropy_backward(
    logits,
    target,
    lse,
    gloss,
    weight=None,
    ignore_index=-100,
    label_smoothing=0.0,
    reduction="mean",
    total_weight=None,
    device="cpu",
    check_labels=True,
):
    """dlogits (N, C) for the incoming gradient `gloss` (0-d for mean/sum, (N,) for none).

    `check_labels=False` skips the label check (on the GPU a wait and a read-back) for labels
    that already went through the forward, as autograd's do. A bad one then gives a NaN row, never
    an out-of-bounds read.
    """
    op = "cross_entropy_backward"
    arrays = [a for a in (logits, target, lse, gloss, weight, total_weight) if a is not None]
    path = choose_path(op, device, *arrays)
    n, c = _check_inputs(op, logits, target, weight, ignore_index, label_smoothing, reduction)
    check_float_array(op, "lse", lse, shape=(n,))
    gloss_shape = (n,) if reduction == "none" else ()
    check_float_array(op, "gloss", gloss, shape=gloss_shape)
    if reduction == "mean":
        if total_weight is None:
            raise ValueError(f"{op}: reduction 'mean' needs the total_weight from the forward")
        check_float_array(op, "total_weight", total_weight, shape=())
    # The reference path always checks: as an oracle that wraps a bad label (NumPy's negative
    # indexing), it would give a silent wrong answer.
    if check_labels or path == REFERENCE:
        check_targets(target, c, ignore_index, op)
    if path == REFERENCE:
        return softmax_cross_entropy_backward_reference(
            logits, target, lse, gloss, weight, ignore_index, label_smoothing, reduction,
            total_weight,
        )  # fmt: skip
    xp = backend.array_module(logits)
    args = _kernel_args(xp, logits, target, weight, ignore_index, label_smoothing)
    lse_hi, lse_lo, scale = _backward_kernel_args(xp, lse, gloss, reduction, total_weight,
                                                  logits.dtype)
    gx = backend.empty((n, c), logits.dtype, like=logits)
    if path == CUDA:
        from gpugrad.kernels import loss_cuda

        loss_cuda.softmax_cross_entropy_backward(*args, lse_hi, lse_lo, scale, gx, device)
    else:
        run_cpu_twin(_softmax_cross_entropy_backward_cpu, gx.size, *args, lse_hi, lse_lo, scale, gx)
    return gx


def __getattr__(name):
    # The CUDA kernels are built on first access so that importing this module does not import
    # numba.cuda.
    if name in ("softmax_cross_entropy_forward_kernel", "softmax_cross_entropy_backward_kernel"):
        from gpugrad.kernels import loss_cuda

        return getattr(loss_cuda, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------- helpers


def _check_inputs(op, logits, target, weight, ignore_index, label_smoothing, reduction):
    check_float_array(op, "logits", logits, ndim=2)
    n, c = logits.shape
    if c == 0:
        raise ValueError(f"{op}: logits must have at least one class, got shape {(n, c)}")
    _check_label_array(op, target)
    check_ignore_index(op, ignore_index)
    check_label_smoothing(op, label_smoothing)
    if tuple(target.shape) != (n,):
        raise ValueError(
            f"{op}: target must have shape ({n},) to match logits {(n, c)}, "
            f"got {tuple(target.shape)}"
        )
    if weight is not None:
        check_float_array(op, "weight", weight, shape=(c,))
        check_same_dtype(op, "weight", weight, logits.dtype)
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return n, c


def _kernel_args(xp, logits, target, weight, ignore_index, label_smoothing):
    """The arguments every forward/backward kernel takes, in kernel order."""
    n, c = logits.shape
    dt = logits.dtype.type
    logits = xp.ascontiguousarray(logits)
    target = xp.ascontiguousarray(target, dtype=np.int64)
    # weight_sum is an array, not a Python float, so the sum never leaves the GPU.
    if weight is None:
        weight, weight_sum = _default_weights(xp, c, logits)
    else:
        weight = xp.ascontiguousarray(weight)
        weight_sum = weight.sum(keepdims=True)
    eps = float(label_smoothing)
    on_target, off_target = dt(1.0 - eps), dt(eps / c)
    return logits, target, weight, weight_sum, np.int64(ignore_index), on_target, off_target


# The unweighted calls' class weights (ones) and their sum, per device, class count and dtype:
# made once, not as two allocations and two fills on every call (on a GPU each is a launch
# and ~10 us of host time before the kernel can start). The kernels only read them.
_DEFAULT_WEIGHTS: dict = {}
_DEFAULT_WEIGHTS_KEPT = 8


def _default_weights(xp, c, like):
    """(ones(c), [c]) in `like`'s dtype, on `like`'s device, from the cache."""
    dev = backend.device_of_array(like)
    key = (dev, c, like.dtype)
    hit = _DEFAULT_WEIGHTS.get(key)
    if hit is None:
        with backend.device_context(dev):
            hit = (xp.ones(c, like.dtype), xp.full(1, c, like.dtype))
        if len(_DEFAULT_WEIGHTS) >= _DEFAULT_WEIGHTS_KEPT:
            _DEFAULT_WEIGHTS.pop(next(iter(_DEFAULT_WEIGHTS)))  # the oldest
        _DEFAULT_WEIGHTS[key] = hit
    return hit


def _backward_kernel_args(xp, lse, gloss, reduction, total_weight, dtype):
    """(lse_hi, lse_lo, scale), what the backward kernels take beside _kernel_args: the float64
    log-sum-exp split into two `dtype` parts (hi + lo), and the incoming gradient over the total
    weight for 'mean', per row for 'none'."""
    lse = lse.astype(np.float64, copy=False)
    lse_hi = lse.astype(dtype)
    lse_lo = (lse - lse_hi).astype(dtype)
    scale = gloss.astype(dtype, copy=False)
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = scale / total_weight.astype(dtype, copy=False)
    return lse_hi, lse_lo, xp.ascontiguousarray(xp.reshape(scale, (-1,)))

