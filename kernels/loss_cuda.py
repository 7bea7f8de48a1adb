"""CUDA kernels for the fused softmax cross-entropy; see kernels/loss.py for the math.

Imported on the first CUDA call only (it imports numba.cuda). Both kernels give each row one
warp (eight rows to a 256-thread block, grid-stride over row groups): a row's lanes reduce
with register shuffles in a fixed order (deterministic), and no block barrier holds a row
back. Measured on an H200 (N=262144, C=1000, float32, paired against a copy of the logits), the
earlier block-per-row kernels reached 18% (forward) and 42% (backward) of the device's copy
bandwidth; these reach 72-76% and 83% (bench/results/gpu/gpu-variants-cuda*.json: 76% was
the FMA build of run 6; the forward of runs 7 and 8, which takes x - max before the exp2,
measured 72%; the shipped one, with fewer instructions a logit, is not yet timed; the README
tells the steps). What it took, in the order it mattered:

- many loads in flight: each lane issues 16 (forward) or 8 (backward) loads before it uses any,
  including on a row's last, partial trip (a one-at-a-time tail loop cost a latency per logit);
- the forward reads each row once (online softmax: a running max, and a sum of exps rescaled
  when the max rises) instead of twice;
- fewer instructions per logit in the forward: exp as the hardware exp2 (float32; libdevice's
  expf is about ten instructions), unsigned indices (Numba adds negative-index wraparound code
  to signed ones), bounds checks on the last trip only; since run 8, exp2 with denormals
  flushed (kernels/cuda_math.py), max.f32 for the running max and 32-bit guards on the last
  trip: on sm_90 the unrolled loop is 126 SASS instructions instead of 199, the last trip 160
  instead of 282, still 32 registers; not yet timed on a GPU (gpu_variants keeps run 8's
  build to time it against);
- no branch on the label before the row's loads: the label is loaded first but used after;
- the backward capped at 40 registers: six blocks per SM instead of four.

Run 6's forward computed exp2(x * log2e - top * log2e) as one FMA (76%); since run 7 the
forward takes the difference first, one instruction more per logit (72%), because the FMA form
lost 7e-6 of the loss at logits of 1e4 (a test pins this).

The forward also checks the labels: a row whose label is neither ignore_index nor in [0, C) gets
NaN and lowers a first-bad-row flag, which the dispatcher reads back after queuing the rest of
its work (one small copy, instead of a min/max read back before the kernel could start). The
backward's dispatcher checks its labels first unless they came through the forward; if a
caller's promise is broken, the kernel still never uses a bad label as an index (the row's
gradient is NaN).

With label smoothing the forward needs the row's final max for its smoothing gap (a sum of
w * (max - x), kept free of cancellation), so it reads the row twice, as before.
"""

from __future__ import annotations

import math

import numba
from numba import cuda, int32, types, uint64

from gpugrad.kernels._launch import WARP, launch_warp_rows
from gpugrad.kernels.cuda_math import exp2_flush

# Every lane of a warp takes part in each shuffle.
FULL_MASK = 0xFFFFFFFF
# Logits each thread loads before it uses any, in the two-pass (label smoothing) forward.
UNROLL = 4
LOG2E = 1.4426950408889634


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


@cuda.jit(device=True, inline=True)
def rescaled(s, m_old, m_new):
    """A sum of exp(x - m_old) as a sum of exp(x - m_new), m_new >= m_old. Equal maxes (both
    -inf too) leave it as it is: exp(-inf - -inf) would be NaN."""
    return s if m_old == m_new else s * math.exp(m_old - m_new)


