"""The training step: gpugrad against PyTorch, paired rounds in one process.

LeNet-style (conv 1->32 3x3 pad 1, ReLU, maxpool 2; conv 32->64, ReLU, maxpool 2; fc 3136->128,
ReLU; fc 128->10; cross-entropy; SGD momentum 0.9) at batch 64 and 128 on 28x28 inputs; on CUDA
also a ResNet-18 (CIFAR variant) at batch 128 on 32x32 inputs. Both frameworks start from the
same weights and see the same batch. Reports the median ms per step, the paired ratio
gpugrad/PyTorch, and peak memory (CPU: the peak of NumPy allocations in one gpugrad step, via
tracemalloc; CUDA: for each framework the peak bytes in use during one step above what was in
use when it began, counted with a CuPy memory hook and by PyTorch's max_memory_allocated, and the
bytes each allocator held from the device). On CUDA every case also
runs gpugrad with its tape as before commit 87d0817 (every node keeping its inputs, conv2d its
columns), and the ResNet-18 case with only conv2d's columns kept for the weight gradient
(conv_gemm.KEEP_COLUMNS, the CPU's setting): their time and memory against the shipped one's.

On the CPU both frameworks share the cores in one process: gpugrad sets OMP_WAIT_POLICY=passive
(so Numba's and PyTorch's OpenMP workers sleep instead of spinning between parallel loops);
PyTorch's own standalone time is a little lower than its paired time here.

    gpugrad bench step [--device cpu|cuda] [--rounds N] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from gpugrad.bench import common
from gpugrad.cli_parser import OneLineParser


def _gg_model(name):
    from gpugrad.models import LeNet, resnet18

    return LeNet() if name == "lenet" else resnet18(in_channels=3)


def _torch_model(name):
    import torch.nn as tnn

    if name == "lenet":
        return tnn.Sequential(
            tnn.Conv2d(1, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
            tnn.Conv2d(32, 64, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
            tnn.Flatten(), tnn.Linear(3136, 128), tnn.ReLU(), tnn.Linear(128, 10),
        )
    return _torch_resnet18()


def _torch_resnet18():
    """The same CIFAR ResNet-18 as gpugrad.models.resnet18, in PyTorch (parameter order too)."""
    import torch.nn as tnn

    class Block(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(cout)
            self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.relu = tnn.ReLU()
            self.shortcut = tnn.Identity()
            if stride != 1 or cin != cout:
                self.shortcut = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False),
                                               tnn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.stem = tnn.Sequential(tnn.Conv2d(3, 64, 3, padding=1, bias=False),
                                       tnn.BatchNorm2d(64), tnn.ReLU())
            layers, cin = [], 64
            for i, width in enumerate((64, 128, 256, 512)):
                for j in range(2):
                    layers.append(Block(cin, width, 2 if i > 0 and j == 0 else 1))
                    cin = width
            self.layers = tnn.Sequential(*layers)
            self.pool = tnn.AdaptiveAvgPool2d(1)
            self.fc = tnn.Linear(512, 10)

        def forward(self, x):
            return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))

    return Net()


def _input_shape(name, batch):
    return (batch, 1, 28, 28) if name == "lenet" else (batch, 3, 32, 32)


def make_steps(name, batch, device, with_torch=True):
    """(gpugrad step, torch step or None, sync) sharing weights and one batch."""
    import gpugrad as gg
    import gpugrad.nn.functional as F

    rng = np.random.default_rng(0)
    images = rng.standard_normal(_input_shape(name, batch)).astype(np.float32)
    labels = rng.integers(0, 10, batch)
    model = _gg_model(name).to(device)
    opt = gg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = gg.tensor(images, device=device), gg.tensor(labels, device=device)

    def gg_step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    try:
        if not with_torch:
            raise ImportError
        import torch
    except ImportError:
        return gg_step, None, lambda: gg.cuda.synchronize() if device != "cpu" else None
    tdev = "cuda" if device.startswith("cuda") else "cpu"
    tmodel = _torch_model(name)
    with torch.no_grad():
        for p, tp in zip(model.parameters(), tmodel.parameters()):
            tp.copy_(torch.from_numpy(p.numpy().copy()))
    tmodel = tmodel.to(tdev)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.from_numpy(images).to(tdev), torch.from_numpy(labels).to(tdev)

    def torch_step():
        loss = torch.nn.functional.cross_entropy(tmodel(tx), ty)
        topt.zero_grad()
        loss.backward()
        topt.step()

    def sync():
        if tdev == "cuda":
            gg.cuda.synchronize()
            torch.cuda.synchronize()

    return gg_step, torch_step, sync


def cpu_peak_mb(step) -> float:
    """Peak bytes (MB) NumPy allocates during one step: tracemalloc sees NumPy's arrays.
    (PyTorch's CPU allocator is invisible to it, so the CPU comparison is gpugrad's only.)
    The CPU buffer cache is emptied first, so that every buffer the step uses is allocated,
    and seen, during the step."""
    import tracemalloc

    from gpugrad import host_cache

    host_cache.empty_cache()
    tracemalloc.start()
    try:
        step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def _peak_in_use_hook(cp, start_bytes):
    """A CuPy memory hook that follows the bytes in use from CuPy's pool (every array gpugrad
    allocates on a GPU comes from it) and keeps their peak: the equivalent of PyTorch's
    max_memory_allocated."""

    class PeakInUse(cp.cuda.MemoryHook):
        name = "gpugrad-bench-peak"

        def __init__(self):
            self.in_use = self.peak = start_bytes

        def malloc_postprocess(self, **kw):
            self.in_use += kw["mem_size"]
            self.peak = max(self.peak, self.in_use)

        def free_postprocess(self, **kw):
            self.in_use -= kw["mem_size"]

    return PeakInUse()


def _cuda_peaks(gg_steps, torch_step, sync):
    """{name: {"peak_in_use_mb", "step_peak_mb", "held_mb"}} for one step of each: the peak
    of the bytes in use, that peak above what was in use when the step began (the step's own
    arrays: activations, gradients, temporaries; the process-wide peak also counts the other
    contenders' models), and what the allocator held: gpugrad's with the pool emptied first,
    PyTorch's with its peak statistics reset (held: max_memory_reserved)."""
    from gpugrad import backend

    cp = backend.cupy_module()
    pool = cp.get_default_memory_pool()
    peaks = {}
    for name, step in gg_steps.items():
        sync()
        pool.free_all_blocks()
        start = pool.used_bytes()
        hook = _peak_in_use_hook(cp, start)
        with hook:
            step()
            sync()
        peaks[name] = {"peak_in_use_mb": hook.peak / 2**20,
                       "step_peak_mb": (hook.peak - start) / 2**20,
                       "held_mb": pool.total_bytes() / 2**20}
    if torch_step is not None:
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        torch_step()
        sync()
        peak = torch.cuda.max_memory_allocated()
        peaks["torch"] = {"peak_in_use_mb": peak / 2**20,
                          "step_peak_mb": (peak - start) / 2**20,
                          "held_mb": torch.cuda.max_memory_reserved() / 2**20}
    return peaks


def _function_classes():
    from gpugrad.autograd.function import Function

    found, stack = [], [Function]
    while stack:
        for sub in stack.pop().__subclasses__():
            found.append(sub)
            stack.append(sub)
    return found


def _as_before_memory_changes(step):
    """`step` run with the tape as it was before commit 87d0817: every node keeps its inputs
    (Function.keeps_inputs True everywhere) and conv2d keeps its columns on CUDA too."""

    def every_node_keeps_its_inputs():
        dropping = [c for c in _function_classes() if c.__dict__.get("keeps_inputs") is False]
        for c in dropping:
            c.keeps_inputs = True
        try:
            step()
        finally:
            for c in dropping:
                c.keeps_inputs = False

    return _with_columns_kept(every_node_keeps_its_inputs)


def _with_columns_kept(step):
    """`step` run with im2col's columns kept for the weight gradient on CUDA too."""
    from gpugrad.ops import conv_gemm

    def kept():
        before = conv_gemm.KEEP_COLUMNS["cuda"]
        conv_gemm.KEEP_COLUMNS["cuda"] = True
        try:
            step()
        finally:
            conv_gemm.KEEP_COLUMNS["cuda"] = before

    return kept


def run(device="cpu", rounds=15, quick=False):
    import gpugrad as gg

    cases = [("lenet", 64), ("lenet", 128)]
    if device.startswith("cuda"):
        cases.append(("resnet18", 128))
    if quick:
        cases, rounds = [("lenet", 16)], 3
    results = {"benchmark": "training step", "device": device,
               "machine": common.machine_info(), "cases": []}
    if device.startswith("cuda") and gg.backend.cupy_module() is not None:
        results["machine"]["gpu"] = common.gpu_info()
    for name, batch in cases:
        gg_step, torch_step, sync = make_steps(name, batch, device)
        fns = {"gpugrad": gg_step}
        if device.startswith("cuda"):
            # Each on its own model and optimizer, on the same batch: the same work.
            before_step, _, _ = make_steps(name, batch, device, with_torch=False)
            fns["gpugrad_as_before"] = _as_before_memory_changes(before_step)
            if name == "resnet18":
                kept_step, _, _ = make_steps(name, batch, device, with_torch=False)
                fns["gpugrad_columns_kept"] = _with_columns_kept(kept_step)
        if torch_step is not None:
            fns["torch"] = torch_step
        samples = common.paired_rounds(fns, rounds, warmup=2, sync=sync)
        case = {"model": name, "batch": batch}
        for fw, secs in samples.items():
            case[fw] = common.summarize(secs)
        if "torch" in samples:
            case["ratio_gpugrad_over_torch"] = common.paired_ratio(samples, "gpugrad", "torch")
        for other in ("gpugrad_as_before", "gpugrad_columns_kept"):
            if other in samples:
                case[f"ratio_gpugrad_over_{other[len('gpugrad_'):]}"] = common.paired_ratio(
                    samples, "gpugrad", other)
        if device == "cpu":
            case["peak_mb"] = {"gpugrad": cpu_peak_mb(gg_step), "torch": None}
        elif device.startswith("cuda"):
            gg_steps = {k: v for k, v in fns.items() if k != "torch"}
            case["memory_mb"] = _cuda_peaks(gg_steps, torch_step, sync)
            case["peak_mb"] = {k: v["step_peak_mb"] for k, v in case["memory_mb"].items()}
        results["cases"].append(case)
    return results


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = results["cases"]
    labels = [f"{c['model']}\nbatch {c['batch']}" for c in cases]
    xs = np.arange(len(cases))
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(cases), 3.5))
    for i, fw in enumerate(("gpugrad", "torch")):
        vals = [c[fw]["median_ms"] if fw in c else 0 for c in cases]
        ax.bar(xs + (i - 0.5) * 0.38, vals, 0.38, label=fw)
    ax.set_xticks(xs, labels)
    ax.set_ylabel("ms per training step (median)")
    ax.set_title(f"training step on {results['device']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    parser = OneLineParser(prog="gpugrad bench step", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="one tiny case (smoke test)")
    parser.add_argument("--out", default=None, help="folder for JSON and PNG "
                                                    "(default bench/results)")
    args = parser.parse_args(argv)
    results = run(args.device, args.rounds, args.quick)
    tag = args.device.replace(":", "") + ("-quick" if args.quick else "")
    path = common.write_json(common.results_path("step", tag, args.out), results)
    plot(results, common.results_path("step", tag, args.out, suffix=".png"))
    rows = []
    for c in results["cases"]:
        rows.append([f"{c['model']} b{c['batch']}", c["gpugrad"]["median_ms"],
                     c.get("torch", {}).get("median_ms", float("nan")),
                     c.get("ratio_gpugrad_over_torch", float("nan")),
                     c.get("ratio_gpugrad_over_as_before", float("nan")),
                     json.dumps({k: round(v, 1) if v is not None else None
                                 for k, v in (c.get("peak_mb") or {}).items()})])
    print(common.format_table(["case", "gpugrad ms", "torch ms", "ratio", "vs before 87d0817",
                               "step's peak MB"], rows))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
