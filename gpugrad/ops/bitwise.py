"""Bitwise ops on integer and bool tensors (`&`, `|`, `^`, `~`), with no gradient.

As in PyTorch: on bool tensors they are the logical ops, on integers they work bit by bit
(6 & 3 is 2, ~6 is -7), and a float tensor raises instead of being read as a truth value.
"""

from __future__ import annotations

from gpugrad import backend
from gpugrad.ops.elementwise import _compare
from gpugrad.tensor import Tensor


def _check_integral(op: str, *tensors: Tensor) -> None:
    for t in tensors:
        if t.dtype.kind not in "biu":
            raise TypeError(f"{op}: expected integer or bool tensors, got {t.dtype}")


def _binary(name: str, ufunc: str):
    return _compare(name, ufunc, check=_check_integral,
                    doc="of integer or bool tensors (or scalars), with no grad")


bitwise_and = _binary("bitwise_and", "bitwise_and")
bitwise_or = _binary("bitwise_or", "bitwise_or")
bitwise_xor = _binary("bitwise_xor", "bitwise_xor")


def bitwise_not(x: Tensor) -> Tensor:
    """~x: the logical not of a bool tensor, every bit flipped in an integer one; no grad."""
    if not isinstance(x, Tensor):
        raise TypeError(f"bitwise_not: expected a Tensor, got {type(x).__name__}")
    _check_integral("bitwise_not", x)
    return Tensor(backend.array_module(x.data).invert(x.data), x.device)