@cuda.jit(device=True, inline=True)
def load8(row, j, stride, guarded, fill):
    """row[j + k * stride] for k < 8 (unsigned indices); with `guarded`, `fill` past the row's
    end. All eight loads are issued before any value is used. `guarded` is for a row's last
    trip (row_online), where what is left of the row, n - j, lies in (-8 * stride,
    16 * stride): the guards compare k * stride with it as an int32, one 32-bit compare each
    where j + k * stride < n was a 64-bit one (the last trip of a 1000-class row, half of it,
    went from 209 to 160 SASS instructions on sm_90 with the same online8 around them, still
    32 registers)."""
    if guarded:
        left = int32(row.shape[0] - j)
        a = row[uint64(j)] if 0 < left else fill
        b = row[uint64(j + stride)] if stride < left else fill
        c = row[uint64(j + 2 * stride)] if 2 * stride < left else fill
        d = row[uint64(j + 3 * stride)] if 3 * stride < left else fill
        e = row[uint64(j + 4 * stride)] if 4 * stride < left else fill
        f = row[uint64(j + 5 * stride)] if 5 * stride < left else fill
        g = row[uint64(j + 6 * stride)] if 6 * stride < left else fill
        h = row[uint64(j + 7 * stride)] if 7 * stride < left else fill
    else:
        a = row[uint64(j)]
        b = row[uint64(j + stride)]
        c = row[uint64(j + 2 * stride)]
        d = row[uint64(j + 3 * stride)]
        e = row[uint64(j + 4 * stride)]
        f = row[uint64(j + 5 * stride)]
        g = row[uint64(j + 6 * stride)]
        h = row[uint64(j + 7 * stride)]
    return a, b, c, d, e, f, g, h


@cuda.jit(device=True, inline=True)
def online8(m, s, zero, log2e, a, b, c, d, e, f, g, h):
    """(max, sum of exp(x - max)) after eight more logits; -inf ones add nothing. exp(x - top)
    is exp2((x - top) * log2e), the hardware exp2 in float32 (libdevice's expf is about ten
    instructions), with denormals flushed (exp2_flush: one instruction instead of four; a term
    under 1.2e-38 changes no sum that holds the max's term, 1). The difference comes first:
    x - top is exact for the logits near the max, which carry the sum, where
    x * log2e - top * log2e would lose the rounding of top * log2e (5e-4 at logits of 1e4).
    While the max is still -inf the shift is 0, so a -inf adds exp2(-inf) = 0 and a NaN adds
    NaN. max(top, x) is one max.f32 (a compare and a select before): NaN never wins it, as
    `x if x > top else top` did not let it, and top is never NaN. Of +0 and -0 it may keep
    either (the compare kept the first): only a row max of zero can show it, in its sign."""
    top = m
    top = max(top, a)
    top = max(top, b)
    top = max(top, c)
    top = max(top, d)
    top = max(top, e)
    top = max(top, f)
    top = max(top, g)
    top = max(top, h)
    shift = top if top != -math.inf else zero
    if m != top:
        s *= exp2_flush((m - top) * log2e)
    s += ((exp2_flush((a - shift) * log2e) + exp2_flush((b - shift) * log2e))
          + (exp2_flush((c - shift) * log2e) + exp2_flush((d - shift) * log2e))) + (
          (exp2_flush((e - shift) * log2e) + exp2_flush((f - shift) * log2e))
          + (exp2_flush((g - shift) * log2e) + exp2_flush((h - shift) * log2e)))
    return top, s


@cuda.jit(device=True, inline=True)
def row_online(row, lane, m, s, zero, neg_inf, log2e):
    """One pass over row[lane::WARP]: 16 loads a trip, unguarded while a whole trip fits, then
    one guarded trip for the rest (at most 15 logits a lane)."""
    n = row.shape[0]
    j = lane
    while j + 15 * WARP < n:
        a, b, c, d, e, f, g, h = load8(row, j, WARP, False, neg_inf)
        a2, b2, c2, d2, e2, f2, g2, h2 = load8(row, j + 8 * WARP, WARP, False, neg_inf)
        m, s = online8(m, s, zero, log2e, a, b, c, d, e, f, g, h)
        m, s = online8(m, s, zero, log2e, a2, b2, c2, d2, e2, f2, g2, h2)
        j += 16 * WARP
    if j < n:
        a, b, c, d, e, f, g, h = load8(row, j, WARP, True, neg_inf)
        a2, b2, c2, d2, e2, f2, g2, h2 = load8(row, j + 8 * WARP, WARP, True, neg_inf)
        m, s = online8(m, s, zero, log2e, a, b, c, d, e, f, g, h)
        m, s = online8(m, s, zero, log2e, a2, b2, c2, d2, e2, f2, g2, h2)
    return m, s


@cuda.jit(device=True, inline=True)
def warp_online(m, s):
    """Butterfly over the warp for (max, sum of exp(x - max)) pairs: every lane ends with the
    warp's pair (a + b == b + a, so partners agree bit for bit)."""
    offset = WARP // 2
    while offset > 0:
        m_o = cuda.shfl_xor_sync(FULL_MASK, m, offset)
        s_o = cuda.shfl_xor_sync(FULL_MASK, s, offset)
        top = m_o if m_o > m else m
        s = rescaled(s, m, top) + rescaled(s_o, m_o, top)
        m = top
        offset //= 2
    return m, s


