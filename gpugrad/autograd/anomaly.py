"""`detect_anomaly()`: the first op that produces NaN or Inf raises, forward or backward.

Inside the context every op records where the user's code created it; a forward that returns
a non-finite value from finite inputs raises at once, and so does a backward formula that
returns a non-finite gradient from finite incoming gradients. The error names the op and shows
the user's line that created it.
"""

from __future__ import annotations

import contextlib
import traceback
from pathlib import Path

from gpugrad import backend
from gpugrad.autograd import engine, function

_PACKAGE = str(Path(__file__).resolve().parents[1])


class AnomalyError(RuntimeError):
    """A NaN or Inf appeared under detect_anomaly(); the message says which op and where."""


def _user_stack() -> list[str]:
    """The caller's frames outside gpugrad, innermost last, formatted like a traceback."""
    frames = [f for f in traceback.extract_stack() if not f.filename.startswith(_PACKAGE)]
    return traceback.format_list(frames[-4:])


def _nonfinite(arrays) -> bool:
    for a in arrays:
        if a is not None and a.dtype.kind == "f":
            xp = backend.array_module(a)
            if not bool(xp.isfinite(a).all()):
                return True
    return False


def _op_name(fn) -> str:
    return type(fn).__name__


def _forward_hook(fn, inputs, outputs):
    fn.trace = _user_stack()
    if _BackwardCheck.running:
        return  # an op inside a backward formula: reported as that formula's op, after it
    if fn.produces_nonfinite or not _nonfinite([o.data for o in outputs]):
        return
    if _nonfinite([t.data for t in inputs]):
        return  # not the first: a non-finite input came from an earlier op (or the user)
    raise AnomalyError(
        f"detect_anomaly: op {_op_name(fn)} produced NaN or Inf in its forward output from "
        f"finite inputs. It was called at:\n{''.join(fn.trace)}"
    )


class _BackwardCheck:
    running = 0  # > 0 while a backward formula runs

    @classmethod
    def before(cls, fn):
        cls.running += 1

    @classmethod
    def done(cls, fn):
        cls.running -= 1

    @classmethod
    def after(cls, fn, gys, gxs):
        if not _nonfinite([g.data for g in gxs if g is not None]):
            return
        if _nonfinite([g.data for g in gys]):
            return  # not the first: the incoming gradient was already non-finite
        where = "".join(fn.trace) if fn.trace else "  (created outside detect_anomaly)\n"
        raise AnomalyError(
            f"detect_anomaly: the backward of op {_op_name(fn)} returned NaN or Inf. "
            f"The op was created at:\n{where}"
        )


@contextlib.contextmanager
def detect_anomaly(check_nan: bool = True):
    """Raise AnomalyError at the first op that produces NaN or Inf (slow: for debugging)."""
    if not check_nan:
        yield
        return
    prev_hook, prev_check = function._anomaly_hook, engine._anomaly_check
    function._anomaly_hook = _forward_hook
    engine._anomaly_check = _BackwardCheck
    try:
        yield
    finally:
        _BackwardCheck.running = 0
        function._anomaly_hook, engine._anomaly_check = prev_hook, prev_check
