"""The kernels' three run-time switches.

Reference mode forces every kernel dispatcher onto its plain NumPy reference. The reference path
is the test oracle; switching to it on purpose is how a user rules the compiled kernels in or
out when a result looks wrong. ``GPUGRAD_KERNELS=reference`` in the environment turns it on at
import; ``use_reference`` and ``reference_mode`` change it at run time.

The conv algorithm picks how conv2d computes on the CPU: "auto" (Winograd F(2x2, 3x3) for 3x3,
stride-1, undilated convolutions with at least 8 channels in and out per group, im2col + GEMM
otherwise), "im2col" (always im2col), or "winograd" (Winograd wherever it applies, whatever the
channel count). CUDA devices and reference mode always use im2col. ``GPUGRAD_CONV_ALGO`` sets it
at import; ``use_conv_algorithm`` and ``conv_algorithm_mode`` change it at run time.

The CUDA launcher says how a compiled CUDA kernel is started: "cupy" (the default) loads Numba's
cubin into a CuPy module and launches it with CuPy's driver call (see kernels/_cupy_launch.py),
"numba" uses Numba's own launcher (several times the per-call cost; for debugging, and the
fallback wherever the CuPy path cannot be built). ``GPUGRAD_CUDA_LAUNCHER`` sets it at import;
``use_cuda_launcher`` and ``cuda_launcher_mode`` change it at run time.
"""

from __future__ import annotations

import contextlib
import os

_ENV_VAR = "GPUGRAD_KERNELS"
_ENV_CHOICES = ("", "auto", "reference")
_CONV_ENV_VAR = "GPUGRAD_CONV_ALGO"
CONV_ALGORITHMS = ("auto", "im2col", "winograd")


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
    if not isinstance(flag, bool):  # "no" would be truthy: switched on by a typo
        raise TypeError(f"use_reference: expected True or False, got {flag!r}")
    _use_reference = flag


def reference_enabled() -> bool:
    return _use_reference


def reference_mode(flag: bool = True):
    """Run the block with the reference path switched on (or off), then restore the old state."""
    return _switched(reference_enabled, use_reference, flag)


@contextlib.contextmanager
def _switched(current, use, value):
    """Run the block with a switch set to `value` through its setter `use`, then restore it."""
    previous = current()
    use(value)
    try:
        yield
    finally:
        use(previous)


def _check_choice(name, choices, source):
    """`name` normalized (stripped, lower case) if it is one of `choices`, else ValueError."""
    value = name.strip().lower() if isinstance(name, str) else name
    if value not in choices:
        raise ValueError(f"{source}: expected one of {choices}, got {name!r}")
    return value


_conv_algorithm = _check_choice(os.environ.get(_CONV_ENV_VAR, "") or "auto", CONV_ALGORITHMS,
                                _CONV_ENV_VAR)


def use_conv_algorithm(name: str) -> None:
    """How conv2d computes on the CPU: "auto", "im2col" or "winograd" (see the module doc)."""
    global _conv_algorithm
    _conv_algorithm = _check_choice(name, CONV_ALGORITHMS, "use_conv_algorithm")


def conv_algorithm() -> str:
    return _conv_algorithm


def conv_algorithm_mode(name: str):
    """Run the block with conv2d's algorithm set to `name`, then restore the old one."""
    return _switched(conv_algorithm, use_conv_algorithm, name)


_LAUNCHER_ENV_VAR = "GPUGRAD_CUDA_LAUNCHER"
CUDA_LAUNCHERS = ("cupy", "numba")


_cuda_launcher = _check_choice(os.environ.get(_LAUNCHER_ENV_VAR, "") or "cupy", CUDA_LAUNCHERS,
                               _LAUNCHER_ENV_VAR)


def use_cuda_launcher(name: str) -> None:
    """How CUDA kernels are launched: "cupy" or "numba" (see the module doc)."""
    global _cuda_launcher
    _cuda_launcher = _check_choice(name, CUDA_LAUNCHERS, "use_cuda_launcher")


def cuda_launcher() -> str:
    return _cuda_launcher


def cuda_launcher_mode(name: str):
    """Run the block with CUDA kernels launched by `name`, then restore the old launcher."""
    return _switched(cuda_launcher, use_cuda_launcher, name)