@cuda.jit(device=True, inline=True)
def write_row(logits, weight, weight_sum, ignore_index, on_target, off_target, smoothing,
              i, t, m, log_s, gap, row_max_out, row_log_sum, row_loss_out, row_weight):
    """Store row i's max, log of its sum of exps, loss and target weight (zeros for an
    ignored row), from its label t and the row's reductions."""
    zero = logits.dtype.type(0)
    row_max_out[i] = m
    row_log_sum[i] = log_s
    if t == ignore_index:
        row_loss_out[i] = zero
        row_weight[i] = zero
    else:
        w_t = weight[t]
        row_loss_out[i] = row_loss(m, log_s, gap, logits[i, t], w_t, on_target, off_target,
                                   weight_sum, smoothing)
        row_weight[i] = w_t


@cuda.jit(device=True, inline=True)
def flag_bad_label(i, m, log_s, first_bad, row_max_out, row_log_sum, row_loss_out, row_weight):
    """Row i's label is out of range: keep its reductions, NaN for its loss and weight, and
    lower first_bad[0] to i, so the dispatcher can name the first bad label."""
    nan = row_loss_out.dtype.type(math.nan)
    row_max_out[i] = m
    row_log_sum[i] = log_s
    row_loss_out[i] = nan
    row_weight[i] = nan
    cuda.atomic.min(first_bad, 0, i)


@cuda.jit
def softmax_cross_entropy_forward_kernel(
    logits, target, weight, weight_sum, ignore_index, on_target, off_target,
    row_max_out, row_log_sum, row_loss_out, row_weight, first_bad,
):  # fmt: skip
    """Per row, in one warp: max, log-sum-exp and the (smoothed, weighted) loss. A label that
    is neither ignore_index nor in [0, C) is never used as an index: the row is flagged in
    first_bad (which must start at n_rows) instead."""
    n_rows, n_cls = logits.shape
    zero = logits.dtype.type(0)
    neg_inf = logits.dtype.type(-math.inf)
    log2e = logits.dtype.type(LOG2E)
    smoothing = off_target != zero
    lane = cuda.threadIdx.x % WARP
    warps = cuda.blockDim.x // WARP
    # Rows go out a block-sized group at a time, so every warp of a block makes the same number
    # of trips and meets the same shuffles (a warp without a row runs them idle); the CUDA
    # simulator's shuffles need that.
    for first in range(cuda.blockIdx.x * warps, n_rows, cuda.gridDim.x * warps):
        i = first + cuda.threadIdx.x // WARP
        active = i < n_rows
        t = ignore_index
        if active:
            t = target[i]  # loaded now, used after the row: nothing waits on it
        m = neg_inf
        s = zero
        gap = zero
        if smoothing:
            if active:
                m = row_max(logits, i, lane, WARP, m)
            m = warp_max(m)
            if active:
                s, gap = row_exp_sums(logits, weight, smoothing, i, lane, WARP, m)
            s = warp_sum(s)
            gap = warp_sum(gap)
        else:
            if active:
                m, s = row_online(logits[i], lane, m, s, zero, neg_inf, log2e)
            m, s = warp_online(m, s)
        if active and lane == 0:
            # A row of -inf only gives NaN, as the reference does (and the two-pass sum).
            log_s = math.log(s) if m != neg_inf else logits.dtype.type(math.nan)
            if t != ignore_index and (t < 0 or t >= n_cls):
                flag_bad_label(i, m, log_s, first_bad,
                               row_max_out, row_log_sum, row_loss_out, row_weight)
            else:
                write_row(logits, weight, weight_sum, ignore_index, on_target, off_target,
                          smoothing, i, t, m, log_s, gap,
                          row_max_out, row_log_sum, row_loss_out, row_weight)


@cuda.jit(device=True, inline=True)
def dlogit(x, j, t, hi, lo, coef, on_wt, off_target, weight, smoothing, sc):
    """One logit's gradient: (softmax * coef - target distribution) * scale."""
    g = math.exp((x - hi) - lo) * coef
    if smoothing:
        g -= off_target * weight[j]
    if j == t:
        g -= on_wt
    return g * sc


