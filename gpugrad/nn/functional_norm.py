"""Layer and group normalisation, as `torch.nn.functional.layer_norm` / `group_norm`.

Both are short compositions of gpugrad ops (mean, centred squares, rsqrt, affine), so autograd
differentiates them to any order (create_graph included) and they run on whatever device the
input is on. The statistics never outlive the call, unlike batch norm's running ones, so there
is no state to update and nothing a hand-written Function would have to keep consistent.
"""

from __future__ import annotations

import numbers

from gpugrad import backend, ops
from gpugrad.nn._checks import _check_devices, _check_float_input
from gpugrad.ops.common import is_int
from gpugrad.tensor import Tensor


def _normalize(x: Tensor, axes: tuple, eps: float) -> Tensor:
    """(x - mean) / sqrt(var + eps) over `axes`, with the biased variance.

    The variance is the mean of the centred squares, not E[x^2] - E[x]^2: the latter cancels
    catastrophically in float32 when |mean| is large against the spread (values around 1e4
    with unit variance lose every digit of it).
    """
    xc = x - ops.mean(x, dim=axes, keepdim=True)
    var = ops.mean(xc * xc, dim=axes, keepdim=True)
    return xc * ops.rsqrt(var + eps)


def _check_eps(op: str, eps) -> float:
    """A real eps >= 0. PyTorch takes any float, but a negative (or NaN) eps makes var + eps
    negative for low-variance groups and so NaN outputs, silently; 0 is fine (as PyTorch) for
    groups that are not constant."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"{op}: eps must be a float, got {type(eps).__name__} {eps!r}")
    if not eps >= 0:
        raise ValueError(f"{op}: expected eps >= 0, got {eps}")
    return float(eps)


def _check_affine(op: str, input: Tensor, expected: tuple, what: str, **params) -> None:
    """weight / bias (None skipped): Tensors of shape `expected`, the input's dtype and device."""
    for name, t in params.items():
        if t is not None and not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor or None, got {type(t).__name__}")
    _check_devices(op, input=input, **params)
    for name, t in params.items():
        if t is None:
            continue
        if t.shape != expected:
            raise RuntimeError(f"{op}: expected {name} of shape {expected} ({what}), got "
                               f"{name} of shape {t.shape}")
        if t.dtype != input.dtype:
            raise RuntimeError(f"{op}: expected {name} of the input's dtype {input.dtype}, got "
                               f"{t.dtype}")


def normalized_shape_tuple(op: str, normalized_shape) -> tuple:
    """An int or a sequence of ints as a non-empty tuple of Python ints."""
    if is_int(normalized_shape):
        return (int(normalized_shape),)
    if not isinstance(normalized_shape, (tuple, list)):
        raise TypeError(f"{op}: normalized_shape must be an int or a tuple of ints, got "
                        f"{type(normalized_shape).__name__} {normalized_shape!r}")
    for s in normalized_shape:
        if not is_int(s):
            raise TypeError(f"{op}: normalized_shape must be an int or a tuple of ints, got "
                            f"{tuple(normalized_shape)!r}")
    if not normalized_shape:
        raise RuntimeError(f"{op}: expected normalized_shape to have at least one dim, got "
                           "an empty one")
    return tuple(int(s) for s in normalized_shape)


def _in_float32(fn, input: Tensor, weight, bias, *args, **kwargs) -> Tensor:
    """fn on float32 copies of a float16 input and its affine parameters, cast back: the
    squares and the mean of a float16 input overflow or round to nothing (a spread of 300
    gave all zeros), and PyTorch computes half-precision norms in float32 too."""
    def up(t):
        return None if t is None else t.to(backend.float32)

    return fn(up(input), *args, weight=up(weight), bias=up(bias), **kwargs).to(backend.float16)


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing dims `normalized_shape` (an int means the last dim), then
    scale by `weight` and shift by `bias`, both of shape `normalized_shape`."""
    op = "layer_norm"
    _check_float_input(op, input)
    shape = normalized_shape_tuple(op, normalized_shape)
    eps = _check_eps(op, eps)
    k = len(shape)
    if input.ndim < k or input.shape[input.ndim - k:] != shape:
        raise RuntimeError(
            f"{op}: given normalized_shape={shape}, expected input with shape "
            f"(*, {', '.join(map(str, shape))}), got input of shape {input.shape}"
        )
    _check_affine(op, input, shape, "normalized_shape", weight=weight, bias=bias)
    if input.dtype == backend.float16:
        return _in_float32(layer_norm, input, weight, bias, shape, eps=eps)
    y = _normalize(input, tuple(range(input.ndim - k, input.ndim)), eps)
    # weight and bias have the trailing dims' shape, so they broadcast as they are.
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise (N, C, *) input over each group of C / num_groups channels (and all of their
    other dims), then apply the per-channel `weight` and `bias` of shape (C,)."""
    op = "group_norm"
    _check_float_input(op, input)
    if not is_int(num_groups):
        raise TypeError(f"{op}: num_groups must be an int, got {type(num_groups).__name__} "
                        f"{num_groups!r}")
    if num_groups <= 0:
        raise RuntimeError(f"{op}: expected num_groups to be greater than 0, got {num_groups}")
    eps = _check_eps(op, eps)
    if input.ndim < 2:
        raise RuntimeError(f"{op}: expected an input of at least 2 dims (N, C, *), got shape "
                           f"{input.shape}")
    n, c, spatial = input.shape[0], input.shape[1], input.shape[2:]
    if c % num_groups:
        raise RuntimeError(
            f"{op}: expected the number of channels to be divisible by num_groups, got input "
            f"of shape {input.shape} ({c} channels) and num_groups={num_groups}"
        )
    _check_affine(op, input, (c,), "one value per channel", weight=weight, bias=bias)
    if input.dtype == backend.float16:
        return _in_float32(group_norm, input, weight, bias, num_groups, eps=eps)
    # (N, G, C/G, *): each group's statistics are over its channels and all their positions.
    # The sizes are spelled out: a -1 could not be inferred for an empty batch.
    grouped = ops.reshape(input, (n, int(num_groups), c // num_groups) + spatial)
    y = ops.reshape(_normalize(grouped, tuple(range(2, grouped.ndim)), eps), input.shape)
    per_channel = (c,) + (1,) * len(spatial)  # broadcasts against (N, C, *)
    if weight is not None:
        y = y * ops.reshape(weight, per_channel)
    if bias is not None:
        y = y + ops.reshape(bias, per_channel)
    return y


__all__ = ["group_norm", "layer_norm"]
