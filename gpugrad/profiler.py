"""`gg.profiler.profile()`: where a step's time goes, per op, forward and backward.

    with gg.profiler.profile() as prof:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        with prof.record("optimizer.step"):
            opt.step()
    print(prof.table())

Forward time is the op's own forward; backward time is its backward formula, including the ops
that formula runs (they are not counted again as forwards). On CUDA, pass `sync=True` to wait
for the GPU around each op, so times belong to the op that queued the work.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from gpugrad import backend
from gpugrad.autograd import function


@dataclass
class OpStats:
    forward_calls: int = 0
    forward_s: float = 0.0
    backward_calls: int = 0
    backward_s: float = 0.0

    @property
    def total_s(self) -> float:
        return self.forward_s + self.backward_s


class profile:
    """Context manager recording per-op times and call counts; see the module docstring."""

    def __init__(self, sync: bool = False):
        self.sync = sync
        self.stats: dict[str, OpStats] = {}
        self._depth = 0  # > 0 while a backward formula runs: its inner ops belong to it
        self._prev = None
        self.wall_s = 0.0
        self._started = 0.0

    def __enter__(self):
        self._prev = function._profiler
        function._profiler = self
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self._wait()
        self.wall_s += time.perf_counter() - self._started
        function._profiler = self._prev
        return False

    def _wait(self):
        if self.sync:
            backend.synchronize()

    def _entry(self, name) -> OpStats:
        entry = self.stats.get(name)
        if entry is None:
            entry = self.stats[name] = OpStats()
        return entry

    def time_forward(self, fn, arrays, params):
        if self._depth:
            return fn.forward(*arrays, **params)
        self._wait()
        start = time.perf_counter()
        ys = fn.forward(*arrays, **params)
        self._wait()
        self._charge(type(fn).__name__, "forward", time.perf_counter() - start)
        return ys

    def _charge(self, name: str, phase: str, seconds: float):
        """Count one call of `name` here and in every enclosing profile() (a nested profile
        sets itself as the tape's profiler: without this its ops would be lost to the outer
        one), except one that is inside a region of its own (a record() or a backward)."""
        prof = self
        while isinstance(prof, profile):
            if prof is self or not prof._depth:
                entry = prof._entry(name)
                setattr(entry, f"{phase}_calls", getattr(entry, f"{phase}_calls") + 1)
                setattr(entry, f"{phase}_s", getattr(entry, f"{phase}_s") + seconds)
            prof = prof._prev

    def time_backward(self, fn, gys):
        self._wait()
        start = time.perf_counter()
        self._depth += 1
        try:
            gxs = fn.backward(*gys)
        finally:
            self._depth -= 1
        self._wait()
        if not self._depth:
            self._charge(type(fn).__name__, "backward", time.perf_counter() - start)
        return gxs

    @contextlib.contextmanager
    def record(self, name: str):
        """Time a region of your own code (an optimizer step, data loading) as a row."""
        self._wait()
        start = time.perf_counter()
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            self._wait()
            self._charge(name, "forward", time.perf_counter() - start)

    def total_s(self) -> float:
        return sum(s.total_s for s in self.stats.values())

    def table(self, limit: int | None = None) -> str:
        """Ops sorted by total time: calls and milliseconds, forward and backward."""
        rows = sorted(self.stats.items(), key=lambda kv: kv[1].total_s, reverse=True)
        if limit is not None:  # 0 rows is 0 rows
            rows = rows[:limit]
        total = self.total_s() or 1e-12
        head = (f"{'op':<22}{'fwd calls':>10}{'fwd ms':>10}{'bwd calls':>10}{'bwd ms':>10}"
                f"{'total ms':>10}{'%':>7}")
        lines = [head, "-" * len(head)]
        for name, s in rows:
            lines.append(
                f"{name:<22}{s.forward_calls:>10}{1e3 * s.forward_s:>10.2f}"
                f"{s.backward_calls:>10}{1e3 * s.backward_s:>10.2f}{1e3 * s.total_s:>10.2f}"
                f"{100 * s.total_s / total:>7.1f}"
            )
        lines.append(f"{'ops total':<62}{1e3 * self.total_s():>10.2f}")
        lines.append(f"{'wall time in profile':<62}{1e3 * self.wall_s:>10.2f}")
        return "\n".join(lines)

    def __str__(self):
        return self.table()
