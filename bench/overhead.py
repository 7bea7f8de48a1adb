"""Per-op overhead: forward+backward of a chain of ops on tiny tensors, gpugrad vs PyTorch CPU.

On tiny tensors the arithmetic is free, so the time is the framework's own: building tape
nodes, dispatch, Python. Paired rounds in one process (gpugrad then PyTorch, alternately),
medians and the ratio. Usage: gpugrad bench overhead [--rounds N] [--size S] [--out DIR]
"""

from __future__ import annotations


import numpy as np

from gpugrad.bench import common
from gpugrad.cli_parser import OneLineParser


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


def run(rounds=15, iters=200, size=8):
    import gpugrad as gg

    rng = np.random.default_rng(0)
    gg_inputs = _inputs(gg, size, rng)
    fns = {"gpugrad": lambda: _step(gg_inputs)}
    try:
        import torch

        torch.set_num_threads(1)  # tiny tensors: threads only add overhead for PyTorch
        torch_inputs = _inputs(torch, size, rng)
        fns["torch"] = lambda: _step(torch_inputs)
    except ImportError:
        torch = None
    samples = common.paired_rounds(fns, rounds, number=iters, warmup=iters)
    result = {
        "benchmark": "per-op overhead (forward+backward, tiny tensors)",
        "size": size, "ops_per_step": N_OPS, "rounds": rounds, "iters_per_round": iters,
        "machine": common.machine_info(),
    }
    for name, times in samples.items():
        med = common.median(times)
        result[name] = {"step_us": med * 1e6, "per_op_us": med * 1e6 / N_OPS}
    if "torch" in samples:
        result["ratio_gpugrad_over_torch"] = common.paired_ratio(samples, "gpugrad", "torch")
    return result


def main(argv=None) -> int:
    parser = OneLineParser(prog="gpugrad bench overhead", description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--out", default=None, help="folder for the JSON (default bench/results)")
    args = parser.parse_args(argv)
    result = run(args.rounds, args.iters, args.size)
    path = common.write_json(common.results_path("overhead", "cpu", args.out), result)
    print(f"{'':10}{'step (us)':>12}{'per op (us)':>14}")
    for name in ("gpugrad", "torch"):
        if name in result:
            print(f"{name:10}{result[name]['step_us']:12.1f}{result[name]['per_op_us']:14.2f}")
    if "ratio_gpugrad_over_torch" in result:
        print(f"ratio gpugrad/torch: {result['ratio_gpugrad_over_torch']:.2f}x")
    print(f"wrote {path}")
    return 0
