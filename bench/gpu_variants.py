"""Candidate CUDA kernels, checked and timed against the shipped ones on a GPU in one run.

``python -m gpugrad.bench.gpu_variants [--out DIR] [--rounds N]``

GPU time comes in short loans, so a kernel idea waits here until a loan can measure it against
the kernel gpugrad ships, in the same process, paired rounds, on the "large" benchmark size.
A candidate that wins moves into kernels/ with its tests; one that loses stays here, measured.

The candidates now: the fused cross-entropy forward and backward with a warp per row instead of
a block. On the H200 the shipped forward kernel reached 17% of the copy bandwidth at N=262144,
C=1000: each row waits on two block barriers and on thread 0's label-dependent loads before
the block moves on, and register pressure leaves few blocks, so few rows, in flight. A warp per
row needs no barrier, keeps eight rows in flight per 256-thread block, and issues the label's
loads first so their latency overlaps the row's.

The kernels are checked against gpugrad's NumPy references (also under NUMBA_ENABLE_CUDASIM=1,
by the test suite, at small sizes). Timing refuses the simulator.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys

import numba
import numpy as np
from numba import cuda, uint64

from gpugrad import backend
from gpugrad.bench import common
from gpugrad.bench.kernels import SIZES, cross_entropy_kernel_args, cross_entropy_kernel_launches
from gpugrad.kernels import _launch
from gpugrad.kernels.loss_cuda import (
    FULL_MASK,
    UNROLL,
    WARP,
    dlogit,
    row_exp_sums,
    row_loss,
    row_max,
    warp_max,
    warp_sum,
)

ROWS_PER_BLOCK = 8  # warps per 256-thread block, one row each


def _jit(max_registers=None):
    """cuda.jit, capped at `max_registers` a thread (the simulator takes no such option)."""
    if not max_registers or numba.config.ENABLE_CUDASIM:
        return cuda.jit
    return cuda.jit(max_registers=max_registers)


@cuda.jit
def ce_forward_warp_rows(
    logits, target, weight, weight_sum, ignore_index, on_target, off_target,
    row_max_out, row_log_sum, row_loss_out, row_weight,
):  # fmt: skip
    """The fused forward (same outputs as kernels.loss_cuda's) with one warp per row."""
    n_rows = logits.shape[0]
    zero = logits.dtype.type(0)
    neg_inf = logits.dtype.type(-math.inf)
    smoothing = off_target != zero
    lane = cuda.threadIdx.x % WARP
    warps = cuda.blockDim.x // WARP
    # Rows go out a block-sized group at a time, so every warp of a block makes the same number
    # of trips and meets the same shuffles (a warp without a row runs them idle).
    for first in range(cuda.blockIdx.x * warps, n_rows, cuda.gridDim.x * warps):
        i = first + cuda.threadIdx.x // WARP
        active = i < n_rows
        t = ignore_index
        w_t = zero
        x_t = zero
        if active:
            # The label's loads go first: their latency overlaps the row's.
            t = target[i]
            if lane == 0 and t != ignore_index:
                w_t = weight[t]
                x_t = logits[i, t]
        m = neg_inf
        if active:
            m = row_max(logits, i, lane, WARP, m)
        m = warp_max(m)
        s = zero
        gap = zero
        if active:
            s, gap = row_exp_sums(logits, weight, smoothing, i, lane, WARP, m)
        s = warp_sum(s)
        gap = warp_sum(gap)
        if active and lane == 0:
            log_s = math.log(s)
            row_max_out[i] = m
            row_log_sum[i] = log_s
            if t == ignore_index:
                row_loss_out[i] = zero
                row_weight[i] = zero
            else:
                row_loss_out[i] = row_loss(m, log_s, gap, x_t, w_t, on_target, off_target,
                                           weight_sum, smoothing)
                row_weight[i] = w_t


@cuda.jit
def ce_backward_warp_rows(
    logits, target, weight, weight_sum, ignore_index, on_target, off_target,
    lse_hi, lse_lo, scale, gx,
):  # fmt: skip
    """The fused backward (same output as kernels.loss_cuda's) with one warp per row."""
    n_rows, n_cls = logits.shape
    zero = logits.dtype.type(0)
    per_row = scale.shape[0] > 1
    smoothing = off_target != zero
    lane = cuda.threadIdx.x % WARP
    warps = cuda.blockDim.x // WARP
    for i in range(cuda.blockIdx.x * warps + cuda.threadIdx.x // WARP, n_rows,
                   cuda.gridDim.x * warps):
        t = target[i]
        if t == ignore_index:
            for j in range(lane, n_cls, WARP):
                gx[i, j] = zero
            continue
        sc = scale[i] if per_row else scale[0]
        on_wt = on_target * weight[t]
        coef = on_wt + off_target * weight_sum[0]
        hi = lse_hi[i]
        lo = lse_lo[i]
        j = lane
        while j < n_cls:
            # Up to UNROLL logits loaded before any gradient is computed.
            a = logits[i, j]
            b = logits[i, j + WARP] if j + WARP < n_cls else zero
            c = logits[i, j + 2 * WARP] if j + 2 * WARP < n_cls else zero
            d = logits[i, j + 3 * WARP] if j + 3 * WARP < n_cls else zero
            for u in range(UNROLL):
                k = j + u * WARP
                if k < n_cls:
                    x = a if u == 0 else (b if u == 1 else (c if u == 2 else d))
                    gx[i, k] = dlogit(x, k, t, hi, lo, coef, on_wt, off_target, weight,
                                      smoothing, sc)
            j += UNROLL * WARP


@cuda.jit(device=True, inline=True)
def rescaled(s, m_old, m_new):
    """A sum of exp(x - m_old) as a sum of exp(x - m_new), m_new >= m_old. Equal maxes (both
    -inf too) leave it as it is: exp(-inf - -inf) would be NaN."""
    return s if m_old == m_new else s * math.exp(m_old - m_new)


@cuda.jit(device=True, inline=True)
def row_online(logits, i, j, stride, m, s):
    """One pass over logits[i, j::stride]: the running max `m` and the sum `s` of exp(x - m),
    rescaled when the max rises (online softmax: the row is read once, not twice). Eight loads
    in flight a trip. A chunk whose max is -inf adds exp(x - 0): 0 for -inf, NaN for NaN."""
    n_cls = logits.shape[1]
    zero = logits.dtype.type(0)
    neg_inf = logits.dtype.type(-math.inf)
    while j + 7 * stride < n_cls:
        a = logits[i, j]
        b = logits[i, j + stride]
        c = logits[i, j + 2 * stride]
        d = logits[i, j + 3 * stride]
        e = logits[i, j + 4 * stride]
        f = logits[i, j + 5 * stride]
        g = logits[i, j + 6 * stride]
        h = logits[i, j + 7 * stride]
        top = m
        top = a if a > top else top
        top = b if b > top else top
        top = c if c > top else top
        top = d if d > top else top
        top = e if e > top else top
        top = f if f > top else top
        top = g if g > top else top
        top = h if h > top else top
        shift = top if top != neg_inf else zero
        s = rescaled(s, m, top) + (
            ((math.exp(a - shift) + math.exp(b - shift)) + (math.exp(c - shift) + math.exp(d - shift)))
            + ((math.exp(e - shift) + math.exp(f - shift)) + (math.exp(g - shift) + math.exp(h - shift))))
        m = top
        j += 8 * stride
    while j < n_cls:
        v = logits[i, j]
        top = v if v > m else m
        shift = top if top != neg_inf else zero
        s = rescaled(s, m, top) + math.exp(v - shift)
        m = top
        j += stride
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


@cuda.jit
def ce_forward_warp_online(
    logits, target, weight, weight_sum, ignore_index, on_target, off_target,
    row_max_out, row_log_sum, row_loss_out, row_weight,
):  # fmt: skip
    """A warp per row reading the row once (online max and sum of exps), eight loads in flight;
    with label smoothing the gap needs the final max, so it reads the row twice as the shipped
    kernel does."""
    n_rows = logits.shape[0]
    zero = logits.dtype.type(0)
    neg_inf = logits.dtype.type(-math.inf)
    smoothing = off_target != zero
    lane = cuda.threadIdx.x % WARP
    warps = cuda.blockDim.x // WARP
    for first in range(cuda.blockIdx.x * warps, n_rows, cuda.gridDim.x * warps):
        i = first + cuda.threadIdx.x // WARP
        active = i < n_rows
        t = ignore_index
        w_t = zero
        x_t = zero
        if active:
            t = target[i]
            if lane == 0 and t != ignore_index:
                w_t = weight[t]
                x_t = logits[i, t]
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
                m, s = row_online(logits, i, lane, WARP, m, s)
            m, s = warp_online(m, s)
        if active and lane == 0:
            # A row of -inf only: NaN, as the two-pass kernel and the reference give.
            log_s = math.log(s) if m != neg_inf else logits.dtype.type(math.nan)
            row_max_out[i] = m
            row_log_sum[i] = log_s
            if t == ignore_index:
                row_loss_out[i] = zero
                row_weight[i] = zero
            else:
                row_loss_out[i] = row_loss(m, log_s, gap, x_t, w_t, on_target, off_target,
                                           weight_sum, smoothing)
                row_weight[i] = w_t


@cuda.jit
def ce_backward_warp_loads_first(
    logits, target, weight, weight_sum, ignore_index, on_target, off_target,
    lse_hi, lse_lo, scale, gx,
):  # fmt: skip
    """A warp per row; each lane loads its eight logits before the row's label decides
    anything, so the logits' latency overlaps the label's (the label, its weight and the row's
    lse are dependent loads)."""
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
        on_wt = zero if ignored else on_target * weight[t]
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


@cuda.jit(device=True, inline=True)
def divmod_by(i, d, inv_d):
    """(i // d, i % d) for 0 <= i < 2**52 and d > 0, given inv_d = 1.0 / d: a float64 multiply
    and one correction step instead of a 64-bit integer division (emulated in software)."""
    q = int(i * inv_d)
    r = i - q * d
    if r < 0:
        q -= 1
        r += d
    elif r >= d:
        q += 1
        r -= d
    return q, r


@cuda.jit
def im2col_float_divisions(x, n_img, n_ch, h, w, kh, kw, sy, sx, ph, pw, dy, dx, pad_value,
                           out_h, out_w, inv_out_h, inv_out_w, channel_major, cols):
    """The shipped im2col kernel with its integer divisions done by divmod_by."""
    plane = out_h * out_w
    tap_stride = n_img * plane if channel_major else plane
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, n_img * n_ch * plane, step):
        rest, ox = divmod_by(i, out_w, inv_out_w)
        image, oy = divmod_by(rest, out_h, inv_out_h)
        if channel_major:
            c = image % n_ch
            n = image // n_ch
            out = c * kh * kw * tap_stride + n * plane + oy * out_w + ox
        else:
            out = image * kh * kw * plane + oy * out_w + ox
        src = image * h * w
        y0 = oy * sy - ph
        x0 = ox * sx - pw
        for ky in range(kh):
            iy = y0 + ky * dy
            row_inside = 0 <= iy < h
            row = src + iy * w
            kx = 0
            while kx + 2 < kw:
                ix = x0 + kx * dx
                a = pad_value
                b = pad_value
                c3 = pad_value
                if row_inside:
                    if 0 <= ix < w:
                        a = x[row + ix]
                    if 0 <= ix + dx < w:
                        b = x[row + ix + dx]
                    if 0 <= ix + 2 * dx < w:
                        c3 = x[row + ix + 2 * dx]
                cols[out] = a
                cols[out + tap_stride] = b
                cols[out + 2 * tap_stride] = c3
                out += 3 * tap_stride
                kx += 3
            while kx < kw:
                ix = x0 + kx * dx
                v = pad_value
                if row_inside and 0 <= ix < w:
                    v = x[row + ix]
                cols[out] = v
                out += tap_stride
                kx += 1


