"""The switch that forces every kernel dispatcher onto its plain NumPy reference.

The reference path is the test oracle; switching to it on purpose is how a user rules the
compiled kernels in or out when a result looks wrong. ``GPUGRAD_KERNELS=reference`` in the
environment turns it on at import; ``use_reference`` and ``reference_mode`` change it at run time.
"""

from __future__ import annotations

import contextlib
import os

_ENV_VAR = "GPUGRAD_KERNELS"
_ENV_CHOICES = ("", "auto", "reference")


def _reference_from_env() -> bool:
    value = os.environ.get(_ENV_VAR, "").strip().lower()
    if value not in _ENV_CHOICES:
        raise ValueError(
            f"{_ENV_VAR}: expected one of 'auto' or 'reference' (or unset), got {value!r}"
        )
    return value == "reference"


_use_reference = _reference_from_env()


def use_reference(flag: bool) -> None:
    """Route every kernel call to its NumPy reference (True) or to the compiled kernels (False)."""
    global _use_reference
    _use_reference = bool(flag)


def reference_enabled() -> bool:
    return _use_reference


@contextlib.contextmanager
def reference_mode(flag: bool = True):
    """Run the block with the reference path switched on (or off), then restore the old state."""
    previous = _use_reference
    use_reference(flag)
    try:
        yield
    finally:
        use_reference(previous)
