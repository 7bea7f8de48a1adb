"""The kernels gpugrad ships against the ones they replaced, checked and timed on a GPU in one run.

``python -m gpugrad.bench.gpu_variants [--out DIR] [--rounds N]``

GPU time comes in short loans, so a kernel idea is measured here against the kernel gpugrad
ships, in the same process, paired rounds, on the "large" benchmark size, before it moves into
kernels/ with its tests. Four such runs on an H200 chose the current cross-entropy and im2col
kernels (bench/results/gpu/gpu-variants-cuda-run1..4.json; the losing candidates are in git
history, commit 38fc0b0 onwards), and a seventh the col2im kernel compiled per kernel size.
What stays here is the baseline: the block-per-row cross-entropy kernels that the warp-per-row
ones replaced, the warp-per-row forward as runs 7 and 8 measured it (before its online pass
took max.f32 and the flushed hardware exp2, shipped without a GPU to time it: this run is the
first to), the shipped forward on other launch shapes (FORWARD_LAUNCHES), and the generic
im2col and col2im kernels (still shipped for kernels of more than 49 taps) against the ones
compiled per kernel size, each with its bar (a copy of the logits; a fill or a copy of the
columns) and the registers each kernel uses.

The previous kernels are checked against gpugrad's NumPy references first, and the two col2im
kernels against each other, to the bit, before they are timed. Timing refuses the simulator.
"""

from __future__ import annotations

import functools
import math
import sys

import numpy as np
from numba import cuda, uint64

from gpugrad import backend
from gpugrad.bench import common
from gpugrad.bench.kernels import SIZES, cross_entropy_kernel_args, cross_entropy_kernel_launches
from gpugrad.cli_parser import OneLineParser
from gpugrad.kernels import _launch
from gpugrad.kernels.conv import conv_output_size
from gpugrad.kernels._launch import launch_warp_rows
from gpugrad.kernels.loss_cuda import (
    LOG2E,
    UNROLL,
    WARP,
    dlogit,
    flag_bad_label,
    row_exp_sums,
    row_max,
    warp_max,
    warp_online,
    warp_sum,
    write_row,
)

# The previous kernels gave a row a block of up to 256 threads, sized by row_threads.
MAX_ROW_THREADS = 256
MAX_ROW_WARPS = MAX_ROW_THREADS // WARP


def row_threads(n_cls: int) -> int:
    """Threads per row for `n_cls` classes: about four logits per thread, a whole number of
    warps, at most MAX_ROW_THREADS (a 10-class row gets one warp, a 1000-class row 256)."""
    threads = WARP
    while threads < MAX_ROW_THREADS and threads * 4 < n_cls:
        threads *= 2
    return threads



