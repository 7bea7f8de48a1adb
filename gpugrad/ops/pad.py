"""Padding, as `torch.nn.functional.pad`: constant, reflect, replicate and circular modes.

`pad` lists (before, after) amounts starting from the LAST dim: (left, right) pads the last
dim, (left, right, top, bottom) the last two, and so on. Negative amounts crop.

Constant padding is one Function whose gradient is the same op with the amounts negated
(a crop of gy, padding zeros where the forward cropped), so it differentiates to any order.
The other modes gather along each padded dim with an index array (`x[..., idx]`), whose
gradient is the scatter-add of the indexing op.
"""

from __future__ import annotations

import numbers

import numpy as np

from gpugrad import backend
from gpugrad.autograd.function import Function
from gpugrad.tensor import Tensor

_MODES = ("constant", "reflect", "replicate", "circular")


class ConstantPad(Function):
    """Pad (or crop, for negative amounts) every dim by `widths[d] = (before, after)`."""

    keeps_inputs = False  # backward reads no input

    def forward(self, x, widths, value):
        xp = backend.array_module(x)
        self.widths = widths
        out_shape = tuple(n + b + a for n, (b, a) in zip(x.shape, widths))
        src, dst = [], []
        for n, (b, a) in zip(x.shape, widths):
            lo, hi = max(-b, 0), n - max(-a, 0)  # the kept part of the input
            kept = max(hi - lo, 0)
            src.append(slice(lo, lo + kept))
            dst.append(slice(max(b, 0), max(b, 0) + kept))
        with backend.device_context(self.device):
            y = xp.full(out_shape, value, dtype=x.dtype)
        y[tuple(dst)] = x[tuple(src)]
        return y

    def backward(self, gy):
        negated = tuple((-b, -a) for b, a in self.widths)
        return (ConstantPad.apply(gy, widths=negated, value=0),)


def _widths(op: str, x: Tensor, pad) -> tuple:
    """Per-dim (before, after) for all dims of x from PyTorch's last-dim-first pad tuple."""
    if not isinstance(pad, (tuple, list)):
        raise TypeError(f"{op}: pad must be a tuple of ints, got {type(pad).__name__}")
    pad = tuple(pad)
    for p in pad:
        if isinstance(p, bool) or not isinstance(p, (numbers.Integral, np.integer)):
            raise TypeError(f"{op}: pad must contain ints, got {pad}")
    if len(pad) % 2:
        raise ValueError(f"{op}: padding length must be divisible by 2, got {len(pad)} ({pad})")
    if len(pad) // 2 > x.ndim:
        raise ValueError(
            f"{op}: padding length too large: {len(pad)} values pad {len(pad) // 2} dims but "
            f"the input has shape {x.shape}"
        )
    widths = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        widths[x.ndim - 1 - k] = (int(pad[2 * k]), int(pad[2 * k + 1]))
    for d, (n, (b, a)) in enumerate(zip(x.shape, widths)):
        if n + b + a < 0:
            raise ValueError(
                f"{op}: the input size {n}, plus negative padding {b} and {a} resulted in a "
                f"negative output size, which is invalid. Check dimension {d} of your input "
                f"of shape {x.shape}."
            )
    return tuple(widths)


def _source_index(mode: str, n: int, before: int, after: int) -> np.ndarray:
    """For each output position along a dim, the input position it copies."""
    i = np.arange(-before, n + after, dtype=np.int64)
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    if mode == "circular":
        # A negative amount crops first, and the wrap goes around what is left, as PyTorch.
        lo, hi = max(-before, 0), n - max(-after, 0)
        return lo + np.mod(i - lo, max(hi - lo, 1))
    # reflect: mirror about the first and last element (the edge is not repeated)
    i = np.abs(i)
    return np.where(i > n - 1, 2 * (n - 1) - i, i)


def pad(input: Tensor, pad, mode: str = "constant", value=None) -> Tensor:
    """Pad `input` as `torch.nn.functional.pad` (see the module docstring for `pad`'s order)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"pad: expected a Tensor input, got {type(input).__name__}")
    if mode not in _MODES:
        raise NotImplementedError(
            f"pad: mode must be one of {', '.join(_MODES)}, got {mode!r}"
        )
    widths = _widths("pad", input, pad)
    if mode == "constant":
        if all(w == (0, 0) for w in widths):
            return input
        return ConstantPad.apply(input, widths=widths, value=0 if value is None else value)
    if value is not None and value != 0:
        raise ValueError(f"pad: padding mode '{mode}' doesn't take in value argument")
    n_padded = len(pad) // 2
    # PyTorch's limits: 1-3 trailing dims, with one or two leading (batch, channel) dims.
    if n_padded > 3 or not n_padded + 1 <= input.ndim <= n_padded + 2:
        raise NotImplementedError(
            f"pad: {mode} padding of the last {n_padded} dim(s) needs a "
            f"{n_padded + 1}-D or {n_padded + 2}-D input, got shape {input.shape}"
        )
    from gpugrad.ops.indexing import getitem

    out = input
    for d, (b, a) in enumerate(widths):
        if (b, a) == (0, 0):
            continue
        n = input.shape[d]
        if mode == "reflect" and (b >= n or a >= n):
            raise ValueError(
                f"pad: padding size should be less than the corresponding input dimension, "
                f"but got: padding ({b}, {a}) at dimension {d} of input of shape {input.shape}"
            )
        if mode == "circular" and (b > n or a > n):
            raise ValueError(
                f"pad: padding value causes wrapping around more than once: ({b}, {a}) at "
                f"dimension {d} of input of shape {input.shape}"
            )
        if n == 0:
            raise ValueError(f"pad: cannot {mode}-pad the empty dimension {d} of {input.shape}")
        idx = _source_index(mode, n, b, a)
        out = getitem(out, (slice(None),) * d + (idx,))
    return out
