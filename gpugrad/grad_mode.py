"""Whether ops record the graph: `no_grad`, `enable_grad`, `set_grad_enabled`."""

from __future__ import annotations

import contextlib
import threading

class _State(threading.local):
    enabled = True  # per thread, as in PyTorch


_local = _State()


def is_grad_enabled() -> bool:
    return _local.enabled


def _set(enabled: bool) -> None:
    _local.enabled = enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Switch recording on or off inside a `with` block or a decorated function."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self.prev = []

    def __enter__(self):
        self.prev.append(is_grad_enabled())
        _set(self.mode)
        return self

    def __exit__(self, *exc):
        _set(self.prev.pop())
        return False


class no_grad(set_grad_enabled):
    """Ops inside record nothing: results have no grad_fn and do not require grad."""

    def __init__(self):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Switch recording back on inside a `no_grad` region."""

    def __init__(self):
        super().__init__(True)
