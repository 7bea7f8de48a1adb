"""The `gpugrad` command line: train, evaluate, bench, kernels, info."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import warnings

from gpugrad.cli_parser import OneLineParser


def _train(args) -> int:
    from gpugrad.training import TrainConfig, train

    config = TrainConfig(
        dataset=args.dataset, data_dir=args.data_dir, model=args.model, epochs=args.epochs,
        batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        weight_decay=args.weight_decay, schedule=args.schedule, device=args.device,
        seed=args.seed, out=args.out, resume=args.resume, progress=not args.no_progress,
        limit_batches=args.limit_batches, stop_after=args.stop_after,
    )
    with warnings.catch_warnings():
        # A diverging run ends with one clear error (training.py checks the loss); NumPy's
        # overflow warnings on the way there would only add lines to it.
        warnings.filterwarnings("ignore", r"(overflow|invalid value|divide by zero) "
                                "encountered", RuntimeWarning)
        summary = train(config)
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
    return 0


def _evaluate(args) -> int:
    from gpugrad.training import evaluate_checkpoint

    evaluate_checkpoint(args.checkpoint, dataset=args.dataset, data_dir=args.data_dir,
                        device=args.device)
    return 0


def _bench(args, rest) -> int:
    import importlib

    module = importlib.import_module(f"gpugrad.bench.{args.what}")
    return module.main(rest) or 0


def _kernels(args) -> int:
    from gpugrad.kernels import ptx

    if not args.ptx:
        print("usage: gpugrad kernels --ptx [--cc 9.0]  (compile every CUDA kernel to PTX)")
        return 0
    records = ptx.compile_all(cc=args.cc)
    print(ptx.format_ptx_table(records))
    return 0


def _version(module_name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(module_name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _numpy_blas() -> str:
    """The BLAS NumPy was built against, as NumPy reports it ("unknown" if it does not)."""
    import numpy as np

    try:
        return np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # noqa: BLE001 - older NumPy or a build without the record
        return "unknown"


def info_lines() -> list[str]:
    import gpugrad as gg
    from gpugrad import backend

    lines = [
        f"gpugrad      {gg.__version__}",
        f"python       {platform.python_version()} ({platform.machine()}, {platform.system()})",
        f"numpy        {_version('numpy')}",
        f"numba        {_version('numba')}",
        f"numba-cuda   {_version('numba-cuda')}",
    ]
    cupy_versions = [f"{name} {_version(name)}" for name in ("cupy-cuda12x", "cupy-cuda13x", "cupy")
                     if _version(name) != "not installed"]
    lines.append(f"cupy         {', '.join(cupy_versions) or 'not installed'}")
    lines.append(f"torch        {_version('torch')} (reference only)")
    lines.append("devices      cpu" + "".join(
        f", cuda:{i}" for i in range(gg.cuda.device_count())))
    if backend.uses_simulated_cuda():
        lines.append("CUDA         simulated (NUMBA_ENABLE_CUDASIM=1): 'cuda' tensors are NumPy "
                     "arrays and kernels run in Numba's simulator")
    elif gg.cuda.is_available():
        cp = backend.cupy_module()
        for i in range(gg.cuda.device_count()):
            props = cp.cuda.runtime.getDeviceProperties(i)
            name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
            lines.append(f"cuda:{i}       {name}, compute capability {props['major']}."
                         f"{props['minor']}, {props['totalGlobalMem'] / 2**30:.0f} GiB")
        lines.append(f"CUDA runtime {cp.cuda.runtime.runtimeGetVersion()}, driver "
                     f"{cp.cuda.runtime.driverGetVersion()}")
    else:
        lines.append(f"CUDA         unavailable: {backend.cuda_unavailable_reason()}")
    import numba

    blas_name = _numpy_blas()
    if "openblas" in blas_name.lower():
        blas = f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT', 'unset')}"
        if gg._BLAS_TIMEOUT_TOO_LATE:
            blas += " (not applied: NumPy was imported before gpugrad)"
    else:
        blas = f"NumPy's BLAS is {blas_name} (OPENBLAS_THREAD_TIMEOUT does not apply)"
    lines.append(f"cpu threads  Numba {numba.get_num_threads()}, OMP_WAIT_POLICY="
                 f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}, {blas}")
    from gpugrad import host_cache

    cache = host_cache.info()
    lines.append(f"cpu cache    {'on' if cache.get('enabled') else 'off'}, "
                 f"limit {host_cache.get_limit() / 2**20:.0f} MiB of idle buffers")
    from gpugrad.kernels import conv_algorithm, reference_enabled

    lines.append(f"kernels      {'NumPy reference (forced)' if reference_enabled() else 'Numba'}")
    lines.append(f"conv2d       {conv_algorithm()} (GPUGRAD_CONV_ALGO; auto: Winograd F(2x2,3x3) "
                 "for 3x3 stride-1 CPU convs with >= 8 channels, else im2col + GEMM)")
    return lines


def _info(args) -> int:
    print("\n".join(info_lines()))
    return 0


def _compute_capability(text: str) -> tuple[int, int]:
    """--cc MAJOR.MINOR (e.g. 9.0) as a pair of ints."""
    match = re.fullmatch(r"(\d+)\.(\d+)", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a compute capability MAJOR.MINOR such as "
                                         f"9.0, got {text!r}")
    return int(match[1]), int(match[2])


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="gpugrad", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a convnet (default: LeNet on the embedded MNIST subset)")
    t.add_argument("--dataset", default="mnist-mini", choices=["mnist-mini", "mnist",
                                                               "fashion-mnist"])
    t.add_argument("--data-dir", default=None,
                   help="folder with the IDX files (needed for mnist and fashion-mnist)")
    t.add_argument("--model", default="lenet", choices=["lenet", "resnet", "resnet18"])
    t.add_argument("--epochs", type=int, default=None,
                   help="default: 4 for mnist-mini, 3 for mnist, 5 for fashion-mnist")
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--optimizer", default="adam", choices=["adam", "adamw", "sgd"])
    t.add_argument("--lr", type=float, default=None, help="peak learning rate (default per "
                                                          "optimizer: adam 3e-3, sgd 0.05)")
    t.add_argument("--weight-decay", type=float, default=None,
                   help="default: 0.01 for adamw, else 0")
    t.add_argument("--schedule", default="onecycle", choices=["onecycle", "cosine", "none"])
    t.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default="runs/latest", help="folder for checkpoint, metrics, plot")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    t.add_argument("--limit-batches", type=int, default=None, help=argparse.SUPPRESS)
    t.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--json", action="store_true", help="print the summary as JSON")

    e = sub.add_parser("evaluate", help="score a checkpoint on its test set")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--dataset", default=None)
    e.add_argument("--data-dir", default=None)
    e.add_argument("--device", default="cpu")

    b = sub.add_parser("bench", help="benchmarks (gpugrad bench WHAT --help)")
    b.add_argument("what", choices=["kernels", "conv", "step", "overhead", "pool"])

    k = sub.add_parser("kernels", help="inspect the CUDA kernels")
    k.add_argument("--ptx", action="store_true", help="compile every kernel to PTX and list them")
    k.add_argument("--cc", default=(9, 0), type=_compute_capability,
                   help="compute capability MAJOR.MINOR (default 9.0)")

    sub.add_parser("info", help="versions, devices, CUDA/Numba/CuPy status")
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `bench WHAT` passes the rest of the line to the benchmark's own parser.
    if len(argv) >= 2 and argv[0] == "bench":
        args = parser.parse_args(argv[:2])
        return _bench(args, argv[2:])
    args = parser.parse_args(argv)
    handlers = {"train": _train, "evaluate": _evaluate, "kernels": _kernels, "info": _info}
    try:
        return handlers[args.command](args)
    except (OSError, RuntimeError, ValueError) as e:
        print(f"gpugrad {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2


def _one_line(error: Exception) -> str:
    """The error's message on one line (some, e.g. load_state_dict's, list one per line)."""
    text = str(error)
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
