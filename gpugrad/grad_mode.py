"""Whether ops record the graph: `no_grad`, `enable_grad`, `set_grad_enabled`.

As in PyTorch: the mode is per thread; each works as a `with` block or a decorator (a
decorated generator function gets the mode at each resume, not only at its creation);
`no_grad` and `enable_grad` decorate with or without parentheses; and `set_grad_enabled(mode)`
called as a plain function switches the mode until something switches it back.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading


class _State(threading.local):
    enabled = True  # per thread, as in PyTorch


_local = _State()


def is_grad_enabled() -> bool:
    return _local.enabled


def _set(enabled: bool) -> None:
    _local.enabled = enabled


def _wrap_generator(ctx_factory, func):
    """A generator function whose every resume (send, throw, close) runs inside a fresh
    context from `ctx_factory`; the caller's mode is back in force while it is suspended."""

    @functools.wraps(func)
    def generator_context(*args, **kwargs):
        gen = func(*args, **kwargs)
        try:
            with ctx_factory():
                response = gen.send(None)
            while True:
                try:
                    request = yield response
                except GeneratorExit:
                    with ctx_factory():
                        gen.close()
                    raise
                except BaseException:
                    with ctx_factory():
                        response = gen.throw(*sys.exc_info())
                else:
                    with ctx_factory():
                        response = gen.send(request)
        except StopIteration as e:
            return e.value

    return generator_context


class _GradModeContext:
    """A context manager that also decorates functions (each call gets a fresh context)."""

    mode: bool

    def clone(self):
        return self.__class__()

    def __call__(self, func):
        if inspect.isclass(func):
            raise RuntimeError(
                f"{type(self).__name__}: decorating a class is not supported; decorate its methods"
            )
        if inspect.isgeneratorfunction(func):
            return _wrap_generator(self.clone, func)

        @functools.wraps(func)
        def decorate_context(*args, **kwargs):
            with self.clone():
                return func(*args, **kwargs)

        return decorate_context

    def __enter__(self):
        self.prev.append(is_grad_enabled())
        _set(self.mode)
        return None

    def __exit__(self, *exc):
        _set(self.prev.pop())
        return False


class _NoParamGradModeContext(_GradModeContext):
    """`@no_grad` works like `@no_grad()`, as in PyTorch 2.x."""

    def __new__(cls, orig_func=None):
        if orig_func is None:
            return super().__new__(cls)
        return cls()(orig_func)

    def __init__(self, orig_func=None):
        self.prev = []


class no_grad(_NoParamGradModeContext):
    """Ops inside record nothing: results have no grad_fn and do not require grad."""

    mode = False


class enable_grad(_NoParamGradModeContext):
    """Switch recording back on inside a `no_grad` region."""

    mode = True


class set_grad_enabled(_GradModeContext):
    """Switch recording on or off: at once when called (`gg.set_grad_enabled(False)` keeps it
    off until switched back), for a `with` block, or for a decorated function."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self.prev = is_grad_enabled()
        _set(self.mode)

    def clone(self):
        return self.__class__(self.mode)

    def __call__(self, func):
        # Used as a decorator: undo the switch __init__ made; each call switches for itself.
        _set(self.prev)
        return super().__call__(func)

    def __enter__(self):
        _set(self.mode)  # __init__ saved the mode to restore
        return None

    def __exit__(self, *exc):
        _set(self.prev)
        return False
