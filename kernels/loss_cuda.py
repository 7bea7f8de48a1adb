"""CUDA kernels for the fused softmax cross-entropy; see kernels/loss.py for the math.

Imported on the first CUDA call only (it imports numba.cuda). Both kernels give each row a block
of 32 to 256 threads, sized to the class count (grid-stride over rows). In the forward each warp
reduces with register shuffles and the warps meet in shared memory, two block barriers per row,
in a fixed order (deterministic); the backward needs no reduction.
"""

from __future__ import annotations

import math

from numba import cuda, types

from gpugrad.kernels._launch import launch_rows

WARP = 32
# The most threads a row's block gets (a multiple of WARP); sizes the per-warp shared buffers.
MAX_ROW_THREADS = 256
MAX_ROW_WARPS = MAX_ROW_THREADS // WARP
# Every lane of a warp takes part in each shuffle.
FULL_MASK = 0xFFFFFFFF
# Logits each thread loads before it uses any (see the kernels).
UNROLL = 4


def row_threads(n_cls: int) -> int:
    """Threads per row for `n_cls` classes: about four logits per thread, a whole number of
    warps, at most MAX_ROW_THREADS (a 10-class row gets one warp, a 1000-class row 256)."""
    threads = WARP
    while threads < MAX_ROW_THREADS and threads * 4 < n_cls:
        threads *= 2
    return threads


@cuda.jit(device=True, inline=True)
def row_max(logits, i, j, stride, m):
    """The max of `m` and logits[i, j::stride], loading UNROLL logits before using any (UNROLL
    loads in flight, not one: the row's latency, not its bytes, bounded these kernels on an
    H200). NaN never wins a comparison; it shows up in the sum of exps instead."""
    n_cls = logits.shape[1]
    while j + (UNROLL - 1) * stride < n_cls:
        a = logits[i, j]
        b = logits[i, j + stride]
        c = logits[i, j + 2 * stride]
        d = logits[i, j + 3 * stride]
        m = a if a > m else m
        m = b if b > m else m
        m = c if c > m else m
        m = d if d > m else m
        j += UNROLL * stride
    while j < n_cls:
        v = logits[i, j]
        m = v if v > m else m
        j += stride
    return m


@cuda.jit(device=True, inline=True)
def row_exp_sums(logits, weight, smoothing, i, j, stride, m):
    """(sum of exp(x - m), and with smoothing sum of w * (m - x)) over logits[i, j::stride],
    UNROLL loads in flight. Each w[c] * (m - x[c]) >= 0: nothing cancels at large logits."""
    n_cls = logits.shape[1]
    s = logits.dtype.type(0)
    gap = logits.dtype.type(0)
    while j + (UNROLL - 1) * stride < n_cls:
        a = logits[i, j]
        b = logits[i, j + stride]
        c = logits[i, j + 2 * stride]
        d = logits[i, j + 3 * stride]
        s += (math.exp(a - m) + math.exp(b - m)) + (math.exp(c - m) + math.exp(d - m))
        if smoothing:
            gap += (weight[j] * (m - a) + weight[j + stride] * (m - b)) + (
                weight[j + 2 * stride] * (m - c) + weight[j + 3 * stride] * (m - d))
        j += UNROLL * stride
    while j < n_cls:
        v = logits[i, j]
        s += math.exp(v - m)
        if smoothing:
            gap += weight[j] * (m - v)
        j += stride
    return s, gap


@cuda.jit(device=True, inline=True)
def warp_max(m):
    """Butterfly over the warp: every lane ends with the warp's max."""
    offset = WARP // 2
    while offset > 0:
        other = cuda.shfl_xor_sync(FULL_MASK, m, offset)
        m = other if other > m else m
        offset //= 2
    return m


@cuda.jit(device=True, inline=True)
def warp_sum(v):
    """Butterfly over the warp: every lane ends with the same sum, in a fixed order."""
    offset = WARP // 2
    while offset > 0:
        v += cuda.shfl_xor_sync(FULL_MASK, v, offset)
        offset //= 2
    return v


@cuda.jit(device=True, inline=True)
def row_loss(m, log_s, gap, x_t, w_t, on_target, off_target, weight_sum, smoothing):
    """The row's (smoothed, weighted) loss from its max, log-sum-exp and smoothing gap."""
    # lse - x[t] as (m - x[t]) + log_s: exact differences first.
    loss = on_target * w_t * ((m - x_t) + log_s)
    if smoothing:
        loss += off_target * (gap + log_s * weight_sum[0])
    return loss