@cuda.jit
def previous_forward_kernel(
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
            write_row(logits, weight, weight_sum, ignore_index, on_target, off_target,
                      smoothing, i, target[i], m, math.log(s), gap,
                      row_max_out, row_log_sum, row_loss_out, row_weight)



# The warp-per-row forward as runs 7 and 8 measured it (72% of the copy bandwidth paired, 67%
# in the full bench), before its online pass took max.f32 for the running max (a compare and a
# select before) and the hardware exp2 with denormals flushed (ex2.approx.f32 before, which
# ptxas wraps in a denormal fix-up: four instructions for one), and before its last trip's
# guards became 32-bit compares. Its unrolled loop is 199 SASS instructions for 16 logits a
# lane on sm_90 against the shipped kernel's 126, its last trip 282 against 160, the whole
# kernel 2768 against 2583 (ptxas and nvdisasm, CUDA 13; both 32 registers). The two give the
# same numbers wherever exp(x - max) is a normal float.
@cuda.jit(device=True, inline=True)
def run8_load8(row, j, stride, guarded, fill):
    """loss_cuda.load8 as of commit db7d468: its guards compare j + k * stride with n in 64
    bits."""
    n = row.shape[0]
    if guarded:
        a = row[uint64(j)] if j < n else fill
        b = row[uint64(j + stride)] if j + stride < n else fill
        c = row[uint64(j + 2 * stride)] if j + 2 * stride < n else fill
        d = row[uint64(j + 3 * stride)] if j + 3 * stride < n else fill
        e = row[uint64(j + 4 * stride)] if j + 4 * stride < n else fill
        f = row[uint64(j + 5 * stride)] if j + 5 * stride < n else fill
        g = row[uint64(j + 6 * stride)] if j + 6 * stride < n else fill
        h = row[uint64(j + 7 * stride)] if j + 7 * stride < n else fill
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
def run8_online8(m, s, zero, log2e, a, b, c, d, e, f, g, h):
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
    if m != top:
        s *= math.exp2((m - top) * log2e)
    s += ((math.exp2((a - shift) * log2e) + math.exp2((b - shift) * log2e))
          + (math.exp2((c - shift) * log2e) + math.exp2((d - shift) * log2e))) + (
          (math.exp2((e - shift) * log2e) + math.exp2((f - shift) * log2e))
          + (math.exp2((g - shift) * log2e) + math.exp2((h - shift) * log2e)))
    return top, s


@cuda.jit(device=True, inline=True)
def run8_row_online(row, lane, m, s, zero, neg_inf, log2e):
    n = row.shape[0]
    j = lane
    while j + 15 * WARP < n:
        a, b, c, d, e, f, g, h = run8_load8(row, j, WARP, False, neg_inf)
        a2, b2, c2, d2, e2, f2, g2, h2 = run8_load8(row, j + 8 * WARP, WARP, False, neg_inf)
        m, s = run8_online8(m, s, zero, log2e, a, b, c, d, e, f, g, h)
        m, s = run8_online8(m, s, zero, log2e, a2, b2, c2, d2, e2, f2, g2, h2)
        j += 16 * WARP
    if j < n:
        a, b, c, d, e, f, g, h = run8_load8(row, j, WARP, True, neg_inf)
        a2, b2, c2, d2, e2, f2, g2, h2 = run8_load8(row, j + 8 * WARP, WARP, True, neg_inf)
        m, s = run8_online8(m, s, zero, log2e, a, b, c, d, e, f, g, h)
        m, s = run8_online8(m, s, zero, log2e, a2, b2, c2, d2, e2, f2, g2, h2)
    return m, s


@cuda.jit
def run8_forward_kernel(
    logits, target, weight, weight_sum, ignore_index, on_target, off_target,
    row_max_out, row_log_sum, row_loss_out, row_weight, first_bad,
):  # fmt: skip
    """softmax_cross_entropy_forward_kernel as of commit db7d468, word for word but for its name
    and run8_row_online (its row_online then)."""
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
                m, s = run8_row_online(logits[i], lane, m, s, zero, neg_inf, log2e)
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


@cuda.jit
def previous_backward_kernel(
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



def launch_previous(kernel, n_rows, n_cls, device, *args):
    """A block of row_threads(n_cls) threads per row, as the previous dispatchers launched."""
    threads = row_threads(n_cls)
    if backend.uses_simulated_cuda():
        blocks = min(n_rows, _launch.SIMULATOR_MAX_BLOCKS)
    else:
        blocks = min(n_rows, _launch.MAX_BLOCKS)
    _launch._launch(kernel, blocks, threads, device, args)


def _kernel_problem(xp, logits_h, target_h, weight_h, label_smoothing):
    """The cross-entropy kernels' arguments for host arrays of logits, labels and class weights
    (the forward and backward extras, as the dispatchers build them), the references' (loss,
    lse, total weight) for them, and the tolerance the baselines are held to."""
    from gpugrad import kernels as K

    logits, target = xp.asarray(logits_h), xp.asarray(target_h)
    weight = None if weight_h is None else xp.asarray(weight_h)
    _, lse, tw = K.softmax_cross_entropy_forward(
        logits, target, weight, label_smoothing=label_smoothing, device="cuda")
    args, extras = cross_entropy_kernel_args(xp, logits, target, lse, tw, weight,
                                             label_smoothing=label_smoothing)
    reference = K.softmax_cross_entropy_forward_reference(
        logits_h, target_h, weight_h, -100, label_smoothing, "none")
    tol = ({"rtol": 2e-5, "atol": 1e-5} if logits_h.dtype == np.float32
           else {"rtol": 1e-12, "atol": 1e-12})
    return args, extras, reference, tol


def check(xp, n, c, rng, weighted=False, label_smoothing=0.0, dtype=np.float32) -> None:
    """The previous kernels against gpugrad's references on one random problem (raises if off):
    a baseline that computes something else would time nothing useful."""
    from gpugrad import kernels as K

    logits_h = (rng.standard_normal((n, c)) * 4).astype(dtype)
    target_h = rng.integers(0, c, n)
    target_h[::5] = -100  # ignored rows, never all of them (n > 1)
    weight_h = rng.uniform(0.5, 2.0, c).astype(dtype) if weighted else None
    args, extras, (ref_loss, ref_lse, ref_tw), tol = _kernel_problem(
        xp, logits_h, target_h, weight_h, label_smoothing)
    outs = [xp.full(n, np.nan, dtype) for _ in range(4)]
    launch_previous(previous_forward_kernel, n, c, "cuda", *args, *outs)
    got_max, got_log_sum, got_loss, got_weight = (backend.to_numpy(o) for o in outs)
    np.testing.assert_allclose(got_max.astype(np.float64) + got_log_sum, ref_lse, **tol)
    np.testing.assert_allclose(got_loss, ref_loss, **tol)
    np.testing.assert_allclose(got_weight.sum(), ref_tw, **tol)
    ref_g = K.softmax_cross_entropy_backward_reference(
        logits_h, target_h, ref_lse, np.asarray(1.0, dtype), weight_h, -100, label_smoothing,
        "mean", np.asarray(ref_tw, dtype))
    gx = xp.full((n, c), np.nan, dtype)
    launch_previous(previous_backward_kernel, n, c, "cuda", *args, *extras, gx)
    np.testing.assert_allclose(backend.to_numpy(gx), ref_g, **tol)


def check_run8_forward(xp, n, c, rng, weighted=False, label_smoothing=0.0,
                       dtype=np.float32) -> None:
    """Run 8's forward kernel against gpugrad's references (raises if off), as check() does
    for the previous kernels: with -inf and huge logits, ignored rows, class weights
    (`weighted`) and label smoothing (the two-pass path) or none (the online pass)."""
    logits_h = (rng.standard_normal((n, c)) * 4).astype(dtype)
    logits_h[0, :] = -np.inf
    logits_h[1, ::3] = -np.inf
    logits_h[2, :] *= 2500.0  # logits of 1e4
    target_h = rng.integers(0, c, n)
    target_h[::5] = -100
    target_h[0] = -100  # the all -inf row has no loss
    weight_h = rng.uniform(0.5, 2.0, c).astype(dtype) if weighted else None
    args, _, (ref_loss, ref_lse, _), tol = _kernel_problem(
        xp, logits_h, target_h, weight_h, label_smoothing)
    outs = [xp.full(n, np.nan, dtype) for _ in range(4)]
    first_bad = xp.full(1, n, np.int64)
    launch_warp_rows(run8_forward_kernel, n, "cuda", *args, *outs, first_bad)
    got_max, got_log_sum, got_loss, _ = (backend.to_numpy(o) for o in outs)
    np.testing.assert_allclose(got_max[1:].astype(np.float64) + got_log_sum[1:], ref_lse[1:],
                               **tol)
    np.testing.assert_allclose(got_loss, ref_loss, **tol)
    assert int(backend.to_numpy(first_bad)[0]) == n


def _forward_bits(xp, kargs, launch):
    """The four outputs of a forward launch(outs, first_bad) on NaN-filled arrays, as int32
    bits: two launches compared on these agree to the bit or not at all."""
    n = kargs[0].shape[0]
    outs = [xp.full(n, np.nan, np.float32) for _ in range(4)]
    launch(outs, xp.full(1, n, np.int64))
    return xp.stack(outs).view(np.int32)


def _shipped_forward(kargs):
    """launch(outs, first_bad) for the forward as gpugrad ships it (loss_cuda's launcher)."""
    from gpugrad.kernels import loss_cuda

    return lambda outs, flag: loss_cuda.softmax_cross_entropy_forward(*kargs, *outs, flag,
                                                                      "cuda")


def run8_forward_same_bits(cp, kargs) -> bool:
    """Whether the shipped forward and run 8's give the same four outputs to the bit on the
    timed problem (they should wherever exp(x - max) is a normal float32)."""
    n = kargs[0].shape[0]
    run8 = _forward_bits(cp, kargs, lambda outs, flag: launch_warp_rows(
        run8_forward_kernel, n, "cuda", *kargs, *outs, flag))
    return bool(cp.array_equal(_forward_bits(cp, kargs, _shipped_forward(kargs)), run8))


# Launch shapes for the shipped forward kernel, timed beside its own launch (8 rows to a
# 256-thread block, up to _launch.MAX_BLOCKS blocks, grid-striding over the rest): the kernel
# takes its rows a block-sized group at a time, so any whole number of warps a block and any
# grid compute the same numbers. All keep 64 warps on an SM at 32 registers; they differ in
# how many blocks the SMs go through and in the last wave's tail. Run 10 on an H200
# (bench/results/gpu/gpu-variants-cuda.json): all three slower than the shipped launch (2-8%).
# name: (rows a block, blocks for a device of `sms` multiprocessors, or None).
FORWARD_LAUNCHES = {
    "4 rows a block": (4, None),
    "16 rows a block": (16, None),
    "one wave (8 blocks of 8 rows an SM)": (8, lambda sms: 8 * sms),
}


def launch_forward_as(rows, blocks, n_rows, kargs, outs, first_bad) -> None:
    """The shipped forward kernel on `rows` rows a block and at most `blocks` blocks (None:
    _launch.MAX_BLOCKS)."""
    from gpugrad.kernels import loss_cuda

    grid = min(-(-n_rows // rows), _launch.MAX_BLOCKS if blocks is None else blocks)
    _launch._launch(loss_cuda.softmax_cross_entropy_forward_kernel, grid, rows * WARP, "cuda",
                    (*kargs, *outs, first_bad))


def forward_launch_shapes(sms) -> list:
    """[(name, rows a block, most blocks or None)] of FORWARD_LAUNCHES on a device of `sms`
    multiprocessors."""
    return [(name, rows, None if blocks_for is None else blocks_for(sms))
            for name, (rows, blocks_for) in FORWARD_LAUNCHES.items()]


def forward_launches_same_bits(xp, kargs, sms) -> dict:
    """{name: whether FORWARD_LAUNCHES[name] gives the shipped launch's four outputs to the
    bit}: a launch shape that changed a number would time something else."""
    n = kargs[0].shape[0]
    shipped = _forward_bits(xp, kargs, _shipped_forward(kargs))
    same = {}
    for name, rows, blocks in forward_launch_shapes(sms):
        got = _forward_bits(xp, kargs, lambda outs, flag, rows=rows, blocks=blocks:
                            launch_forward_as(rows, blocks, n, kargs, outs, flag))
        same[name] = bool(xp.array_equal(got, shipped))
    return same


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m gpugrad.bench.gpu_variants",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--out", default=None, help="results folder (default bench/results)")
    parser.add_argument("--only", choices=["ce-dispatch"], default=None,
                        help="time one section only: the cross-entropy forward dispatcher's "
                             "parts (writes gpu-variants-ce-dispatch-cuda.json)")
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
    for n, c, weighted, eps in [(257, 1000, False, 0.0), (300, 10, True, 0.0),
                                (33, 5000, True, 0.0), (64, 1000, True, 0.1)]:
        check_run8_forward(cp, n, c, rng, weighted, eps)
    print("previous kernels match the references")

    n, c = SIZES["cross_entropy"]["large"]
    logits = cp.asarray((rng.standard_normal((n, c)) * 3).astype(np.float32))
    target = cp.asarray(rng.integers(0, c, n))
    if args.only == "ce-dispatch":
        rows = _time_ce_dispatch(cp, logits, target, args.rounds)
        report = {"benchmark": "gpu variants: cross-entropy forward dispatcher",
                  "rounds": args.rounds, "machine": common.machine_info(gpu=common.gpu_info()),
                  "results": rows}
        path = common.write_json(
            common.results_path("gpu-variants-ce-dispatch", "cuda", args.out), report)
        print(common.format_table(["variant", "median ms", "p25 ms", "p75 ms"],
                                  [[r["variant"], r["median_ms"], r["p25_ms"], r["p75_ms"]]
                                   for r in rows]))
        print(f"wrote {path}")
        return 0
    _, lse, tw = K.softmax_cross_entropy_forward(logits, target, device="cuda")
    kargs, extras = cross_entropy_kernel_args(cp, logits, target, lse, tw)
    shipped_fwd, shipped_bwd = cross_entropy_kernel_launches(cp, "cuda", kargs, extras)
    outs = [cp.empty(n, np.float32) for _ in range(4)]
    first_bad = cp.full(1, n, np.int64)  # stays n: the labels are good
    gx = cp.empty((n, c), np.float32)
    copy = cp.empty_like(logits)
    sms = common.gpu_info()["multiprocessors"]
    fns = {
        "forward, shipped (warp per row, one pass)": shipped_fwd,
        "forward, previous (block per row)": lambda: launch_previous(
            previous_forward_kernel, n, c, "cuda", *kargs, *outs),
        "forward, run 8 (compare-select max, exp2 with denormal fix-up)": lambda: (
            launch_warp_rows(run8_forward_kernel, n, "cuda", *kargs, *outs, first_bad)),
        "backward, shipped (warp per row)": shipped_bwd,
        "backward, previous (block per row)": lambda: launch_previous(
            previous_backward_kernel, n, c, "cuda", *kargs, *extras, gx),
        "copy (the bar)": lambda: cp.copyto(copy, logits),
    }
    for name, rows_per_block, blocks in forward_launch_shapes(sms):
        fns[f"forward, shipped, {name}"] = functools.partial(
            launch_forward_as, rows_per_block, blocks, n, kargs, outs, first_bad)
    nbytes = {"forward": n * c * 4 + 2 * n * 8, "backward": 2 * n * c * 4 + 2 * n * 8,
              "copy": 2 * n * c * 4}
    rows = _time(fns, nbytes, "copy (the bar)", args.rounds, f"N={n} C={c}")
    rows += _time_im2col(cp, rng, SIZES["conv"]["large"], args.rounds)
    for geometry in COL2IM_TIMED:
        rows += _time_col2im(cp, SIZES["conv"]["large"], geometry, args.rounds)
    registers = kernel_registers()
    for name, info in registers.items():
        print(f"{name}: {info}")
    same_bits = run8_forward_same_bits(cp, kargs)
    print(f"shipped forward and run 8's: {'the same bits' if same_bits else 'DIFFERENT bits'}")
    launches_same = forward_launches_same_bits(cp, kargs, sms)
    print(f"shipped forward on other launch shapes, the same bits: {launches_same}")
    report = {"benchmark": "gpu variants", "rounds": args.rounds,
              "machine": common.machine_info(gpu=common.gpu_info()), "results": rows,
              "kernel_registers": registers, "forward_same_bits_as_run8": same_bits,
              "forward_launches_same_bits": launches_same}
    path = common.write_json(common.results_path("gpu-variants", "cuda", args.out), report)
    print(common.format_table(["variant", "shape", "median ms", "GB/s", "% of bar"],
                              [[r["variant"], r["shape"], r["median_ms"], r["gbps"],
                                r["pct_copy_bandwidth"]] for r in rows]))
    print(f"wrote {path}")
    # A compiled col2im that differs from the generic gather fails the run (after the timings
    # are written, so that a short GPU loan still brings them back).
    mismatched = col2im_mismatches(rows)
    for r in mismatched:
        print(f"FAILED: {r['variant']} {r['shape']} differs from the generic kernel",
              file=sys.stderr)
    return 1 if mismatched else 0


def _time_ce_dispatch(cp, logits, target, rounds):
    """F.cross_entropy's forward dispatcher against its kernel, and its parts one by one, each
    call timed alone (the dispatcher waits for its label flag, so calls do not overlap): where
    the ~0.3 ms between the two goes. "fresh default weights" empties the dispatcher's cache
    of ones before every call, as every call did before the cache."""
    from gpugrad import kernels as K
    from gpugrad.kernels import loss as L

    n, c = logits.shape
    _, lse, tw = K.softmax_cross_entropy_forward(logits, target, device="cuda")
    kargs, extras = cross_entropy_kernel_args(cp, logits, target, lse, tw)
    kernel_fwd, _ = cross_entropy_kernel_launches(cp, "cuda", kargs, extras)
    rows4 = cp.random.standard_normal((4, n), dtype=np.float32)
    m = 512
    k = n // m

    def shipped():
        K.softmax_cross_entropy_forward(logits, target, device="cuda")

    def fresh_weights():
        L._DEFAULT_WEIGHTS.clear()
        K.softmax_cross_entropy_forward(logits, target, device="cuda")

    def flag_and_read():
        flag = cp.full(1, n, np.int64)
        return int(flag[0])

    fns = {
        "dispatcher, shipped": shipped,
        "dispatcher, fresh default weights": fresh_weights,
        "kernel alone (launch + run)": kernel_fwd,
        "part: default weights, ones + full": lambda: (cp.ones(c, np.float32),
                                                       cp.full(1, c, np.float32)),
        "part: rows buffer, empty (4, N)": lambda: cp.empty((4, n), np.float32),
        "part: label flag, full + read back": flag_and_read,
        "part: lse, add to float64": lambda: cp.add(rows4[0], rows4[1], dtype=np.float64),
        "part: loss and weight sums, (2, N).sum(axis=1)": lambda: rows4[2:].sum(axis=1),
        "part: the same sums in two stages, (2, 512, N/512)": lambda: rows4[2:, :m * k].reshape(
            2, m, k).sum(axis=2).sum(axis=1),
        "part: loss / total weight (0-d)": lambda: rows4[2, 0] / rows4[3, 0],
        "part: checks + path choice (host only)": lambda: (
            L._check_inputs("cross_entropy", logits, target, None, -100, 0.0, "mean"),
            L.choose_path("cross_entropy", "cuda", logits, target)),
    }
    samples = common.paired_rounds(fns, rounds, number=1, warmup=3, sync=backend.synchronize)
    return [{"variant": name, **common.summarize(secs)} for name, secs in samples.items()]


def col2im_mismatches(rows) -> list:
    """The timed rows of a compiled col2im whose image differed from the generic kernel's."""
    return [r for r in rows if r.get("matches_generic") is False]


def kernel_registers() -> dict:
    """Registers per thread, local (spilled) bytes and resident 256-thread blocks per SM of
    every kernel loaded for the CuPy launch path: what bounds how many loads are in flight."""
    from gpugrad.kernels import conv_cuda

    driver = backend.cupy_module().cuda.driver
    # The kernels compiled per size share one Python name each: told apart by the size.
    sized = {kernel: f"sized_col2im_kernel[{kh}x{kw}]"
             for (kh, kw, _), kernel in conv_cuda._sized_col2im_kernels.items()}
    sized.update({kernel: f"sized_im2col_kernel[{kh}x{kw}]"
                  for (kh, kw, _), kernel in conv_cuda._sized_kernels.items()})
    out = {}
    for (kernel, argtypes, _), launcher in _launch._cupy_launchers.items():
        fn = getattr(launcher, "_function", None)
        if fn is None:
            continue
        name = f"{sized.get(kernel, kernel.py_func.__name__)}({argtypes[0]})"
        try:
            out[name] = {
                "registers": driver.funcGetAttribute(4, fn.ptr),  # CU_FUNC_ATTRIBUTE_NUM_REGS
                "local_bytes": driver.funcGetAttribute(3, fn.ptr),  # ..._LOCAL_SIZE_BYTES
                "blocks_per_sm_at_256": driver.occupancyMaxActiveBlocksPerMultiprocessor(
                    fn.ptr, 256, 0),
            }
        except Exception as exc:  # noqa: BLE001 - informative only
            out[name] = {"error": repr(exc)}
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
    """im2col alone in both column layouts, the kernel compiled for 3x3 (shipped) against the
    generic one, and a fill of the same columns (the bar: im2col cannot beat storing them)."""
    from gpugrad.kernels import conv_cuda

    n, c, h, w, _ = size
    x = cp.asarray(rng.standard_normal((n, c, h, w)).astype(np.float32))
    batch = cp.empty((n, c, 3, 3, h, w), np.float32)
    channel = cp.empty((c, 3, 3, n, h, w), np.float32)
    zero = np.float32(0)

    def shipped(cols, channel_major):
        conv_cuda.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1, zero, channel_major, cols, "cuda")

    def generic(cols, channel_major):
        _launch.launch_elementwise(
            conv_cuda.im2col_kernel, n * c * h * w, "cuda", x.reshape(-1), n, c, h, w, 3, 3,
            1, 1, 1, 1, 1, 1, zero, h, w, channel_major, cols.reshape(-1))

    fns = {
        "im2col, batch layout, shipped (compiled for 3x3)": lambda: shipped(batch, False),
        "im2col, channel layout, shipped (compiled for 3x3)": lambda: shipped(channel, True),
        "im2col, batch layout, generic kernel": lambda: generic(batch, False),
        "im2col, channel layout, generic kernel": lambda: generic(channel, True),
        "fill of the columns (the bar)": lambda: batch.fill(zero),
    }
    nbytes = {"im2col": x.nbytes + batch.nbytes, "fill": batch.nbytes}
    return _time(fns, nbytes, "fill of the columns (the bar)", rounds,
                 f"N={n} C={c} {h}x{w} k3 p1")


# (kernel, stride, padding, dilation) of the col2im timings on the large conv size: the 3x3 of
# the im2col row, a strided and dilated 3x3, and a 7x7 with stride 2 (the most taps compiled).
COL2IM_TIMED = [
    ((3, 3), (1, 1), (1, 1), (1, 1)),
    ((3, 3), (2, 2), (2, 2), (2, 2)),
    ((7, 7), (2, 2), (3, 3), (1, 1)),
]


def _time_col2im(cp, size, geometry, rounds):
    """col2im alone in both column layouts, the shipped kernel compiled for the kernel size
    against the generic gather kernel (still shipped past MAX_SIZED_TAPS taps; it was the only
    col2im until the compiled one measured 3.8x faster here), and a copy of the columns (the
    bar: col2im reads them all, as the copy does, and writes a kh * kw times smaller image).
    The two kernels' images are compared first, to the bit, on these very columns: each
    compiled row says whether they matched ("matches_generic"; a mismatch is printed, and the
    timing goes on so that the rest of a short GPU loan is not lost)."""
    from gpugrad.kernels import conv_cuda

    n, c, h, w, _ = size
    (kh, kw), (sy, sx), (ph, pw), (dy, dx) = geometry
    out_h = conv_output_size(h, kh, sy, ph, dy)
    out_w = conv_output_size(w, kw, sx, pw, dx)
    batch = cp.random.standard_normal((n, c, kh, kw, out_h, out_w), dtype=np.float32)
    channel = cp.ascontiguousarray(batch.transpose(1, 2, 3, 0, 4, 5))
    copy = cp.empty_like(batch)
    x = cp.empty((n, c, h, w), np.float32)
    geo = (kh, kw, sy, sx, ph, pw, dy, dx)

    def shipped(cols, channel_major):
        conv_cuda.col2im(cols, *geo, channel_major, x, "cuda")

    def generic(cols, channel_major):
        _launch.launch_elementwise(conv_cuda.col2im_kernel, x.size, "cuda", cols, *geo,
                                   channel_major, x)

    matches = {}
    for cols, channel_major in ((batch, False), (channel, True)):
        generic(cols, channel_major)
        expected = x.copy()
        x.fill(np.nan)
        shipped(cols, channel_major)
        matches[channel_major] = bool(cp.array_equal(x, expected))
        if not matches[channel_major]:
            print(f"col2im compiled for {kh}x{kw} DIFFERS from the generic kernel: {geometry}, "
                  f"channel_major={channel_major}", file=sys.stderr)
    tag = f"compiled for {kh}x{kw}"
    fns = {
        f"col2im, batch layout, shipped ({tag})": lambda: shipped(batch, False),
        f"col2im, channel layout, shipped ({tag})": lambda: shipped(channel, True),
        "col2im, batch layout, generic gather kernel": lambda: generic(batch, False),
        "col2im, channel layout, generic gather kernel": lambda: generic(channel, True),
        "copy of the columns (the bar)": lambda: cp.copyto(copy, batch),
    }
    nbytes = {"col2im": batch.nbytes + x.nbytes, "copy": 2 * batch.nbytes}
    shape = f"N={n} C={c} {h}x{w} k{kh}x{kw} s{sy} p{ph} d{dy}"
    rows = _time(fns, nbytes, "copy of the columns (the bar)", rounds, shape)
    for row in rows:
        if "compiled" in row["variant"]:
            row["matches_generic"] = matches["channel" in row["variant"]]
    return rows

if __name__ == "__main__":
    sys.exit(main())
