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
import math
import sys

import numpy as np
from numba import cuda

from gpugrad import backend
from gpugrad.bench import common
from gpugrad.bench.kernels import SIZES, cross_entropy_kernel_args, cross_entropy_kernel_launches
from gpugrad.kernels import _launch
from gpugrad.kernels.loss_cuda import (
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
    outs = [xp.full(n, np.nan, dtype) for _ in range(4)]
    launch_rows(ce_forward_warp_rows, n, "cuda", *args, *outs)
    ref_loss, ref_lse, ref_tw = K.softmax_cross_entropy_forward_reference(
        logits_h, target_h, weight_h, -100, label_smoothing, "none")
    got_max, got_log_sum, got_loss, got_weight = (backend.to_numpy(o) for o in outs)
    tol = dict(rtol=2e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_max.astype(np.float64) + got_log_sum, ref_lse, **tol)
    np.testing.assert_allclose(got_loss, ref_loss, **tol)
    gx = xp.full((n, c), np.nan, dtype)
    launch_rows(ce_backward_warp_rows, n, "cuda", *args, *extras, gx)
    np.testing.assert_allclose(got_weight.sum(), ref_tw, **tol)
    ref_g = K.softmax_cross_entropy_backward_reference(
        logits_h, target_h, ref_lse, np.asarray(1.0, dtype), weight_h, -100, label_smoothing,
        "mean", np.asarray(ref_tw, dtype))
    np.testing.assert_allclose(backend.to_numpy(gx), ref_g, **tol)


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
    }
    copy = cp.empty_like(logits)
    fns["copy (the bar)"] = lambda: cp.copyto(copy, logits)
    nbytes = {"forward": n * c * 4 + 2 * n * 8, "backward": 2 * n * c * 4 + 2 * n * 8,
              "copy": 2 * n * c * 4}
    rows = _time(fns, nbytes, "copy (the bar)", args.rounds, f"N={n} C={c}")
    rows += _time_im2col(cp, rng, SIZES["conv"]["large"], args.rounds)
    report = {"benchmark": "gpu variants", "rounds": args.rounds,
              "machine": common.machine_info(gpu=common.gpu_info()), "results": rows}
    path = common.write_json(common.results_path("gpu-variants", "cuda", args.out), report)
    print(common.format_table(["variant", "shape", "median ms", "GB/s", "% of bar"],
                              [[r["variant"], r["shape"], r["median_ms"], r["gbps"],
                                r["pct_copy_bandwidth"]] for r in rows]))
    print(f"wrote {path}")
    return 0


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

    fns = {
        "im2col, batch layout, kernel only": lambda: launch(batch, False),
        "im2col, channel layout, kernel only": lambda: launch(channel, True),
        "fill of the columns (the bar)": lambda: batch.fill(zero),
    }
    nbytes = {"im2col": x.nbytes + batch.nbytes, "fill": batch.nbytes}
    return _time(fns, nbytes, "fill of the columns (the bar)", rounds,
                 f"N={n} C={c} {h}x{w} k3 p1")


if __name__ == "__main__":
    sys.exit(main())
