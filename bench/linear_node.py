"""F.linear as one Linear node against the three nodes it replaced (transpose, matmul, add),
forward + backward, paired rounds in one process.

    python -m gpugrad.bench.linear_node [--rounds N] [--out DIR]

The old composition is rebuilt here from the same ops (ops.matmul of the transposed weight,
plus the bias), so both run on the same build. Writes linear-node-<device>.json.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from gpugrad.bench import common
from gpugrad.cli_parser import OneLineParser

# (batch, in_features, out_features): LeNet's two fully connected layers and a tiny one where
# only the per-node cost shows.
SHAPES = [(64, 3136, 128), (128, 128, 10), (8, 8, 8)]


def run(rounds=30, device="cpu"):
    import gpugrad as gg
    from gpugrad import ops

    rng = np.random.default_rng(0)
    results = {"benchmark": "linear node", "device": device, "rounds": rounds,
               "machine": common.machine_info(), "cases": []}
    for n, i, o in SHAPES:
        def param(*shape):
            return gg.tensor(rng.standard_normal(shape).astype(np.float32), device=device,
                             requires_grad=True)

        x, w, b = param(n, i), param(o, i), param(o)

        def three_nodes():
            x.grad = w.grad = b.grad = None
            (ops.matmul(x, ops.transpose(w, 0, 1)) + b).sum().backward()

        def one_node():
            x.grad = w.grad = b.grad = None
            ops.linear(x, w, b).sum().backward()

        number = 3 if i >= 1000 else 20
        samples = common.paired_rounds({"three_nodes": three_nodes, "one_node": one_node},
                                       rounds, number=number, warmup=3)
        case = {"shape": f"x ({n}, {i}), w ({o}, {i})"}
        for name, secs in samples.items():
            case[name] = common.summarize(secs)
        case["ratio_one_over_three"] = common.paired_ratio(samples, "one_node", "three_nodes")
        results["cases"].append(case)
    return results


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m gpugrad.bench.linear_node", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="folder for the JSON (default bench/results)")
    args = parser.parse_args(argv)
    results = run(args.rounds, args.device)
    path = common.write_json(common.results_path("linear-node", args.device.replace(":", ""),
                                                 args.out), results)
    rows = [[c["shape"], c["three_nodes"]["median_ms"], c["one_node"]["median_ms"],
             c["ratio_one_over_three"]] for c in results["cases"]]
    print(common.format_table(["case", "3 nodes ms", "1 node ms", "ratio"], rows))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