def _jit_capped(max_registers):
    """cuda.jit capped at `max_registers` a thread (the simulator takes no such option)."""
    if numba.config.ENABLE_CUDASIM:
        return cuda.jit
    return cuda.jit(max_registers=max_registers)


# Capped at 40 registers (56 uncapped): six 256-thread blocks per SM instead of four, so more
# loads in flight; 84% of the copy bandwidth on the H200 against 78% uncapped. The store loop's
# if-chain is the form that was measured: with eight explicit store calls instead, the capped
# kernel spilled 48 bytes a thread rather than 16 and ran at 64%.
@_jit_capped(40)
def softmax_cross_entropy_backward_kernel(
    logits, target, weight, weight_sum, ignore_index, on_target, off_target,
    lse_hi, lse_lo, scale, gx,
):  # fmt: skip
    """A warp per row: each lane loads eight logits before it writes any gradient, and the
    row's label, weight, lse and scale are loaded without a branch ahead of the logits (the
    label and its weight are dependent loads; their latency overlaps the logits')."""
    n_rows, n_cls = logits.shape
    zero = logits.dtype.type(0)
    per_row = scale.shape[0] > 1
    smoothing = off_target != zero
    lane = cuda.threadIdx.x % WARP
    warps = cuda.blockDim.x // WARP
    for i in range(cuda.blockIdx.x * warps + cuda.threadIdx.x // WARP, n_rows,
                   cuda.gridDim.x * warps):
        t = target[i]
        hi = lse_hi[i]
        lo = lse_lo[i]
        sc = scale[i] if per_row else scale[0]
        ignored = t == ignore_index
        # A label out of range (only with check_labels=False and a broken promise) is never an
        # index: it makes the row's gradient NaN.
        on_wt = zero
        if not ignored:
            on_wt = on_target * weight[t] if 0 <= t < n_cls else logits.dtype.type(math.nan)
        coef = on_wt + off_target * weight_sum[0]
        j = lane
        while j < n_cls:
            x0 = logits[i, j]
            x1 = logits[i, j + WARP] if j + WARP < n_cls else zero
            x2 = logits[i, j + 2 * WARP] if j + 2 * WARP < n_cls else zero
            x3 = logits[i, j + 3 * WARP] if j + 3 * WARP < n_cls else zero
            x4 = logits[i, j + 4 * WARP] if j + 4 * WARP < n_cls else zero
            x5 = logits[i, j + 5 * WARP] if j + 5 * WARP < n_cls else zero
            x6 = logits[i, j + 6 * WARP] if j + 6 * WARP < n_cls else zero
            x7 = logits[i, j + 7 * WARP] if j + 7 * WARP < n_cls else zero
            for u in range(8):
                k = j + u * WARP
                if k < n_cls:
                    x = x0
                    if u == 1:
                        x = x1
                    elif u == 2:
                        x = x2
                    elif u == 3:
                        x = x3
                    elif u == 4:
                        x = x4
                    elif u == 5:
                        x = x5
                    elif u == 6:
                        x = x6
                    elif u == 7:
                        x = x7
                    g = zero
                    if not ignored:
                        g = dlogit(x, k, t, hi, lo, coef, on_wt, off_target, weight, smoothing,
                                   sc)
                    gx[i, k] = g
            j += 8 * WARP


def softmax_cross_entropy_forward(
    logits, target, weight, weight_sum, ignore_index, on_target, off_target,
    row_max, row_log_sum, row_loss, row_weight, first_bad, device,
) -> None:  # fmt: skip
    launch_warp_rows(
        softmax_cross_entropy_forward_kernel, logits.shape[0], device,
        logits, target, weight, weight_sum, ignore_index, on_target, off_target,
        row_max, row_log_sum, row_loss, row_weight, first_bad,
    )  # fmt: skip


def softmax_cross_entropy_backward(
    logits, target, weight, weight_sum, ignore_index, on_target, off_target,
    lse_hi, lse_lo, scale, gx, device,
) -> None:  # fmt: skip
    launch_warp_rows(
        softmax_cross_entropy_backward_kernel, logits.shape[0], device,
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
            (m2, labels, v, v, i, f, f, v, v, v, v, labels),
        ),
        (
            "softmax_cross_entropy_backward_kernel",
            softmax_cross_entropy_backward_kernel,
            (m2, labels, v, v, i, f, f, v, v, v, m2),
        ),
    ]
