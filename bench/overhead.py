"""Per-op overhead: forward+backward of a chain of ops on tiny tensors, gpugrad vs PyTorch CPU.

On tiny tensors the arithmetic is free, so the time is the framework's own: building tape
nodes, dispatch, Python. Paired rounds in one process (gpugrad then PyTorch, alternately),
medians and the ratio. Usage: gpugrad bench overhead [--rounds N] [--size S] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def chain(x, w, b):
    """Twelve recorded ops: the mix of a small MLP layer plus some element-wise math."""
    y = x @ w
    y = y + b
    y = y.relu()
    y = y * 0.5
    y = y.tanh()
    y = y - 0.1
    y = y.exp()
    y = y * y
    y = y.sqrt()
    y = y.sum(dim=1)
    y = y.log()
    return y.mean()


N_OPS = 12


def _inputs(lib, size, rng):
    arrays = [rng.standard_normal((size, size)).astype(np.float32),
              rng.standard_normal((size, size)).astype(np.float32),
              rng.standard_normal(size).astype(np.float32)]
    return [lib.tensor(a, requires_grad=True) for a in arrays]


def _step(xs):
    for x in xs:
        x.grad = None
    chain(*xs).backward()


def _time_block(xs, iters):
    start = time.perf_counter()
    for _ in range(iters):
        _step(xs)
    return (time.perf_counter() - start) / iters


def paired_rounds(fns: dict, rounds: int) -> dict:
    """Run each timed function once per round, alternating; returns every sample per name."""
    samples = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(fn())
    return samples


def run(rounds=15, iters=200, size=8):
    import gpugrad as gg

    rng = np.random.default_rng(0)
    fns = {"gpugrad": (lambda xs=_inputs(gg, size, rng): _time_block(xs, iters))}
    try:
        import torch

        torch.set_num_threads(1)
        fns["torch"] = lambda xs=_inputs(torch, size, rng): _time_block(xs, iters)
    except ImportError:
        torch = None
    for fn in fns.values():  # warm-up (first calls compile / allocate)
        fn()
    samples = paired_rounds(fns, rounds)
    result = {
        "benchmark": "per-op overhead (forward+backward, tiny tensors)",
        "size": size, "ops_per_step": N_OPS, "rounds": rounds, "iters_per_round": iters,
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__ if torch else None,
    }
    for name, times in samples.items():
        med = float(np.median(times))
        result[name] = {"step_us": med * 1e6, "per_op_us": med * 1e6 / N_OPS}
    if "torch" in result:
        result["ratio_gpugrad_over_torch"] = (result["gpugrad"]["step_us"]
                                              / result["torch"]["step_us"])
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="gpugrad bench overhead", description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    result = run(args.rounds, args.iters, args.size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "overhead-cpu.json").write_text(json.dumps(result, indent=2))
    print(f"{'':10}{'step (us)':>12}{'per op (us)':>14}")
    for name in ("gpugrad", "torch"):
        if name in result:
            print(f"{name:10}{result[name]['step_us']:12.1f}{result[name]['per_op_us']:14.2f}")
    if "ratio_gpugrad_over_torch" in result:
        print(f"ratio gpugrad/torch: {result['ratio_gpugrad_over_torch']:.2f}x")
    return 0