def im2col_float_divisions_launch(x, kh, kw, sy, sx, ph, pw, dy, dx, pad_value, channel_major,
                                  cols, device):
    """Same arguments as kernels.conv_cuda.im2col."""
    n_img, n_ch, h, w = x.shape
    out_h, out_w = cols.shape[4], cols.shape[5]
    _launch.launch_elementwise(
        im2col_float_divisions, n_img * n_ch * out_h * out_w, device,
        x.reshape(-1), n_img, n_ch, h, w, kh, kw, sy, sx, ph, pw, dy, dx, pad_value, out_h,
        out_w, 1.0 / out_h, 1.0 / out_w, channel_major, cols.reshape(-1),
    )  # fmt: skip


@cuda.jit(device=True, inline=True)
def load8(logits, i, j, stride, fill):
    """logits[i, j + k * stride] for k < 8, `fill` past the row's end: eight loads issued
    together even on a row's last, partial trip (a tail loop would load one at a time)."""
    n_cls = logits.shape[1]
    a = logits[i, j] if j < n_cls else fill
    b = logits[i, j + stride] if j + stride < n_cls else fill
    c = logits[i, j + 2 * stride] if j + 2 * stride < n_cls else fill
    d = logits[i, j + 3 * stride] if j + 3 * stride < n_cls else fill
    e = logits[i, j + 4 * stride] if j + 4 * stride < n_cls else fill
    f = logits[i, j + 5 * stride] if j + 5 * stride < n_cls else fill
    g = logits[i, j + 6 * stride] if j + 6 * stride < n_cls else fill
    h = logits[i, j + 7 * stride] if j + 7 * stride < n_cls else fill
    return a, b, c, d, e, f, g, h


