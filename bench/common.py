"""Shared benchmark helpers: paired timing rounds, medians, copy bandwidth, result files.

Every benchmark times its contenders in *paired rounds* inside one process: each round runs every
contender once, in an order that rotates from round to round, so slow drifts of the machine
(turbo, other tenants, page cache) hit all of them alike. Reported numbers are medians over
rounds, and speedups are the median of the per-round ratios, not a ratio of medians.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gpugrad.fileio import write_json_atomic

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def time_call(fn: Callable[[], object], number: int = 1, sync: Callable[[], None] | None = None):
    """Seconds per call of `fn`, averaged over `number` back-to-back calls.

    `sync` (e.g. backend.synchronize) is called before starting the clock and before stopping it,
    so queued GPU work is inside the measurement and earlier work is not.
    """
    if sync is not None:
        sync()
    start = time.perf_counter()
    for _ in range(number):
        fn()
    if sync is not None:
        sync()
    return (time.perf_counter() - start) / number


def paired_rounds(
    fns: dict,
    rounds: int,
    number: int = 1,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
) -> dict:
    """Time every function in `fns` once per round, rotating the order; seconds per call.

    Returns {name: [seconds per round]}. `warmup` untimed calls per function come first (JIT
    compilation, caches, allocator pools).
    """
    return interleaved_rounds({None: fns}, rounds, number, warmup, sync)[None]


def interleaved_rounds(
    groups: dict,
    rounds: int,
    number: int = 1,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
) -> dict:
    """paired_rounds for several groups of contenders at once: {group: {name: fn}}.

    Every round visits every group, so a burst of other work on the machine lands on one round
    of each group instead of on every round of one group. Returns {group: {name: [seconds]}}.
    """
    for fns in groups.values():
        for fn in fns.values():
            for _ in range(warmup):
                fn()
    if sync is not None:
        sync()
    samples = {key: {name: [] for name in fns} for key, fns in groups.items()}
    for r in range(rounds):
        for key, fns in groups.items():
            names = list(fns)
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                samples[key][name].append(time_call(fns[name], number, sync))
    return samples


def median(values) -> float:
    return float(statistics.median(values))


def paired_ratio(samples: dict, numerator: str, denominator: str) -> float:
    """Median over rounds of samples[numerator] / samples[denominator] (a speedup when the
    numerator is the baseline's time)."""
    ratios = [a / b for a, b in zip(samples[numerator], samples[denominator], strict=True)]
    return median(ratios)


def summarize(
    seconds: list,
    nbytes: int | None = None,
    copy_gbps: float | None = None,
    new_array_copy_gbps: float | None = None,
) -> dict:
    """Median and spread in ms, plus GB/s and % of copy bandwidth when bytes are known.

    `copy_gbps` is a copy into an existing array (the machine's peak); `new_array_copy_gbps` a
    copy that allocates its result, which pays the same page faults as any op returning a new
    array.
    """
    ms = np.asarray(seconds) * 1e3
    out = {
        "median_ms": float(np.median(ms)),
        "p25_ms": float(np.percentile(ms, 25)),
        "p75_ms": float(np.percentile(ms, 75)),
        "min_ms": float(ms.min()),
        "rounds": int(ms.size),
    }
    if nbytes is not None:
        gbps = nbytes / (out["median_ms"] * 1e-3) / 1e9
        out["gbps"] = gbps
        if copy_gbps:
            out["pct_copy_bandwidth"] = 100.0 * gbps / copy_gbps
        if new_array_copy_gbps:
            out["pct_new_array_copy_bandwidth"] = 100.0 * gbps / new_array_copy_gbps
    return out


def gbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e9


def copy_bandwidth(copies: dict, nbytes: int, rounds: int, sync=None, number: int = 1) -> dict:
    """GB/s of each copy function in `copies` (each moves `nbytes`, read + write), paired,
    `number` calls per sample.

    Returns {name: GB/s at the median} plus "best": the highest, the bar kernels are held to.
    """
    samples = paired_rounds(copies, rounds, number=number, sync=sync)
    result = {name: gbps(nbytes, median(s)) for name, s in samples.items()}
    result["best"] = max(result.values())
    result["bytes"] = int(nbytes)
    return result


def machine_info(**extra) -> dict:
    """What the numbers were measured on."""
    import numba

    info = {
        "machine": platform.machine(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        # Other work on the machine skews every number; the 1-minute load says how much there was.
        "load_average": load_average(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    info.update(extra)
    return info


def gpu_info() -> dict:
    """The GPU and the CUDA stack the numbers were measured with."""
    from gpugrad import backend

    cp = backend.cupy_module()
    if cp is None:
        return {}
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"]
    info = {
        "name": name.decode() if isinstance(name, bytes) else str(name),
        "compute_capability": f"{props['major']}.{props['minor']}",
        "multiprocessors": props["multiProcessorCount"],
        "memory_gib": round(props["totalGlobalMem"] / 2**30, 1),
        "driver": cp.cuda.runtime.driverGetVersion(),
        "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(),
        "cupy": cp.__version__,
    }
    try:
        from importlib.metadata import version

        info["numba_cuda"] = version("numba-cuda")
    except Exception:  # not installed as a distribution (numba's bundled CUDA target)
        info["numba_cuda"] = None
    return info


def load_average() -> float | None:
    """The 1-minute load average (None where the OS does not report one)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def results_path(name: str, device: str, out_dir=None, suffix=".json") -> Path:
    """bench/results/<name>-<device><suffix> (or under `out_dir`)."""
    folder = Path(out_dir) if out_dir is not None else RESULTS_DIR
    return folder / f"{name}-{device}{suffix}"


def write_json(path, data) -> Path:
    """Write `data` as indented JSON atomically (temp file in the same folder, then rename)."""
    return write_json_atomic(path, data)


def format_table(header, rows) -> str:
    """Left-aligned plain-text table; cells are str()-ed, floats to 3 significant digits."""

    def cell(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.0f}"
        return str(v)

    table = [[cell(v) for v in header]] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[k]) for r in table) for k in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table
    )
