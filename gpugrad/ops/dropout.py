"""Dropout: zero each element with probability p and scale the survivors by 1 / (1 - p).

The keep-mask is drawn from the device's generator (`gg.manual_seed` makes it reproducible)
and stored as bools (1 byte per element). Forward and backward are the same masked scaling,
so the gradient is differentiable again.
"""

from __future__ import annotations

import numbers

import numpy as np

from gpugrad import backend
from gpugrad.autograd.function import Function
from gpugrad.tensor import Tensor


def _masked_scale(x, keep, scale):
    y = x * keep
    y *= x.dtype.type(scale)
    return y


class MaskedScale(Function):
    """y = x * keep * scale for a fixed bool mask `keep`; linear in x."""

    keeps_inputs = False  # backward reads no input

    def forward(self, x, keep, scale):
        self.keep, self.scale = keep, scale
        return _masked_scale(x, keep, scale)

    def backward(self, gy):
        return (MaskedScale.apply(gy, keep=self.keep, scale=self.scale),)


def keep_mask(shape, p: float, dtype, device) -> object:
    """A bool array that is True with probability 1 - p, from `device`'s generator."""
    gen = backend.generator(device)
    draw = backend.float64 if np.dtype(dtype) == backend.float64 else backend.float32
    with backend.device_context(device):
        return gen.random(shape, dtype=draw) >= p


def check_p(op: str, p) -> float:
    if not isinstance(p, numbers.Real):
        raise TypeError(f"{op}: dropout probability p must be a number between 0 and 1, got "
                        f"{type(p).__name__} {p!r}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p}")
    return float(p)


def dropout(x: Tensor, p: float = 0.5) -> Tensor:
    """Training-mode dropout of `x` (the caller handles eval mode and p == 0)."""
    p = check_p("dropout", p)
    if x.dtype.kind != "f":
        raise RuntimeError(f"dropout: expected a floating-point input, got {x.dtype}")
    keep = keep_mask(x.shape, p, x.dtype, x.device)
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    return MaskedScale.apply(x, keep=keep, scale=scale)


def dropout_with_mask(x: Tensor, keep: Tensor, scale: float) -> Tensor:
    """x * keep * scale for a given bool mask (for tests and custom dropout schemes)."""
    if keep.shape != x.shape or keep.dtype != np.bool_:
        raise ValueError(
            f"dropout_with_mask: expected a bool mask of shape {x.shape}, got {keep.dtype} "
            f"of shape {keep.shape}"
        )
    return MaskedScale.apply(x, keep=keep.data, scale=float(scale))
