"""conv2d forward+backward on the CPU: each algorithm against PyTorch, over typical 3x3 layers.

``gpugrad bench conv [--quick] [--rounds N] [--out DIR]``

For every shape, ``y = conv2d(x, w, padding=1)`` then the gradients of x and w through autograd,
float32, under the algorithm switch's three settings ("auto", "im2col", "winograd"), Winograd
with its blocked passes switched off ("winograd-whole": every pass over the whole batch, see
ops/conv_winograd.py) and in PyTorch; and the forward alone (no autograd), "auto" against
PyTorch's, which tells the forward's share of a speedup from the gradients'. Paired rounds in
one process (the order rotates every round), medians, and speedups as medians of per-round
ratios. This is the measurement behind "auto"'s choice (Winograd for 3x3
stride-1 layers with at least ops.conv.WINOGRAD_MIN_CHANNELS channels in and out) and behind
the choice between Winograd's blocked and whole-batch passes; the row for an RGB first layer
shows why the first threshold exists. Writes bench/results/conv-cpu.json.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from gpugrad.bench import common

# (N, C, H=W, filters): 3x3, stride 1, padding 1.
SHAPES = [
    (64, 3, 32, 16),  # an RGB first layer: too few channels for Winograd
    (64, 8, 28, 8),
    (64, 16, 28, 16),
    (64, 32, 14, 64),  # the kernels bench's conv2d target
    (64, 64, 14, 64),
    (32, 128, 7, 128),  # a 7x7 map: odd, so a quarter of Winograd's last tiles is wasted
    (8, 64, 56, 64),
    (1, 64, 56, 64),  # one image
]
QUICK_SHAPES = [(2, 8, 6, 8), (2, 3, 5, 4), (2, 16, 8, 16)]
ALGORITHMS = ("auto", "im2col", "winograd")


def _contenders(shape, rng, torch):
    import gpugrad as gg
    from gpugrad import kernels
    from gpugrad.ops import conv_winograd

    n, c, h, f = shape
    x = rng.standard_normal((n, c, h, h)).astype(np.float32)
    w = (rng.standard_normal((f, c, 3, 3)) * 0.1).astype(np.float32)
    gy = rng.standard_normal((n, f, h, h)).astype(np.float32)
    g_x, g_w = gg.tensor(x, requires_grad=True), gg.tensor(w, requires_grad=True)
    g_gy = gg.tensor(gy)

    def ours(algorithm):
        def step():
            with kernels.conv_algorithm_mode(algorithm):
                y = gg.nn.functional.conv2d(g_x, g_w, padding=1)
                return gg.autograd.grad(y, (g_x, g_w), g_gy)
        return step

    fns = {name: ours(name) for name in ALGORITHMS}
    winograd = fns["winograd"]

    def whole():
        with conv_winograd.whole_batch_passes():
            return winograd()

    fns["winograd-whole"] = whole

    def ours_forward():
        with gg.no_grad():
            return gg.nn.functional.conv2d(g_x, g_w, padding=1)

    fns["auto-forward"] = ours_forward
    if torch is not None:
        t_x, t_w = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        t_gy = torch.tensor(gy)

        def theirs():
            y = torch.nn.functional.conv2d(t_x, t_w, padding=1)
            return torch.autograd.grad(y, (t_x, t_w), t_gy)

        fns["torch"] = theirs

        def theirs_forward():
            with torch.no_grad():
                return torch.nn.functional.conv2d(t_x, t_w, padding=1)

        fns["torch-forward"] = theirs_forward
    return fns


def _auto_choice(shape) -> str:
    """The algorithm "auto" picks for this layer on the CPU."""
    from gpugrad.ops import conv as conv_op

    n, c, h, f = shape
    geometry = ((3, 3), (1, 1), (1, 1), (1, 1), 1)
    return conv_op._choose_algorithm(geometry, "cpu", (n, c, h, h), (f, c, 3, 3)).NAME


def _winograd_passes(shape) -> str:
    """"blocked" or "whole batch": how the "winograd" setting runs this layer."""
    from gpugrad.ops import conv_winograd

    n, c, h, f = shape
    blocked = conv_winograd._blocked((n, c, h, h), (f, c, 3, 3), 1, (h, h), 4)
    return "blocked" if blocked else "whole batch"


def run(quick=False, rounds=None, torch=None) -> dict:
    rounds = rounds or (3 if quick else 15)
    rng = np.random.default_rng(0)
    rows = []
    for shape in QUICK_SHAPES if quick else SHAPES:
        samples = common.paired_rounds(_contenders(shape, rng, torch), rounds, warmup=3)
        row = {
            "shape": dict(zip(("n", "c", "hw", "filters"), shape)),
            "auto_picks": _auto_choice(shape),
            "winograd_passes": _winograd_passes(shape),
            "median_ms": {name: common.median(s) * 1e3 for name, s in samples.items()},
            # >1: the first is faster. Medians of per-round ratios.
            "speedup": {
                "winograd_vs_im2col": common.paired_ratio(samples, "im2col", "winograd"),
                "winograd_vs_whole_batch": common.paired_ratio(samples, "winograd-whole",
                                                               "winograd"),
            },
        }
        if torch is not None:
            for name in ALGORITHMS:
                row["speedup"][f"{name}_vs_torch"] = common.paired_ratio(samples, "torch", name)
            row["speedup"]["auto_forward_vs_torch"] = common.paired_ratio(
                samples, "torch-forward", "auto-forward")
        rows.append(row)
    return {
        "benchmark": "conv2d 3x3 stride 1 padding 1, forward + input and weight gradients "
                     "through autograd, float32, CPU",
        "rounds": rounds,
        "quick": quick,
        "machine": common.machine_info(omp_wait_policy=os.environ.get("OMP_WAIT_POLICY")),
        "results": rows,
    }


def format_report(report: dict) -> str:
    header = ["N C HxW F", "auto picks", "winograd passes", "auto ms", "im2col ms",
              "winograd ms", "whole-batch ms", "torch ms", "wino/im2col", "wino/whole",
              "auto vs torch", "auto fwd vs torch"]
    rows = []
    for r in report["results"]:
        s, ms, sp = r["shape"], r["median_ms"], r["speedup"]
        rows.append([
            f"{s['n']} {s['c']} {s['hw']}x{s['hw']} {s['filters']}", r["auto_picks"],
            r["winograd_passes"], ms["auto"], ms["im2col"], ms["winograd"],
            ms["winograd-whole"], ms.get("torch", "-"), sp["winograd_vs_im2col"],
            sp["winograd_vs_whole_batch"], sp.get("auto_vs_torch", "-"),
            sp.get("auto_forward_vs_torch", "-"),
        ])
    return common.format_table(header, rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="gpugrad bench conv", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two tiny shapes, 3 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="paired rounds per shape")
    parser.add_argument("--out", default=str(common.RESULTS_DIR), help="results folder")
    args = parser.parse_args(argv)
    # As in the kernels bench: passive OpenMP waiting for Numba's and PyTorch's pools alike.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import numba

    try:
        import torch

        torch.set_num_threads(numba.get_num_threads())  # the same cores for both
    except ImportError:
        torch = None
    report = run(args.quick, args.rounds, torch)
    path = common.write_json(os.path.join(args.out, "conv-cpu.json"), report)
    print(format_report(report))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