@cuda.jit(device=True, inline=True)
def online8(m, s, zero, a, b, c, d, e, f, g, h):
    """(max, sum of exp(x - max)) after eight more logits (-inf ones add nothing)."""
    top = m
    top = a if a > top else top
    top = b if b > top else top
    top = c if c > top else top
    top = d if d > top else top
    top = e if e > top else top
    top = f if f > top else top
    top = g if g > top else top
    top = h if h > top else top
    shift = top if top != -math.inf else zero
    s = rescaled(s, m, top) + (
        ((math.exp(a - shift) + math.exp(b - shift)) + (math.exp(c - shift) + math.exp(d - shift)))
        + ((math.exp(e - shift) + math.exp(f - shift)) + (math.exp(g - shift) + math.exp(h - shift))))
    return top, s


def make_forward_online_guarded(width, labels_last=False, max_registers=None):
    """The one-pass warp-per-row forward, `width` (8 or 16) guarded loads in flight a trip.
    `labels_last`: the label is loaded first but only used after the row (its weight and logit
    then come from cache), so no branch on it holds back the row's loads. `max_registers`
    caps registers per thread (more warps per SM, so more loads in flight)."""
    jit = _jit(max_registers)

    @jit
    def kernel(logits, target, weight, weight_sum, ignore_index, on_target, off_target,
               row_max_out, row_log_sum, row_loss_out, row_weight):
        n_rows, n_cls = logits.shape
        zero = logits.dtype.type(0)
        neg_inf = logits.dtype.type(-math.inf)
        smoothing = off_target != zero
        lane = cuda.threadIdx.x % WARP
        warps = cuda.blockDim.x // WARP
        for first in range(cuda.blockIdx.x * warps, n_rows, cuda.gridDim.x * warps):
            i = first + cuda.threadIdx.x // WARP
            active = i < n_rows
            t = ignore_index
            w_t = zero
            x_t = zero
            if active:
                t = target[i]
                if not labels_last and lane == 0 and t != ignore_index:
                    w_t = weight[t]
                    x_t = logits[i, t]
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
                    j = lane
                    while j < n_cls:
                        a, b, c, d, e, f, g, h = load8(logits, i, j, WARP, neg_inf)
                        if width == 16:
                            a2, b2, c2, d2, e2, f2, g2, h2 = load8(logits, i, j + 8 * WARP,
                                                                   WARP, neg_inf)
                        m, s = online8(m, s, zero, a, b, c, d, e, f, g, h)
                        if width == 16:
                            m, s = online8(m, s, zero, a2, b2, c2, d2, e2, f2, g2, h2)
                        j += width * WARP
                m, s = warp_online(m, s)
            if active and lane == 0:
                if labels_last and t != ignore_index:
                    w_t = weight[t]
                    x_t = logits[i, t]
                log_s = math.log(s) if m != neg_inf else logits.dtype.type(math.nan)
                row_max_out[i] = m
                row_log_sum[i] = log_s
                if t == ignore_index:
                    row_loss_out[i] = zero
                    row_weight[i] = zero
                else:
                    row_loss_out[i] = row_loss(m, log_s, gap, x_t, w_t, on_target, off_target,
                                               weight_sum, smoothing)
                    row_weight[i] = w_t

    kernel.py_func.__name__ = (f"ce_forward_online{width}" + ("_labels_last" if labels_last else "")
                               + (f"_regs{max_registers}" if max_registers else ""))
    return kernel