@cuda.jit
def softmax_cross_entropy_forward_kernel(
    logits, target, weight, weight_sum, ignore_index, on_target, off_target,
    row_max_out, row_log_sum, row_loss_out, row_weight,
):  # fmt: skip
    """Per row: max, log-sum-exp and the (smoothed, weighted) loss, in one block. The second
    pass re-reads the row from cache."""
    n_rows, n_cls = logits.shape
    zero = logits.dtype.type(0)
    neg_inf = logits.dtype.type(-math.inf)
    smoothing = off_target != zero
    # The block-level combines are written out here rather than as device functions:
    # compile_ptx cannot compile a device function that declares shared memory without a GPU.
    warp_maxes = cuda.shared.array(MAX_ROW_WARPS, dtype=logits.dtype)
    warp_sums = cuda.shared.array(MAX_ROW_WARPS, dtype=logits.dtype)
    warp_gaps = cuda.shared.array(MAX_ROW_WARPS, dtype=logits.dtype)
    tid = cuda.threadIdx.x
    threads = cuda.blockDim.x
    n_warps = threads // WARP
    lane = tid % WARP
    warp = tid // WARP
    for i in range(cuda.blockIdx.x, n_rows, cuda.gridDim.x):
        m = warp_max(row_max(logits, i, tid, threads, neg_inf))
        if lane == 0:
            warp_maxes[warp] = m
        # Every warp's max must be in shared memory before any thread combines them. (The
        # previous row's reads of warp_maxes all happened before that row's second barrier.)
        cuda.syncthreads()
        m = warp_maxes[0]
        for k in range(1, n_warps):
            other = warp_maxes[k]
            m = other if other > m else m

        s, gap = row_exp_sums(logits, weight, smoothing, i, tid, threads, m)
        s = warp_sum(s)
        gap = warp_sum(gap)
        if lane == 0:
            warp_sums[warp] = s
            warp_gaps[warp] = gap
        # Every warp's sums must be in shared memory before thread 0 adds them up (and every
        # thread has read warp_maxes by now, so the next row may overwrite it).
        cuda.syncthreads()

        if tid == 0:
            s = warp_sums[0]
            gap = warp_gaps[0]
            for k in range(1, n_warps):
                s += warp_sums[k]
                gap += warp_gaps[k]
            log_s = math.log(s)
            row_max_out[i] = m
            row_log_sum[i] = log_s
            t = target[i]
            if t == ignore_index:
                row_loss_out[i] = zero
                row_weight[i] = zero
            else:
                w_t = weight[t]
                row_loss_out[i] = row_loss(m, log_s, gap, logits[i, t], w_t, on_target,
                                           off_target, weight_sum, smoothing)
                row_weight[i] = w_t


@cuda.jit(device=True, inline=True)
def dlogit(x, j, t, hi, lo, coef, on_wt, off_target, weight, smoothing, sc):
    """One logit's gradient: (softmax * coef - target distribution) * scale."""
    g = math.exp((x - hi) - lo) * coef
    if smoothing:
        g -= off_target * weight[j]
    if j == t:
        g -= on_wt
    return g * sc


@cuda.jit
def softmax_cross_entropy_backward_kernel(
    logits, target, weight, weight_sum, ignore_index, on_target, off_target,
    lse_hi, lse_lo, scale, gx,
):  # fmt: skip
    """A block per row (grid-stride over rows), its threads across the classes: the row's
    label, weight, lse and scale are read once per thread, and no integer division is needed.
    Each thread loads UNROLL logits before it writes any gradient."""
    n_rows, n_cls = logits.shape
    zero = logits.dtype.type(0)
    per_row = scale.shape[0] > 1
    smoothing = off_target != zero
    tid = cuda.threadIdx.x
    threads = cuda.blockDim.x
    for i in range(cuda.blockIdx.x, n_rows, cuda.gridDim.x):
        t = target[i]
        if t == ignore_index:
            for j in range(tid, n_cls, threads):
                gx[i, j] = zero
            continue
        sc = scale[i] if per_row else scale[0]
        wt = weight[t]
        on_wt = on_target * wt
        coef = on_wt + off_target * weight_sum[0]
        hi = lse_hi[i]
        lo = lse_lo[i]
        j = tid
        while j + (UNROLL - 1) * threads < n_cls:
            a = logits[i, j]
            b = logits[i, j + threads]
            c = logits[i, j + 2 * threads]
            d = logits[i, j + 3 * threads]
            gx[i, j] = dlogit(a, j, t, hi, lo, coef, on_wt, off_target, weight, smoothing, sc)
            k = j + threads
            gx[i, k] = dlogit(b, k, t, hi, lo, coef, on_wt, off_target, weight, smoothing, sc)
            k += threads
            gx[i, k] = dlogit(c, k, t, hi, lo, coef, on_wt, off_target, weight, smoothing, sc)
            k += threads
            gx[i, k] = dlogit(d, k, t, hi, lo, coef, on_wt, off_target, weight, smoothing, sc)
            j += UNROLL * threads
        while j < n_cls:
            x = logits[i, j]
            gx[i, j] = dlogit(x, j, t, hi, lo, coef, on_wt, off_target, weight, smoothing, sc)
            j += threads


def softmax_cross_entropy_forward(
    logits, target, weight, weight_sum, ignore_index, on_target, off_target,
    row_max, row_log_sum, row_loss, row_weight, device,
) -> None:  # fmt: skip
    launch_rows(
        softmax_cross_entropy_forward_kernel, logits.shape[0], row_threads(logits.shape[1]),
        device,
        logits, target, weight, weight_sum, ignore_index, on_target, off_target,
        row_max, row_log_sum, row_loss, row_weight,
    )  # fmt: skip


def softmax_cross_entropy_backward(
    logits, target, weight, weight_sum, ignore_index, on_target, off_target,
    lse_hi, lse_lo, scale, gx, device,
) -> None:  # fmt: skip
    launch_rows(
        softmax_cross_entropy_backward_kernel, logits.shape[0], row_threads(logits.shape[1]),
        device,
        logits, target, weight, weight_sum, ignore_index, on_target, off_target,
        lse_hi, lse_lo, scale, gx,
    )  # fmt: skip


def signatures(dtype):
    """(name, kernel, argument types) for each kernel as the dispatchers launch it."""
    f = types.float64 if dtype == "float64" else types.float32
    i = types.int64
    m2 = types.Array(f, 2, "C")
    v = types.Array(f, 1, "C")
    labels = types.Array(i, 1, "C")
    return [
        (
            "softmax_cross_entropy_forward_kernel",
            softmax_cross_entropy_forward_kernel,
            (m2, labels, v, v, i, f, f, v, v, v, v),
        ),
        (
            "softmax_cross_entropy_backward_kernel",
            softmax_cross_entropy_backward_kernel,
            (m2, labels, v, v, i, f, f, v, v, v, m2),
        ),
    ]
