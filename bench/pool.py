"""Max-pool forward+backward on LeNet's two pools: the pool kernels vs the old composite vs PyTorch.

Each step is ``y = max_pool2d(x, 2); y.backward(gy)`` through autograd, on the shapes of the
LeNet training step at batch 64: 64x32x28x28 and 64x64x14x14, float32. "composite" is the
implementation the kernels replaced (im2col with -inf padding, max over the window dim with its
argmax, scatter and col2im back), kept here as the baseline. Paired rounds in one process (the
order rotates each round; gpugrad.bench.common.paired_rounds), medians and the median of the
rounds' ratios. On ``--device cuda`` the same steps run on the GPU against PyTorch CUDA, each
sample timed between two synchronizations of both frameworks' streams.
Usage: gpugrad bench pool [--device cpu|cuda] [--quick] [--rounds N] [--iters N] [--threads N]
[--out DIR]. ``--quick`` (one tiny shape, 3 rounds of 1 call) writes pool-<device>-quick.json, so
a smoke run never replaces the recorded results.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gpugrad.bench.common import median, paired_ratio, paired_rounds, write_json
from gpugrad.cli_parser import OneLineParser

RESULTS = Path(__file__).resolve().parent / "results"

SHAPES = [(64, 32, 28, 28), (64, 64, 14, 14)]
QUICK_SHAPES = [(2, 3, 8, 8)]  # --quick: a smoke run (the CUDA simulator runs it in seconds)
KERNEL = 2


def composite_max_pool2d(x, k):
    """The old max_pool2d: windows by im2col (-inf padding), then MaxDim over them."""
    from gpugrad.ops.conv import im2col
    from gpugrad.ops.reduce import max as max_op

    n, c, h, w = x.shape
    cols = im2col(x.reshape(n * c, 1, h, w), (k, k), (k, k), (0, 0), (1, 1),
                  pad_value=float("-inf"))
    windows = cols.reshape(n, c, k * k, h // k, w // k)
    values, _ = max_op(windows, dim=2)
    return values


def _step(lib, pool, shape, rng, device="cpu"):
    """One forward+backward of `pool` through lib's autograd, on fresh random data."""
    x = lib.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True,
                   device=device)
    out_shape = (*shape[:2], shape[2] // KERNEL, shape[3] // KERNEL)
    gy = lib.tensor(rng.standard_normal(out_shape).astype(np.float32), device=device)

    def step():
        x.grad = None
        pool(x).backward(gy)

    return step


def run(rounds=11, iters=10, threads=None, device="cpu", shapes=SHAPES):
    import numba

    import gpugrad as gg
    from gpugrad import backend
    from gpugrad.ops.pool import max_pool2d

    from gpugrad.bench.common import gpu_info, machine_info

    rng = np.random.default_rng(0)
    try:
        import torch
    except ImportError:
        torch = None
    sync = None
    if device == "cuda":
        if not backend.cuda_is_available():
            reason = backend.cuda_unavailable_reason()
            raise SystemExit(f"gpugrad bench pool --device cuda: {reason}")
        if torch is not None and not (torch.cuda.is_available() and backend.cupy_module()):
            torch = None  # a CPU build of PyTorch (or the simulator) has no CUDA contender

        def sync():
            backend.synchronize()
            if torch is not None:
                torch.cuda.synchronize()
    if threads is not None:
        # The same core budget for both: Numba's parallel twins and PyTorch's intra-op pool.
        numba.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
    quick = shapes is not SHAPES
    result = {
        "benchmark": "max_pool2d k=2 forward+backward (autograd), "
                     + ("quick smoke shapes" if quick else "LeNet batch-64 shapes") + ", float32",
        "quick": quick,
        "rounds": rounds, "iters_per_round": iters,
        "machine": machine_info(omp_wait_policy=os.environ.get("OMP_WAIT_POLICY")),
        "device": device,
        "shapes": {},
    }
    if device == "cuda":
        result["gpu"] = gpu_info()
    for shape in shapes:
        fns = {
            "kernels": _step(gg, lambda x: max_pool2d(x, KERNEL), shape, rng, device),
            "composite": _step(gg, lambda x: composite_max_pool2d(x, KERNEL), shape, rng,
                               device),
        }
        if torch is not None:
            fns["torch"] = _step(torch, lambda x: torch.nn.functional.max_pool2d(x, KERNEL),
                                 shape, rng, device)
        # Each sample is `iters` steps back to back; the first call of each (compiling,
        # allocating) is a warm-up.
        samples = paired_rounds(fns, rounds, number=iters, warmup=1, sync=sync)
        entry = {name: median(times) * 1e3 for name, times in samples.items()}
        # Medians of the rounds' ratios: a burst of other work moves both sides of a round.
        if "torch" in entry:
            entry["ratio_kernels_over_torch"] = paired_ratio(samples, "kernels", "torch")
        entry["ratio_composite_over_kernels"] = paired_ratio(samples, "composite", "kernels")
        result["shapes"]["x".join(map(str, shape))] = entry
    return result


def main(argv=None) -> int:
    parser = OneLineParser(prog="gpugrad bench pool", description=__doc__)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="one tiny shape, 3 rounds of 1")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for Numba and PyTorch (default: their own defaults)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.quick:
        result = run(3, 1, args.threads, args.device, QUICK_SHAPES)
    else:
        result = run(args.rounds, args.iters, args.threads, args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = ("" if args.threads is None else f"-{args.threads}thread") + \
        ("-quick" if args.quick else "")
    write_json(out / f"pool-{args.device}{suffix}.json", result)
    print(f"{'shape':16}{'kernels ms':>12}{'composite ms':>14}{'torch ms':>10}{'k/torch':>9}")
    for shape, entry in result["shapes"].items():
        torch_ms = f"{entry['torch']:10.3f}" if "torch" in entry else f"{'-':>10}"
        ratio = (f"{entry['ratio_kernels_over_torch']:9.2f}" if "torch" in entry
                 else f"{'-':>9}")
        print(f"{shape:16}{entry['kernels']:12.3f}{entry['composite']:14.3f}{torch_ms}{ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
