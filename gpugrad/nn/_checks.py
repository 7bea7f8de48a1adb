"""Argument checks and reductions shared by the functional modules of gpugrad.nn."""

from __future__ import annotations

from gpugrad import ops
from gpugrad.tensor import Tensor

_REDUCTIONS = ("none", "mean", "sum")


def _reduction(op: str, size_average, reduce, reduction: str) -> str:
    """PyTorch's legacy (size_average, reduce) pair, else the `reduction` string, checked."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        if size_average and reduce:
            reduction = "mean"
        elif reduce:
            reduction = "sum"
        else:
            reduction = "none"
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: {reduction} is not a valid value for reduction "
                         f"(expected one of {', '.join(_REDUCTIONS)})")
    return reduction


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return ops.mean(loss)
    if reduction == "sum":
        return ops.sum(loss)
    return loss


def _check_tensor(op: str, name: str, x) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: {name} must be a gpugrad Tensor, got {type(x).__name__}")


def _check_devices(op: str, **tensors) -> None:
    """All given tensors (None skipped) on one device, checked before any constant is built."""
    first = None
    for name, t in tensors.items():
        if t is None:
            continue
        if first is None:
            first = (name, t.device)
        elif t.device != first[1]:
            raise RuntimeError(
                f"{op}: expected all tensors on the same device, got {first[0]} on {first[1]} "
                f"and {name} on {t.device}"
            )


def _check_weight_size(op: str, weight, input: Tensor) -> None:
    """A per-element loss weight: a Tensor of the input's shape (PyTorch 2.13's `weight=`)."""
    _check_tensor(op, "weight", weight)
    if weight.shape != input.shape:
        raise ValueError(
            f"{op}: weights and input must have the same size, got weight of shape "
            f"{weight.shape} and input of shape {input.shape}"
        )


def _check_float_input(op: str, input) -> None:
    """A Tensor of a floating dtype: PyTorch has no integer kernel for these ops."""
    _check_tensor(op, "input", input)
    if input.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected a floating-point input, got {input.dtype}")