ce_forward_online_guarded8 = make_forward_online_guarded(8)
ce_forward_online_guarded16 = make_forward_online_guarded(16)
ce_forward_online16_labels_last = make_forward_online_guarded(16, labels_last=True)
ce_forward_online16_labels_last_regs32 = make_forward_online_guarded(16, True, 32)
ce_forward_online8_labels_last_regs32 = make_forward_online_guarded(8, True, 32)


@cuda.jit
def im2col_channel_groups(x, n_img, n_ch, h, w, kh, kw, sy, sx, ph, pw, dy, dx, pad_value,
                          out_h, out_w, group, n_groups, inv_out_h, inv_out_w, inv_groups,
                          channel_major, cols):
    """A thread per (image, group of `group` channels, output pixel): the index math, bounds
    checks and offsets of a kernel row's taps are paid once for the group's channels, which
    then cost three guarded loads, three stores and two adds per three taps."""
    plane = out_h * out_w
    tap_stride = n_img * plane if channel_major else plane
    channel_step = kh * kw * tap_stride
    image_size = h * w
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, n_img * n_groups * plane, step):
        rest, ox = divmod_by(i, out_w, inv_out_w)
        rest, oy = divmod_by(rest, out_h, inv_out_h)
        n, g = divmod_by(rest, n_groups, inv_groups)
        c0 = g * group
        c_end = min(c0 + group, n_ch)
        pixel = oy * out_w + ox
        if channel_major:
            out0 = c0 * channel_step + n * plane + pixel
        else:
            out0 = (n * n_ch + c0) * channel_step + pixel
        src0 = (n * n_ch + c0) * image_size
        y0 = oy * sy - ph
        x0 = ox * sx - pw
        for ky in range(kh):
            iy = y0 + ky * dy
            row_inside = 0 <= iy < h
            kx = 0
            while kx < kw:
                ix = x0 + kx * dx
                has_b = kx + 1 < kw
                has_c = kx + 2 < kw
                in_a = row_inside and 0 <= ix < w
                in_b = row_inside and has_b and 0 <= ix + dx < w
                in_c = row_inside and has_c and 0 <= ix + 2 * dx < w
                src = src0 + iy * w + ix
                out = out0 + (ky * kw + kx) * tap_stride
                for _ in range(c0, c_end):
                    a = x[src] if in_a else pad_value
                    b = x[src + dx] if in_b else pad_value
                    c3 = x[src + 2 * dx] if in_c else pad_value
                    cols[out] = a
                    if has_b:
                        cols[out + tap_stride] = b
                    if has_c:
                        cols[out + 2 * tap_stride] = c3
                    src += image_size
                    out += channel_step
                kx += 3


