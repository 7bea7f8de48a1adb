"""conv2d forward+backward on the CPU: each algorithm against PyTorch, over typical 3x3 layers.

``gpugrad bench conv [--quick] [--rounds N] [--out DIR] [--passes]``

For every shape, ``y = conv2d(x, w, padding=1)`` then the gradients of x and w through autograd,
float32, under the algorithm switch's three settings ("auto", "im2col", "winograd"), Winograd
with every pass over the whole batch ("winograd-whole") and with every pass block by block
("winograd-blocked", see ops/conv_winograd.py), and in PyTorch; and the forward alone (no
autograd), "auto" against PyTorch's, which tells the forward's share of a speedup from the
gradients'. Paired rounds in one process (the order rotates every round), medians, and
speedups as medians of per-round ratios. This is the measurement behind "auto"'s choice
(Winograd for 3x3 stride-1 layers with at least ops.conv.WINOGRAD_MIN_CHANNELS channels in and
out); the row for an RGB first layer shows why that threshold exists. Writes
bench/results/conv-cpu.json.

``--passes`` times Winograd's two ways to run a pass instead, blocked against whole-batch, over
80 layer shapes (1 to 256 images, 3x3 to 224x224 outputs, 8 to 256 channels): the measurement
behind the rule that picks between them (ops/conv_winograd.py). Writes conv-passes-cpu.json.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from gpugrad.bench import common
from gpugrad.cli_parser import OneLineParser

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


def _passes_shapes():
    """(N, C=filters, H=W) for `--passes`: one to 64 images of 7x7 to 56x56 outputs with 8 to
    128 channels (at most about 13 M input numbers, a few seconds a round; and no batch of 64
    under 400 k, which the batches of 8 cover), then larger images, outputs of a tile or two,
    a batch of 256 and 256 channels. Filters = channels: the rule looks at both counts."""
    shapes = [(n, c, h) for c in (8, 16, 32, 64, 96, 128) for h in (7, 14, 28, 56)
              for n in (1, 8, 64) if n * c * h * h <= 13_000_000
              and not (n == 64 and n * c * h * h < 400_000)]
    return shapes + [(1, 16, 112), (4, 16, 112), (1, 64, 112), (1, 8, 224), (2, 96, 56),
                     (2, 32, 112), (4, 32, 112), (8, 8, 224), (2, 64, 112), (4, 64, 112),
                     (2, 16, 224), (64, 32, 4), (64, 64, 5), (8, 16, 4), (64, 16, 3),
                     (256, 8, 7), (8, 256, 14)]


QUICK_PASSES_SHAPES = [(2, 8, 6), (1, 16, 4)]


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

    def blocked():
        with conv_winograd.blocked_passes():
            return winograd()

    fns["winograd-blocked"] = blocked

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
                "blocked_vs_whole_batch": common.paired_ratio(samples, "winograd-whole",
                                                              "winograd-blocked"),
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


def run_passes(quick=False, rounds=None) -> dict:
    """Winograd's blocked passes against its whole-batch ones, forward + both gradients through
    autograd, on every shape of _passes_shapes(): the measurement behind _blocked's rule."""
    import gpugrad as gg
    from gpugrad import kernels
    from gpugrad.kernels import conv_winograd_blocked
    from gpugrad.ops import conv_winograd

    rounds = rounds or (3 if quick else 7)
    rng = np.random.default_rng(0)
    rows = []
    for n, c, h in QUICK_PASSES_SHAPES if quick else _passes_shapes():
        x = gg.tensor(rng.standard_normal((n, c, h, h)).astype(np.float32), requires_grad=True)
        w = gg.tensor((rng.standard_normal((c, c, 3, 3)) * 0.1).astype(np.float32),
                      requires_grad=True)
        gy = gg.tensor(rng.standard_normal((n, c, h, h)).astype(np.float32))

        def step(passes, x=x, w=w, gy=gy):
            def fn():
                with kernels.conv_algorithm_mode("winograd"), passes():
                    y = gg.nn.functional.conv2d(x, w, padding=1)
                    return gg.autograd.grad(y, (x, w), gy)
            return fn

        samples = common.paired_rounds({"blocked": step(conv_winograd.blocked_passes),
                                        "whole": step(conv_winograd.whole_batch_passes)},
                                       rounds, warmup=3)
        per_image = conv_winograd_blocked.image_bytes(c, c, (h, h), 4)
        rows.append({
            "shape": {"n": n, "c": c, "hw": h, "filters": c},
            "image_bytes": per_image,
            "blocks": len(conv_winograd_blocked.block_bounds(n, per_image)),
            "auto_blocked": _winograd_passes((n, c, h, c)) == "blocked",
            "median_ms": {name: common.median(v) * 1e3 for name, v in samples.items()},
            "blocked_vs_whole": common.paired_ratio(samples, "whole", "blocked"),
        })
    return {
        "benchmark": "Winograd conv2d 3x3 stride 1 padding 1, blocked against whole-batch "
                     "passes, forward + input and weight gradients through autograd, float32, "
                     "CPU",
        "rounds": rounds,
        "quick": quick,
        "machine": common.machine_info(omp_wait_policy=os.environ.get("OMP_WAIT_POLICY")),
        "results": rows,
    }


def format_passes_report(report: dict) -> str:
    header = ["N C=F HxW", "tile bytes/image", "blocks", "auto blocked", "blocked ms",
              "whole ms", "blocked/whole"]
    rows = [[f"{r['shape']['n']} {r['shape']['c']} {r['shape']['hw']}x{r['shape']['hw']}",
             r["image_bytes"], r["blocks"], "yes" if r["auto_blocked"] else "no",
             r["median_ms"]["blocked"], r["median_ms"]["whole"], r["blocked_vs_whole"]]
            for r in report["results"]]
    return common.format_table(header, rows)


def format_report(report: dict) -> str:
    header = ["N C HxW F", "auto picks", "winograd passes", "auto ms", "im2col ms",
              "winograd ms", "whole-batch ms", "blocked ms", "torch ms", "wino/im2col",
              "wino/whole", "blocked/whole", "auto vs torch", "auto fwd vs torch"]
    rows = []
    for r in report["results"]:
        s, ms, sp = r["shape"], r["median_ms"], r["speedup"]
        rows.append([
            f"{s['n']} {s['c']} {s['hw']}x{s['hw']} {s['filters']}", r["auto_picks"],
            r["winograd_passes"], ms["auto"], ms["im2col"], ms["winograd"],
            ms["winograd-whole"], ms["winograd-blocked"], ms.get("torch", "-"),
            sp["winograd_vs_im2col"], sp["winograd_vs_whole_batch"],
            sp["blocked_vs_whole_batch"], sp.get("auto_vs_torch", "-"),
            sp.get("auto_forward_vs_torch", "-"),
        ])
    return common.format_table(header, rows)


def main(argv=None) -> int:
    parser = OneLineParser(prog="gpugrad bench conv", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two tiny shapes, 3 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="paired rounds per shape")
    parser.add_argument("--out", default=str(common.RESULTS_DIR), help="results folder")
    parser.add_argument("--passes", action="store_true",
                        help="Winograd's blocked against its whole-batch passes over a grid "
                             "of layer shapes instead (writes conv-passes-cpu.json)")
    args = parser.parse_args(argv)
    if args.passes:
        report = run_passes(args.quick, args.rounds)
        path = common.write_json(os.path.join(args.out, "conv-passes-cpu.json"), report)
        print(format_passes_report(report))
        print(f"wrote {path}")
        return 0
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
