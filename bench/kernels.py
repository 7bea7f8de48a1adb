"""Benchmark gpugrad's kernels against what a user would write instead.

``gpugrad bench kernels [--device cpu|cuda] [--quick] [--rounds N] [--out DIR]``

For each kernel (fused softmax cross-entropy, im2col, col2im, conv2d as "auto" picks it and forced
to im2col + GEMM, ReLU),
forward and backward, in float32: gpugrad's dispatcher against the NumPy composition, PyTorch
(CPU, or CUDA on a GPU), and on a GPU the same composition in CuPy. Paired rounds in one process,
interleaved across cases, medians. Memory-bound kernels also report the bytes they must move, as
GB/s and as a percentage of the copy bandwidth measured in the same run. On a GPU the per-launch
overhead of a Numba kernel fed CuPy arrays is measured too. Writes
bench/results/kernels-<device>.json and .png.

Numba (system libgomp) and PyTorch (its own bundled libgomp) each keep an OpenMP thread pool
that spins after every parallel region; in one process on 2 cores the two pools steal the cores
from each other and a region can wait a whole scheduler tick (measured: 16 ms for a 64k-float
copy). So unless OMP_WAIT_POLICY is already set, the bench sets it to PASSIVE before either
runtime starts, for both alike; the JSON records the policy used.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np

from gpugrad.bench import common
from gpugrad.cli_parser import OneLineParser

DTYPE = np.float32
ITEM = np.dtype(DTYPE).itemsize

# Problem sizes by scale. "full" is the size the targets name (the CPU run); a GPU run adds
# "large", where each kernel moves about a gigabyte and launch overhead no longer hides the
# memory system; "quick" is the smoke test.
SIZES = {
    "cross_entropy": {"full": (4096, 1000), "large": (262144, 1000), "quick": (256, 100)},
    # N, C, H, W, filters; 3x3, pad 1
    "conv": {"full": (64, 32, 14, 14, 64), "large": (128, 64, 56, 56, 64),
             "quick": (4, 8, 10, 10, 8)},
    "relu": {"full": (1 << 24,), "large": (1 << 28,), "quick": (1 << 16,)},
}
ROUNDS = (25, 3)
# Calls per timed sample on a GPU: the launches queue back to back and one synchronization
# ends the sample, so its fixed cost is split five ways.
GPU_CALLS_PER_SAMPLE = 5
# Untimed calls per contender before a case: JIT loading, allocator pools, and waking a thread
# pool that went to sleep (an idle vCPU can take milliseconds to wake on a VM).
WARMUP = 3


@dataclass
class Case:
    kernel: str
    phase: str  # "forward", "backward" or "forward+backward"
    scale: str  # "full", "large" or "quick" (a key of SIZES)
    shape: str
    nbytes: int | None  # bytes the kernel must move at least; None when compute-bound
    fns: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- compositions
# What a user would write with the array library alone; `xp` is numpy or cupy.


def ce_forward_composition(xp, logits, target):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[xp.arange(logits.shape[0]), target].mean()
    return loss, log_probs


def ce_backward_composition(xp, log_probs, target):
    n = log_probs.shape[0]
    g = xp.exp(log_probs)
    g[xp.arange(n), target] -= 1
    g /= n
    return g


def conv_im2col_gemm(xp, unfold, fold, x, w, gy):
    """conv2d forward and backward (gx, gw) through im2col + GEMM, 3x3, stride 1, pad 1."""
    n, c, h, wd = x.shape
    f = w.shape[0]
    cols = unfold(x)
    cols2 = cols.reshape(n, c * 9, h * wd)
    wm = w.reshape(f, c * 9)
    y = xp.matmul(wm, cols2)
    gy2 = gy.reshape(n, f, h * wd)
    gw = xp.tensordot(gy2, cols2, axes=([0, 2], [0, 2]))
    gx = fold(xp.matmul(wm.T, gy2).reshape(cols.shape))
    return y, gw, gx


# ----------------------------------------------------------------------------- cases


@dataclass
class Setup:
    """Where and how big: shared by the case builders below."""

    device: str  # "cpu" or "cuda"
    scale: str  # a key of SIZES' entries
    xp: object  # numpy, or cupy on a GPU
    torch: object  # the torch module, or None
    torch_device: str | None
    rng: np.random.Generator

    def size(self, kernel):
        return SIZES[kernel][self.scale]

    def contenders(self, ours, numpy_fn, xp_fn, torch_fn) -> dict:
        """gpugrad, the NumPy composition (not at the GPU's large scale, where the host would
        spend seconds a call; the CPU run has those numbers), the CuPy one (GPU only),
        PyTorch (when importable)."""
        fns = {"gpugrad": ours}
        if self.scale != "large":
            fns["numpy"] = numpy_fn
        if self.device == "cuda":
            fns["cupy"] = xp_fn
        if self.torch is not None:
            fns["torch"] = torch_fn
        return fns

    def tensor(self, a, requires_grad=False):
        return self.torch.tensor(a, device=self.torch_device, requires_grad=requires_grad)


def build_cases(setup: Setup) -> list:
    return cross_entropy_cases(setup) + conv_cases(setup) + relu_cases(setup)


def cross_entropy_cases(s: Setup) -> list:
    from gpugrad import backend
    from gpugrad import kernels as K

    xp, device, torch = s.xp, s.device, s.torch
    n, c = s.size("cross_entropy")
    logits_h = s.rng.standard_normal((n, c)).astype(DTYPE) * DTYPE(3)
    target_h = s.rng.integers(0, c, n)
    logits, target = xp.asarray(logits_h), xp.asarray(target_h)
    gloss = xp.asarray(np.asarray(1.0, DTYPE))
    _, lse, tw = K.softmax_cross_entropy_forward(logits, target, device=device)
    _, log_probs = ce_forward_composition(xp, logits, target)
    log_probs_h = backend.to_numpy(log_probs)

    def ours_fwd():
        return K.softmax_cross_entropy_forward(logits, target, device=device)

    # The backward as F.cross_entropy's autograd node calls it: the labels went through the
    # forward's check, so it skips its own (on a GPU a wait for the queue and a read-back).
    def ours_bwd():
        return K.softmax_cross_entropy_backward(
            logits, target, lse, gloss, total_weight=tw, device=device, check_labels=False
        )

    def ours_fwd_bwd():
        _, lse_, tw_ = K.softmax_cross_entropy_forward(logits, target, device=device)
        return K.softmax_cross_entropy_backward(
            logits, target, lse_, gloss, total_weight=tw_, device=device, check_labels=False
        )

    # The compiled kernels alone, without the dispatcher's checks, label test and reductions
    # around them: the gap between these rows and the ones above is the per-call overhead.
    launch_fwd, launch_bwd = cross_entropy_kernel_launches(
        xp, device, *cross_entropy_kernel_args(xp, logits, target, lse, tw))

    def composition_fwd_bwd(xp_, logits_, target_):
        _, log_probs_ = ce_forward_composition(xp_, logits_, target_)
        return ce_backward_composition(xp_, log_probs_, target_)

    torch_fwd = torch_bwd = torch_fwd_bwd = None
    if torch is not None:
        t_logits, t_target = s.tensor(logits_h, requires_grad=True), s.tensor(target_h)
        t_loss = torch.nn.functional.cross_entropy(t_logits, t_target)

        def torch_fwd():
            with torch.no_grad():
                return torch.nn.functional.cross_entropy(t_logits, t_target)

        def torch_bwd():
            return torch.autograd.grad(t_loss, t_logits, retain_graph=True)

        def torch_fwd_bwd():
            loss = torch.nn.functional.cross_entropy(t_logits, t_target)
            return torch.autograd.grad(loss, t_logits)

    shape = f"N={n} C={c}"
    fwd_bytes = n * c * ITEM + 2 * n * 8  # logits in; int64 targets in, float64 lse out
    bwd_bytes = 2 * n * c * ITEM + 2 * n * 8  # logits in, dlogits out; targets, lse in
    # What each of gpugrad's rows is paired against: NumPy, CuPy and PyTorch doing the same.
    fwd_baselines = (
        lambda: ce_forward_composition(np, logits_h, target_h),
        lambda: ce_forward_composition(xp, logits, target),
        torch_fwd,
    )
    bwd_baselines = (
        lambda: ce_backward_composition(np, log_probs_h, target_h),
        lambda: ce_backward_composition(xp, log_probs, target),
        torch_bwd,
    )
    both = fwd_bytes + bwd_bytes
    return [
        Case("cross_entropy", "forward", s.scale, shape, fwd_bytes,
             s.contenders(ours_fwd, *fwd_baselines)),
        Case("cross_entropy", "backward", s.scale, shape, bwd_bytes,
             s.contenders(ours_bwd, *bwd_baselines)),
        Case("cross_entropy", "forward+backward", s.scale, shape, both, s.contenders(
            ours_fwd_bwd,
            lambda: composition_fwd_bwd(np, logits_h, target_h),
            lambda: composition_fwd_bwd(xp, logits, target),
            torch_fwd_bwd,
        )),
        Case("cross_entropy", "forward, kernel only", s.scale, shape, fwd_bytes,
             s.contenders(launch_fwd, *fwd_baselines)),
        Case("cross_entropy", "backward, kernel only", s.scale, shape, bwd_bytes,
             s.contenders(launch_bwd, *bwd_baselines)),
    ]  # fmt: skip


def cross_entropy_kernel_args(xp, logits, target, lse, total_weight, weight=None,
                              ignore_index=-100, label_smoothing=0.0):
    """(forward arguments, backward extras) for gpugrad's two cross-entropy kernels, built by
    the dispatchers' own helpers from the forward's `lse` and `total_weight`, for the 'mean'
    reduction and an incoming gradient of 1."""
    from gpugrad.kernels import loss as L

    args = L._kernel_args(xp, logits, target, weight, ignore_index, label_smoothing)
    gloss = xp.asarray(np.asarray(1.0, logits.dtype))
    extras = L._backward_kernel_args(xp, lse, gloss, "mean", total_weight, logits.dtype)
    return args, extras


def cross_entropy_kernel_launches(xp, device, args, extras):
    """(forward, backward): gpugrad's two cross-entropy kernels alone, launched as the
    dispatchers launch them on arguments from cross_entropy_kernel_args."""
    from gpugrad.kernels import _launch
    from gpugrad.kernels import loss as L

    logits = args[0]
    n, c = logits.shape
    outs = tuple(xp.empty(n, logits.dtype) for _ in range(4))
    lse_hi, lse_lo, scale = extras
    gx = xp.empty((n, c), logits.dtype)
    if device == "cuda":
        from gpugrad.kernels import loss_cuda

        first_bad = xp.full(1, n, np.int64)  # the kernel's label check: stays n (labels are good)

        def forward():
            loss_cuda.softmax_cross_entropy_forward(*args, *outs, first_bad, device)

        def backward():
            loss_cuda.softmax_cross_entropy_backward(*args, lse_hi, lse_lo, scale, gx, device)

    else:

        def forward():
            _launch.run_cpu_twin(L._softmax_cross_entropy_forward_cpu, logits.size, *args, *outs)

        def backward():
            _launch.run_cpu_twin(L._softmax_cross_entropy_backward_cpu, gx.size, *args, lse_hi,
                                 lse_lo, scale, gx)

    return forward, backward


def conv_cases(s: Setup) -> list:
    import gpugrad as gg
    from gpugrad import backend
    from gpugrad import kernels as K

    xp, device, torch = s.xp, s.device, s.torch
    n, c, h, w, f = s.size("conv")
    geo = ((3, 3), (1, 1), (1, 1), (1, 1))
    x_h = s.rng.standard_normal((n, c, h, w)).astype(DTYPE)
    w_h = (s.rng.standard_normal((f, c, 3, 3)) * 0.1).astype(DTYPE)
    gy_h = s.rng.standard_normal((n, f, h, w)).astype(DTYPE)
    x, wt, gy = (xp.asarray(a) for a in (x_h, w_h, gy_h))
    with K.reference_mode():
        cols = K.im2col(x, *geo, device=device)
    cols_h = backend.to_numpy(cols)

    def ours_unfold(a):
        return K.im2col(a, *geo, device=device)

    def ours_fold(a):
        return K.col2im(a, h, w, *geo[1:], device=device)

    def reference_unfold(a):
        return K.im2col_reference(a, *geo)

    # gpugrad's conv2d as a user calls it: through the tape, gradients for input and weight.
    g_x = gg.tensor(x, device=device, requires_grad=True)
    g_w = gg.tensor(wt, device=device, requires_grad=True)
    g_gy = gg.tensor(gy, device=device)

    def ours_conv():
        y = gg.nn.functional.conv2d(g_x, g_w, padding=1)
        return gg.autograd.grad(y, (g_x, g_w), g_gy)

    # The same call with the algorithm switch on im2col + GEMM (on the CPU "auto" picks
    # Winograd F(2x2, 3x3) for this 3x3 stride-1 layer; on a GPU both rows are im2col).
    def ours_conv_im2col():
        with K.conv_algorithm_mode("im2col"):
            return ours_conv()

    def reference_fold(a):
        return K.col2im_reference(a, h, w, *geo[1:])

    torch_unfold = torch_fold = torch_conv = None
    if torch is not None:
        F = torch.nn.functional
        t_x, t_w = s.tensor(x_h, requires_grad=True), s.tensor(w_h, requires_grad=True)
        t_gy = s.tensor(gy_h)
        t_cols = s.tensor(cols_h.reshape(n, c * 9, h * w))

        def torch_unfold():
            return F.unfold(t_x.detach(), 3, padding=1)

        def torch_fold():
            return F.fold(t_cols, (h, w), 3, padding=1)

        def torch_conv():
            y = F.conv2d(t_x, t_w, padding=1)
            return torch.autograd.grad(y, (t_x, t_w), t_gy)

    image_bytes = n * c * h * w * ITEM
    cols_bytes = cols_h.size * ITEM
    shape = f"N={n} C={c} {h}x{w} k3 p1"
    return [
        Case("im2col", "forward", s.scale, shape, image_bytes + cols_bytes, s.contenders(
            lambda: ours_unfold(x),
            lambda: reference_unfold(x_h),
            lambda: reference_unfold(x),
            torch_unfold,
        )),
        Case("col2im", "forward", s.scale, shape, image_bytes + cols_bytes, s.contenders(
            lambda: ours_fold(cols),
            lambda: reference_fold(cols_h),
            lambda: reference_fold(cols),
            torch_fold,
        )),
        Case("conv2d", "forward+backward", s.scale, f"{shape} F={f}", None, s.contenders(
            ours_conv,
            lambda: conv_im2col_gemm(np, reference_unfold, reference_fold, x_h, w_h, gy_h),
            lambda: conv_im2col_gemm(xp, reference_unfold, reference_fold, x, wt, gy),
            torch_conv,
        )),
        Case("conv2d_im2col", "forward+backward", s.scale, f"{shape} F={f}", None, s.contenders(
            ours_conv_im2col,
            lambda: conv_im2col_gemm(np, reference_unfold, reference_fold, x_h, w_h, gy_h),
            lambda: conv_im2col_gemm(xp, reference_unfold, reference_fold, x, wt, gy),
            torch_conv,
        )),
    ]  # fmt: skip


def relu_cases(s: Setup) -> list:
    from gpugrad import kernels as K

    xp, device, torch = s.xp, s.device, s.torch
    (size,) = s.size("relu")
    v_h = s.rng.standard_normal(size).astype(DTYPE)
    g_h = s.rng.standard_normal(size).astype(DTYPE)
    v, g = xp.asarray(v_h), xp.asarray(g_h)
    y_h, y = np.maximum(v_h, 0), xp.maximum(v, 0)

    torch_fwd = torch_bwd = torch_fwd_bwd = None
    if torch is not None:
        threshold_backward = torch.ops.aten.threshold_backward
        t_v, t_g = s.tensor(v_h), s.tensor(g_h)
        t_y = torch.relu(t_v)

        def torch_fwd():
            return torch.relu(t_v)

        def torch_bwd():
            return threshold_backward(t_g, t_y, 0)

        def torch_fwd_bwd():
            return threshold_backward(t_g, torch.relu(t_v), 0)

    shape = f"{size} floats"
    return [
        Case("relu", "forward", s.scale, shape, 2 * size * ITEM, s.contenders(
            lambda: K.relu_forward(v, device=device),
            lambda: np.maximum(v_h, 0),
            lambda: xp.maximum(v, 0),
            torch_fwd,
        )),
        Case("relu", "backward", s.scale, shape, 3 * size * ITEM, s.contenders(
            lambda: K.relu_backward(y, g, device=device),
            lambda: g_h * (y_h > 0),
            lambda: g * (y > 0),
            torch_bwd,
        )),
        Case("relu", "forward+backward", s.scale, shape, 5 * size * ITEM, s.contenders(
            lambda: K.relu_backward(K.relu_forward(v, device=device), g, device=device),
            lambda: g_h * (np.maximum(v_h, 0) > 0),
            lambda: g * (xp.maximum(v, 0) > 0),
            torch_fwd_bwd,
        )),
    ]  # fmt: skip


# ----------------------------------------------------------------------------- copy bandwidth


def measure_copy_bandwidth(device: str, scale: str, rounds: int, sync, number: int = 1) -> dict:
    """GB/s of a large array copy (read + write) on this device, the bar for memory-bound kernels.

    Two bars: a copy into an existing array (the peak), and a copy that returns a new array,
    which pays for faulting in fresh pages as every kernel that returns a new array does. On the
    CPU a single-threaded NumPy copy and a Numba copy on all threads both run and the better one
    sets each bar. The array matches the ReLU case of `scale` (the largest of the run), so both
    see the same caches.
    """
    from gpugrad import backend

    (size,) = SIZES["relu"][scale]
    if device == "cuda":
        cp = backend.cupy_module()
        src = cp.ones(size, DTYPE)
        dst = cp.empty_like(src)
        existing = {"cupy copyto": lambda: cp.copyto(dst, src)}
        new = {"cupy copy": lambda: src.copy()}
    else:
        src = np.ones(size, DTYPE)
        dst = np.empty_like(src)
        parallel_copy = _numba_parallel_copy()
        existing = {
            "numpy copyto": lambda: np.copyto(dst, src),
            "numba parallel copy": lambda: parallel_copy(src, dst),
        }
        new = {
            "numpy copy": lambda: src.copy(),
            "numba parallel copy": lambda: parallel_copy(src, np.empty_like(src)),
        }
    nbytes = 2 * src.nbytes
    return {
        "into_existing_array": common.copy_bandwidth(existing, nbytes, rounds, sync, number),
        "into_new_array": common.copy_bandwidth(new, nbytes, rounds, sync, number),
    }


def _numba_parallel_copy():
    from numba import njit, prange

    @njit(parallel=True)
    def copy(src, dst):
        for i in prange(src.shape[0]):
            dst[i] = src[i]

    return copy


# ----------------------------------------------------------------------------- launch overhead


def measure_launch_overhead(calls: int = 2000) -> dict:
    """Microseconds per call on a 1-element CuPy array: gpugrad's dispatcher, its launch helper
    through each launcher (CuPy's driver call on Numba's cubin, the default; Numba's own), a
    bare Numba launch (which synchronizes on the CuPy stream it imports), and a CuPy ufunc."""
    from numba import cuda

    from gpugrad import backend
    from gpugrad.kernels import activation, activation_cuda, config

    cp = backend.cupy_module()
    tiny = cp.ones(1, DTYPE)
    out = cp.empty_like(tiny)
    stream = cuda.external_stream(cp.cuda.get_current_stream().ptr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Numba's low-occupancy warning for a 1-block grid
        raw_launch = activation_cuda.relu_forward_kernel[1, 32, stream]

    def numba_launcher():
        with config.cuda_launcher_mode("numba"):
            activation_cuda.relu_forward(tiny, out, "cuda")

    fns = {
        "gpugrad relu_forward (checks + alloc + launch)": lambda: activation.relu_forward(
            tiny, device="cuda"
        ),
        "gpugrad launch helper, CuPy launcher (default)": lambda: activation_cuda.relu_forward(
            tiny, out, "cuda"
        ),
        "gpugrad launch helper, Numba launcher (as_cuda_array, no sync)": numba_launcher,
        "numba kernel on raw CuPy arrays (syncs the stream)": lambda: raw_launch(tiny, out),
        "cupy ufunc (maximum, out=)": lambda: cp.maximum(tiny, 0, out=out),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        samples = common.paired_rounds(fns, rounds=5, number=calls, sync=backend.synchronize)
    return {name: common.median(s) * 1e6 for name, s in samples.items()}


# ----------------------------------------------------------------------------- targets


def _row(results: list, kernel: str, phase: str, scale: str):
    for r in results:
        if r["kernel"] == kernel and r["phase"] == phase and r["scale"] == scale:
            return r
    return None


def _goal(name, value, goal, ok) -> dict:
    return {"target": name, "value": value, "goal": goal, "met": bool(ok)}


def evaluate_targets(results: list) -> list:
    """The goals set for this work on the CPU, checked against the "full"-scale rows."""
    goals = []

    def speedup(r, other):
        return r["speedup"].get(f"vs_{other}") if r else None

    for kernel, phase in [("cross_entropy", "forward+backward"), ("im2col", "forward"),
                          ("col2im", "forward")]:  # fmt: skip
        r = _row(results, kernel, phase, "full")
        s = speedup(r, "numpy")
        if s is not None:
            goals.append(_goal(f"{kernel} {phase}: speedup vs NumPy", s, ">= 2", s >= 2))
        s = speedup(r, "torch")
        if s is not None:
            goals.append(_goal(f"{kernel} {phase}: speedup vs PyTorch", s, ">= 1", s >= 1))
    for kernel in ("conv2d", "relu"):
        s = speedup(_row(results, kernel, "forward+backward", "full"), "torch")
        if s is not None:
            goals.append(_goal(f"{kernel} forward+backward: speedup vs PyTorch", s, ">= 1",
                               s >= 1))
    r = _row(results, "relu", "forward+backward", "full")
    ours = r["contenders"]["gpugrad"] if r is not None else {}
    # Both bars: ReLU returns new arrays, so it pays the page faults a copy into a new array
    # pays; a copy into an existing array is the machine's peak.
    for key, bar in [("pct_new_array_copy_bandwidth", "a copy into a new array"),
                     ("pct_copy_bandwidth", "a copy into an existing array")]:  # fmt: skip
        if key in ours:
            goals.append(_goal(f"relu forward+backward: % of {bar}", ours[key], ">= 50",
                               ours[key] >= 50))
    return goals


# The GPU goals: % of the device's copy bandwidth (into an existing array) at the large scale.
GPU_BANDWIDTH_GOALS = [
    ("cross_entropy", "forward", 70),
    ("cross_entropy", "backward", 70),
    ("cross_entropy", "forward+backward", 70),
    ("cross_entropy", "forward, kernel only", 70),
    ("cross_entropy", "backward, kernel only", 70),
    ("relu", "backward", 70),
    ("im2col", "forward", 50),
]


def evaluate_gpu_targets(results: list) -> list:
    """The GPU goals, checked against the "large"-scale rows."""
    goals = []
    for kernel, phase, pct in GPU_BANDWIDTH_GOALS:
        r = _row(results, kernel, phase, "large")
        if r is None:
            continue
        value = r["contenders"]["gpugrad"]["pct_copy_bandwidth"]
        goals.append(_goal(f"{kernel} {phase} ({r['shape']}): % of copy bandwidth", value,
                           f">= {pct}", value >= pct))
    return goals


# ----------------------------------------------------------------------------- report


def run_cases(cases: list, rounds: int, copy: dict, sync, number: int = 1) -> list:
    """Time every case in interleaved paired rounds (`number` calls per sample); one result row
    per case."""
    groups = {k: case.fns for k, case in enumerate(cases)}
    all_samples = common.interleaved_rounds(groups, rounds, number, warmup=WARMUP, sync=sync)
    return [summarize_case(case, all_samples[k], copy) for k, case in enumerate(cases)]


def summarize_case(case: Case, samples: dict, copy: dict) -> dict:
    bars = (copy["into_existing_array"]["best"], copy["into_new_array"]["best"])
    contenders = {name: common.summarize(s, case.nbytes, *bars) for name, s in samples.items()}
    speedup = {
        f"vs_{name}": common.paired_ratio(samples, name, "gpugrad")
        for name in samples
        if name != "gpugrad"
    }
    return {
        "kernel": case.kernel,
        "phase": case.phase,
        "scale": case.scale,
        "shape": case.shape,
        "dtype": np.dtype(DTYPE).name,
        "bytes": case.nbytes,
        "contenders": contenders,
        "speedup": speedup,
    }


def format_report(report: dict) -> str:
    names = ["gpugrad", "numpy", "cupy", "torch"]
    present = [n for n in names if any(n in r["contenders"] for r in report["results"])]
    header = ["kernel", "phase", "scale", "shape"]
    header += [f"{n} ms" for n in present]
    header += ["gpugrad GB/s", "% copy", "% new-array copy"]
    header += [f"x vs {n}" for n in present[1:]]
    rows = []
    for r in report["results"]:
        ours = r["contenders"]["gpugrad"]
        row = [r["kernel"], r["phase"], r["scale"], r["shape"]]
        row += [r["contenders"].get(n, {}).get("median_ms", "-") for n in present]
        row += [ours.get("gbps", "-"), ours.get("pct_copy_bandwidth", "-")]
        row += [ours.get("pct_new_array_copy_bandwidth", "-")]
        row += [r["speedup"].get(f"vs_{n}", "-") for n in present[1:]]
        rows.append(row)
    lines = [common.format_table(header, rows)]
    for kind, bw in report["copy_bandwidth_gbps"].items():
        lines.append(
            f"copy bandwidth {kind.replace('_', ' ')} (GB/s, read+write): "
            + ", ".join(f"{k} {v:.1f}" for k, v in bw.items() if k != "bytes")
        )
    if report.get("launch_overhead_us"):
        lines.append("launch overhead (us/call):")
        lines += [f"  {k}: {v:.1f}" for k, v in report["launch_overhead_us"].items()]
    if report.get("targets"):
        lines.append("targets:")
        for t in report["targets"]:
            mark = "met" if t["met"] else "MISSED"
            lines.append(f"  {t['target']}: {t['value']:.2f} (goal {t['goal']}) {mark}")
    return "\n".join(lines)


def plot(report: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    names = [n for n in ("gpugrad", "numpy", "cupy", "torch")
             if any(n in r["contenders"] for r in results)]  # fmt: skip
    labels = [f"{r['kernel']} {r['phase']}\n{r['shape']}" for r in results]
    fig, ax = plt.subplots(figsize=(10, 0.25 * len(results) * len(names) + 1.5))
    height = 0.8 / len(names)
    for k, name in enumerate(names):
        ms = [r["contenders"].get(name, {}).get("median_ms", np.nan) for r in results]
        ypos = np.arange(len(results)) + k * height
        ax.barh(ypos, ms, height=height, label=name)
    ax.set_yticks(np.arange(len(results)) + 0.4 - height / 2)
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median time per call (ms, log scale; shorter is faster)")
    info = report["machine"]
    ax.set_title(
        f"gpugrad kernels on {report['device']} ({info.get('processor', '')}, "
        f"{info.get('numba_threads')} threads), float32"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _import_torch(device: str, threads: int):
    try:
        import torch
    except ImportError:
        return None, None
    torch.set_num_threads(threads)
    if device == "cuda":
        if not torch.cuda.is_available():
            return None, None
        return torch, "cuda"
    return torch, "cpu"


def main(argv=None) -> int:
    parser = OneLineParser(
        prog="gpugrad bench kernels", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="small sizes, 3 rounds (smoke test)")
    parser.add_argument("--rounds", type=int, default=None, help="paired rounds per case")
    parser.add_argument("--out", default=None, help="results folder (default bench/results)")
    args = parser.parse_args(argv)

    # Before numba's threading layer or torch load their OpenMP runtimes (see the docstring).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import numba

    from gpugrad import backend

    device = args.device
    if device == "cuda" and not backend.cuda_is_available():
        print(f"bench kernels: {backend.cuda_unavailable_reason()}", file=sys.stderr)
        return 2
    if device == "cuda" and backend.uses_simulated_cuda():
        print("bench kernels: refusing to time the CUDA simulator", file=sys.stderr)
        return 2
    rounds = args.rounds or ROUNDS[1 if args.quick else 0]
    threads = numba.get_num_threads()
    torch, torch_device = _import_torch(device, threads)
    if device == "cuda":

        def sync():
            backend.synchronize()
            if torch is not None:
                torch.cuda.synchronize()

    else:
        sync = None

    if args.quick:
        scales = ["quick"]
    elif device == "cuda":
        scales = ["full", "large"]
    else:
        scales = ["full"]
    number = GPU_CALLS_PER_SAMPLE if device == "cuda" else 1
    load_before = common.load_average()
    copy = measure_copy_bandwidth(device, scales[-1], max(rounds, 5), sync, number)
    rng = np.random.default_rng(0)
    cases = []
    for scale in scales:
        xp = backend.cupy_module() if device == "cuda" else np
        cases += build_cases(Setup(device, scale, xp, torch, torch_device, rng))
    results = run_cases(cases, rounds, copy, sync, number)
    report = {
        "benchmark": "kernels",
        "device": device,
        "quick": args.quick,
        "scales": scales,
        "rounds": rounds,
        "calls_per_sample": number,
        "machine": common.machine_info(
            load_average_before=load_before, omp_wait_policy=os.environ["OMP_WAIT_POLICY"]
        ),
        "copy_bandwidth_gbps": copy,
        "results": results,
    }
    if device == "cuda":
        report["gpu"] = common.gpu_info()
        report["launch_overhead_us"] = measure_launch_overhead()
        report["targets"] = evaluate_gpu_targets(results)
    elif not args.quick:
        report["targets"] = evaluate_targets(results)
    json_path = common.write_json(common.results_path("kernels", device, args.out), report)
    png_path = common.results_path("kernels", device, args.out, suffix=".png")
    plot(report, png_path)
    print(format_report(report))
    print(f"wrote {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