def im2col_channel_groups_launch(x, kh, kw, sy, sx, ph, pw, dy, dx, pad_value, channel_major,
                                 cols, device, group=8):
    """Same arguments as kernels.conv_cuda.im2col, and the channels a thread takes."""
    n_img, n_ch, h, w = x.shape
    out_h, out_w = cols.shape[4], cols.shape[5]
    n_groups = -(-n_ch // group)
    _launch.launch_elementwise(
        im2col_channel_groups, n_img * n_groups * out_h * out_w, device,
        x.reshape(-1), n_img, n_ch, h, w, kh, kw, sy, sx, ph, pw, dy, dx, pad_value, out_h,
        out_w, group, n_groups, 1.0 / out_h, 1.0 / out_w, 1.0 / n_groups, channel_major,
        cols.reshape(-1),
    )  # fmt: skip


LOG2E = 1.4426950408889634


@cuda.jit(device=True, inline=True)
def online8_exp2(m, s, zero, log2e, a, b, c, d, e, f, g, h):
    """online8 with exp(x - top) as exp2(x * log2e - top * log2e): one FMA and the hardware
    exp2 per logit (float32) instead of libdevice's expf, about ten instructions."""
    top = m
    top = a if a > top else top
    top = b if b > top else top
    top = c if c > top else top
    top = d if d > top else top
    top = e if e > top else top
    top = f if f > top else top
    top = g if g > top else top
    top = h if h > top else top
    shift = (top if top != -math.inf else zero) * log2e
    if m != top:
        s *= math.exp2(m * log2e - top * log2e)
    s += ((math.exp2(a * log2e - shift) + math.exp2(b * log2e - shift))
          + (math.exp2(c * log2e - shift) + math.exp2(d * log2e - shift))) + (
          (math.exp2(e * log2e - shift) + math.exp2(f * log2e - shift))
          + (math.exp2(g * log2e - shift) + math.exp2(h * log2e - shift)))
    return top, s


@cuda.jit(device=True, inline=True)
def load8_row(row, j, stride, n_cls, guarded, fill):
    """row[j + k * stride], k < 8, unsigned indices (no wraparound code); `guarded` checks
    each against n_cls (the row's last trip only)."""
    if guarded:
        a = row[uint64(j)] if j < n_cls else fill
        b = row[uint64(j + stride)] if j + stride < n_cls else fill
        c = row[uint64(j + 2 * stride)] if j + 2 * stride < n_cls else fill
        d = row[uint64(j + 3 * stride)] if j + 3 * stride < n_cls else fill
        e = row[uint64(j + 4 * stride)] if j + 4 * stride < n_cls else fill
        f = row[uint64(j + 5 * stride)] if j + 5 * stride < n_cls else fill
        g = row[uint64(j + 6 * stride)] if j + 6 * stride < n_cls else fill
        h = row[uint64(j + 7 * stride)] if j + 7 * stride < n_cls else fill
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


@cuda.jit
def ce_forward_fast(logits, target, weight, weight_sum, ignore_index, on_target, off_target,
                    row_max_out, row_log_sum, row_loss_out, row_weight):
    """online 16, labels last, with exp2, a row view, unsigned indices, and guards on the
    row's last trip only."""
    n_rows, n_cls = logits.shape
    zero = logits.dtype.type(0)
    neg_inf = logits.dtype.type(-math.inf)
    log2e = logits.dtype.type(LOG2E)
    smoothing = off_target != zero
    lane = cuda.threadIdx.x % WARP
    warps = cuda.blockDim.x // WARP
    for first in range(cuda.blockIdx.x * warps, n_rows, cuda.gridDim.x * warps):
        i = first + cuda.threadIdx.x // WARP
        active = i < n_rows
        t = ignore_index
        if active:
            t = target[i]
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
                row = logits[i]
                j = lane
                while j + 15 * WARP < n_cls:
                    a, b, c, d, e, f, g, h = load8_row(row, j, WARP, n_cls, False, neg_inf)
                    a2, b2, c2, d2, e2, f2, g2, h2 = load8_row(row, j + 8 * WARP, WARP, n_cls,
                                                               False, neg_inf)
                    m, s = online8_exp2(m, s, zero, log2e, a, b, c, d, e, f, g, h)
                    m, s = online8_exp2(m, s, zero, log2e, a2, b2, c2, d2, e2, f2, g2, h2)
                    j += 16 * WARP
                if j < n_cls:
                    a, b, c, d, e, f, g, h = load8_row(row, j, WARP, n_cls, True, neg_inf)
                    a2, b2, c2, d2, e2, f2, g2, h2 = load8_row(row, j + 8 * WARP, WARP, n_cls,
                                                               True, neg_inf)
                    m, s = online8_exp2(m, s, zero, log2e, a, b, c, d, e, f, g, h)
                    m, s = online8_exp2(m, s, zero, log2e, a2, b2, c2, d2, e2, f2, g2, h2)
            m, s = warp_online(m, s)
        if active and lane == 0:
            w_t = zero
            x_t = zero
            if t != ignore_index:
                w_t = weight[t]
                x_t = logits[i, t]
            log_s = math.log(s) if m != neg_inf else logits.dtype.type(math.nan)
            row_max_out[i] = m
            row_log_sum[i] = log_s
            if t == ignore_index:
                row_loss_out[i] = zero
                row_weight[i] = zero
            else:
                row_loss_out[i] = row_loss(m, log_s, gap, x_t, w_t, on_target, off_target,
                                           weight_sum, smoothing)
                row_weight[i] = w_t


# The same kernel, capped at 40 registers a thread: 6 blocks of 256 per SM instead of 4.
ce_backward_loads_first_regs40 = _jit(40)(ce_backward_warp_loads_first.py_func)


def make_im2col_fixed(kh, kw, dtype, max_registers=None):
    """im2col compiled for one kernel size: the tap loops unroll, every tap is loaded (into
    registers) before any is stored, column bounds are checked once per pixel, divisions are
    divmod_by, and indices are unsigned (Numba adds no negative-index wraparound to them)."""
    taps = kh * kw
    jit = _jit(max_registers)

    @jit
    def kernel(x, n_img, n_ch, h, w, sy, sx, ph, pw, dy, dx, pad_value, out_h, out_w,
               inv_out_h, inv_out_w, inv_n_ch, channel_major, cols):
        plane = out_h * out_w
        tap_stride = n_img * plane if channel_major else plane
        for i in range(cuda.grid(1), n_img * n_ch * plane, cuda.gridsize(1)):
            rest, ox = divmod_by(i, out_w, inv_out_w)
            image, oy = divmod_by(rest, out_h, inv_out_h)
            if channel_major:
                n, c = divmod_by(image, n_ch, inv_n_ch)
                out = c * taps * tap_stride + n * plane + oy * out_w + ox
            else:
                out = image * taps * plane + oy * out_w + ox
            src = image * h * w
            y0 = oy * sy - ph
            x0 = ox * sx - pw
            vals = cuda.local.array(taps, dtype)
            for ky in range(kh):
                iy = y0 + ky * dy
                row_ok = 0 <= iy < h
                for kx in range(kw):
                    ix = x0 + kx * dx
                    v = pad_value
                    if row_ok and 0 <= ix < w:
                        v = x[uint64(src + iy * w + ix)]
                    vals[ky * kw + kx] = v
            for k in range(taps):
                cols[uint64(out + k * tap_stride)] = vals[k]

    kernel.py_func.__name__ = f"im2col_{kh}x{kw}" + (f"_regs{max_registers}" if max_registers
                                                      else "")
    return kernel


_fixed_kernels: dict = {}


def im2col_fixed_launch(x, kh, kw, sy, sx, ph, pw, dy, dx, pad_value, channel_major, cols,
                        device, max_registers=None):
    """Same arguments as kernels.conv_cuda.im2col; compiles a kernel per (kh, kw, dtype)."""
    from numba.np import numpy_support

    key = (kh, kw, x.dtype, max_registers)
    if key not in _fixed_kernels:
        _fixed_kernels[key] = make_im2col_fixed(kh, kw, numpy_support.from_dtype(x.dtype),
                                                max_registers)
    n_img, n_ch, h, w = x.shape
    out_h, out_w = cols.shape[4], cols.shape[5]
    _launch.launch_elementwise(
        _fixed_kernels[key], n_img * n_ch * out_h * out_w, device,
        x.reshape(-1), n_img, n_ch, h, w, sy, sx, ph, pw, dy, dx, pad_value, out_h, out_w,
        1.0 / out_h, 1.0 / out_w, 1.0 / n_ch, channel_major, cols.reshape(-1),
    )  # fmt: skip


FORWARD_CANDIDATES = (ce_forward_warp_rows, ce_forward_warp_online, ce_forward_online_guarded8,
                      ce_forward_online_guarded16, ce_forward_online16_labels_last,
                      ce_forward_online16_labels_last_regs32,
                      ce_forward_online8_labels_last_regs32, ce_forward_fast)
BACKWARD_CANDIDATES = (ce_backward_warp_rows, ce_backward_warp_loads_first,
                       ce_backward_loads_first_regs40)


def launch_rows(kernel, n_rows, device, *args):
    """A 256-thread block per ROWS_PER_BLOCK rows, through gpugrad's own launch path."""

    threads = WARP * ROWS_PER_BLOCK
    simulated = backend.uses_simulated_cuda()
    max_blocks = _launch.SIMULATOR_MAX_BLOCKS if simulated else _launch.MAX_BLOCKS
    blocks = min(-(-n_rows // ROWS_PER_BLOCK), max_blocks)
    _launch._launch(kernel, blocks, threads, device, args)


def check(xp, n, c, rng, weighted=False, label_smoothing=0.0, dtype=np.float32) -> None:
    """Both candidates against gpugrad's references on one random problem (raises if off)."""
    from gpugrad import kernels as K

    logits_h = (rng.standard_normal((n, c)) * 4).astype(dtype)
    target_h = rng.integers(0, c, n)
    target_h[::5] = -100  # ignored rows, never all of them (n > 1)
    weight_h = rng.uniform(0.5, 2.0, c).astype(dtype) if weighted else None
    logits, target = xp.asarray(logits_h), xp.asarray(target_h)
    weight = None if weight_h is None else xp.asarray(weight_h)
    _, lse, tw = K.softmax_cross_entropy_forward(
        logits, target, weight, label_smoothing=label_smoothing, device="cuda")
    args, extras = cross_entropy_kernel_args(xp, logits, target, lse, tw, weight,
                                             label_smoothing=label_smoothing)
    ref_loss, ref_lse, ref_tw = K.softmax_cross_entropy_forward_reference(
        logits_h, target_h, weight_h, -100, label_smoothing, "none")
    tol = dict(rtol=2e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for kernel in FORWARD_CANDIDATES:
        outs = [xp.full(n, np.nan, dtype) for _ in range(4)]
        launch_rows(kernel, n, "cuda", *args, *outs)
        got_max, got_log_sum, got_loss, got_weight = (backend.to_numpy(o) for o in outs)
        np.testing.assert_allclose(got_max.astype(np.float64) + got_log_sum, ref_lse, **tol)
        np.testing.assert_allclose(got_loss, ref_loss, **tol)
        np.testing.assert_allclose(got_weight.sum(), ref_tw, **tol)
    ref_g = K.softmax_cross_entropy_backward_reference(
        logits_h, target_h, ref_lse, np.asarray(1.0, dtype), weight_h, -100, label_smoothing,
        "mean", np.asarray(ref_tw, dtype))
    for kernel in BACKWARD_CANDIDATES:
        gx = xp.full((n, c), np.nan, dtype)
        launch_rows(kernel, n, "cuda", *args, *extras, gx)
        np.testing.assert_allclose(backend.to_numpy(gx), ref_g, **tol)


def check_im2col(xp, rng, n, c, h, w, kh, kw, stride, pad, dil, channel_major) -> None:
    """The float-division im2col against gpugrad's reference (raises if off)."""
    from gpugrad.kernels import conv

    x_h = rng.standard_normal((n, c, h, w)).astype(np.float32)
    layout = "channel" if channel_major else "batch"
    ref = conv.im2col_reference(x_h, (kh, kw), (stride, stride), (pad, pad), (dil, dil),
                                layout=layout)
    launches = [im2col_float_divisions_launch, im2col_fixed_launch] + [
        functools.partial(im2col_channel_groups_launch, group=g) for g in (1, 2, 4, 8)]
    for launch in launches:
        cols = xp.full(ref.shape, np.nan, np.float32)
        launch(xp.asarray(x_h), kh, kw, stride, stride, pad, pad, dil, dil, np.float32(0),
               channel_major, cols, "cuda")
        np.testing.assert_array_equal(backend.to_numpy(cols), ref)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpugrad.bench.gpu_variants",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--out", default=None, help="results folder (default bench/results)")
    args = parser.parse_args(argv)

    from gpugrad import kernels as K

    if not backend.cuda_is_available() or backend.uses_simulated_cuda():
        print("gpu_variants: needs a real CUDA GPU", file=sys.stderr)
        return 2
    cp = backend.cupy_module()
    rng = np.random.default_rng(0)
    for n, c, weighted, eps in [(257, 1000, False, 0.0), (300, 10, True, 0.1),
                                (33, 5000, True, 0.0), (4096, 1000, False, 0.2)]:
        check(cp, n, c, rng, weighted, eps)
    for geometry in [(2, 3, 9, 11, 3, 3, 1, 1, 1, False), (2, 3, 9, 11, 3, 3, 2, 1, 2, True),
                     (3, 2, 13, 7, 5, 2, 1, 2, 1, False)]:
        check_im2col(cp, rng, *geometry)
    print("candidates match the references")

    n, c = SIZES["cross_entropy"]["large"]
    logits = cp.asarray((rng.standard_normal((n, c)) * 3).astype(np.float32))
    target = cp.asarray(rng.integers(0, c, n))
    _, lse, tw = K.softmax_cross_entropy_forward(logits, target, device="cuda")
    kargs, extras = cross_entropy_kernel_args(cp, logits, target, lse, tw)
    shipped_fwd, shipped_bwd = cross_entropy_kernel_launches(cp, "cuda", kargs, extras)
    outs = [cp.empty(n, np.float32) for _ in range(4)]
    gx = cp.empty((n, c), np.float32)
    fns = {
        "forward, shipped (block per row)": shipped_fwd,
        "forward, warp per row": lambda: launch_rows(ce_forward_warp_rows, n, "cuda",
                                                     *kargs, *outs),
        "backward, shipped (block per row)": shipped_bwd,
        "backward, warp per row": lambda: launch_rows(ce_backward_warp_rows, n, "cuda",
                                                      *kargs, *extras, gx),
        "forward, warp per row, online, 8 loads": lambda: launch_rows(
            ce_forward_warp_online, n, "cuda", *kargs, *outs),
        "backward, warp per row, loads first, 8 loads": lambda: launch_rows(
            ce_backward_warp_loads_first, n, "cuda", *kargs, *extras, gx),
        "forward, warp per row, online, 8 guarded loads": lambda: launch_rows(
            ce_forward_online_guarded8, n, "cuda", *kargs, *outs),
        "forward, warp per row, online, 16 guarded loads": lambda: launch_rows(
            ce_forward_online_guarded16, n, "cuda", *kargs, *outs),
        "forward, online 16, labels last": lambda: launch_rows(
            ce_forward_online16_labels_last, n, "cuda", *kargs, *outs),
        "forward, online 16, labels last, 32 registers": lambda: launch_rows(
            ce_forward_online16_labels_last_regs32, n, "cuda", *kargs, *outs),
        "forward, online 8, labels last, 32 registers": lambda: launch_rows(
            ce_forward_online8_labels_last_regs32, n, "cuda", *kargs, *outs),
        "forward, online 16, labels last, exp2, unsigned row view": lambda: launch_rows(
            ce_forward_fast, n, "cuda", *kargs, *outs),
        "backward, loads first, 40 registers": lambda: launch_rows(
            ce_backward_loads_first_regs40, n, "cuda", *kargs, *extras, gx),
    }
    copy = cp.empty_like(logits)
    fns["copy (the bar)"] = lambda: cp.copyto(copy, logits)
    nbytes = {"forward": n * c * 4 + 2 * n * 8, "backward": 2 * n * c * 4 + 2 * n * 8,
              "copy": 2 * n * c * 4}
    rows = _time(fns, nbytes, "copy (the bar)", args.rounds, f"N={n} C={c}")
    rows += _time_im2col(cp, rng, SIZES["conv"]["large"], args.rounds)
    registers = kernel_registers()
    for name, info in registers.items():
        print(f"{name}: {info}")
    report = {"benchmark": "gpu variants", "rounds": args.rounds,
              "machine": common.machine_info(gpu=common.gpu_info()), "results": rows,
              "kernel_registers": registers}
    path = common.write_json(common.results_path("gpu-variants", "cuda", args.out), report)
    print(common.format_table(["variant", "shape", "median ms", "GB/s", "% of bar"],
                              [[r["variant"], r["shape"], r["median_ms"], r["gbps"],
                                r["pct_copy_bandwidth"]] for r in rows]))
    print(f"wrote {path}")
    return 0


def kernel_registers() -> dict:
    """Registers and local memory per thread of every kernel loaded for the CuPy launch path
    (what bounds how many threads, so how many loads, an SM keeps in flight)."""
    out = {}
    for (kernel, argtypes, _), launcher in _launch._cupy_launchers.items():
        fn = getattr(launcher, "_function", None)
        if fn is None:
            continue
        name = f"{kernel.py_func.__name__}({argtypes[0]})"
        info = {attr: getattr(fn, attr, None)
                for attr in ("num_regs", "local_size_bytes", "max_threads_per_block")}
        try:  # CuPy's driver API directly, where its Function has no such properties
            driver = backend.cupy_module().cuda.driver
            info["num_regs_driver"] = driver.funcGetAttribute(4, fn.ptr)  # NUM_REGS
            info["local_bytes_driver"] = driver.funcGetAttribute(3, fn.ptr)  # LOCAL_SIZE
            info["blocks_per_sm_at_256"] = driver.occupancyMaxActiveBlocksPerMultiprocessor(
                fn.ptr, 256, 0)
        except Exception as exc:  # noqa: BLE001 - informative only
            info["driver_error"] = repr(exc)
        out[name] = info
    return out


def _time(fns, nbytes, bar, rounds, shape=""):
    """Paired rounds of `fns` (5 calls a sample); each row's GB/s as % of the `bar` entry's.
    `nbytes` maps the first word of a name (before any comma or space) to the bytes it moves."""
    samples = common.paired_rounds(fns, rounds, number=5, warmup=3, sync=backend.synchronize)

    def moved(name):
        return nbytes[name.split(",")[0].split(" ")[0]]

    bar_gbps = common.gbps(moved(bar), common.median(samples[bar]))
    return [{"variant": name, "shape": shape, **common.summarize(secs, moved(name), bar_gbps)}
            for name, secs in samples.items()]


def _time_im2col(cp, rng, size, rounds):
    """The shipped im2col kernel alone in both column layouts, against writing the same
    columns with CuPy's fill (the bar: im2col cannot beat storing its output)."""
    from gpugrad.kernels import conv_cuda

    n, c, h, w, _ = size
    x = cp.asarray(rng.standard_normal((n, c, h, w)).astype(np.float32))
    batch = cp.empty((n, c, 3, 3, h, w), np.float32)
    channel = cp.empty((c, 3, 3, n, h, w), np.float32)
    zero = np.float32(0)

    def launch(cols, channel_major):
        conv_cuda.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1, zero, channel_major, cols, "cuda")

    def launch_float(cols, channel_major):
        im2col_float_divisions_launch(x, 3, 3, 1, 1, 1, 1, 1, 1, zero, channel_major, cols,
                                      "cuda")

    def launch_groups(cols, channel_major, group):
        im2col_channel_groups_launch(x, 3, 3, 1, 1, 1, 1, 1, 1, zero, channel_major, cols,
                                     "cuda", group)

    def launch_fixed(cols, channel_major, regs=None):
        im2col_fixed_launch(x, 3, 3, 1, 1, 1, 1, 1, 1, zero, channel_major, cols, "cuda", regs)

    fns = {
        "im2col, batch layout, 3x3 compiled": lambda: launch_fixed(batch, False),
        "im2col, channel layout, 3x3 compiled": lambda: launch_fixed(channel, True),
        "im2col, batch layout, 3x3 compiled, 32 registers": lambda: launch_fixed(batch, False,
                                                                                 32),
        "im2col, batch layout, channel groups of 4": lambda: launch_groups(batch, False, 4),
        "im2col, batch layout, channel groups of 16": lambda: launch_groups(batch, False, 16),
        "im2col, channel layout, channel groups of 4": lambda: launch_groups(channel, True, 4),
        "im2col, channel layout, channel groups of 16": lambda: launch_groups(channel, True, 16),
        "im2col, batch layout, float divisions": lambda: launch_float(batch, False),
        "im2col, channel layout, float divisions": lambda: launch_float(channel, True),
        "im2col, batch layout, kernel only": lambda: launch(batch, False),
        "im2col, channel layout, kernel only": lambda: launch(channel, True),
        "fill of the columns (the bar)": lambda: batch.fill(zero),
    }
    nbytes = {"im2col": x.nbytes + batch.nbytes, "fill": batch.nbytes}
    return _time(fns, nbytes, "fill of the columns (the bar)", rounds,
                 f"N={n} C={c} {h}x{w} k3 p1")


if __name__ == "__main__":
    sys.exit(main())
