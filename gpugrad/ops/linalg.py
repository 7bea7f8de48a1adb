"""Matrix products: matmul (1-D, 2-D, batched and broadcast batched), mm, bmm, and linear
(x @ w^T + b as one node)."""

from __future__ import annotations

import math

from gpugrad import backend
from gpugrad.autograd.function import Function
from gpugrad.ops.common import broadcast_shapes, check_same_device
from gpugrad.tensor import Tensor


class MatMul(Function):
    """a @ b for a, b with ndim >= 2; batch dims broadcast (the engine sums them back)."""

    def forward(self, a, b):
        return backend.matmul(a, b)

    def backward(self, gy):
        from gpugrad.ops.shape import transpose

        a, b = self.inputs
        ga = MatMul.apply(gy, transpose(b, -1, -2)) if self.needs_input_grad[0] else None
        gb = MatMul.apply(transpose(a, -1, -2), gy) if self.needs_input_grad[1] else None
        return ga, gb


def matmul(a, b):
    from gpugrad.ops.shape import squeeze, unsqueeze

    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError("matmul: both operands must be Tensors")
    check_same_device("matmul", a, b)
    if a.dtype != b.dtype:
        raise RuntimeError(
            f"matmul: expected both operands to have the same dtype, got {a.dtype} and {b.dtype}"
        )
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(
            f"matmul: both arguments need at least 1 dimension, got shapes {a.shape} and {b.shape}"
        )
    k_a = a.shape[-1]
    k_b = b.shape[-2] if b.ndim >= 2 else b.shape[0]
    if k_a != k_b:
        raise RuntimeError(
            f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied ({k_a} != {k_b})"
        )
    if a.ndim > 2 or b.ndim > 2:
        broadcast_shapes("matmul (batch dims)", a.shape[:-2], b.shape[:-2] if b.ndim > 1 else ())
    # 1-D operands are promoted to matrices and the added dim removed after, as NumPy does.
    a2 = unsqueeze(a, 0) if a.ndim == 1 else a
    b2 = unsqueeze(b, -1) if b.ndim == 1 else b
    y = MatMul.apply(a2, b2)
    if b.ndim == 1:
        y = squeeze(y, -1)
    if a.ndim == 1:
        y = squeeze(y, -2 if b.ndim > 1 else -1)
    return y


def mm(a, b):
    if a.ndim != 2 or b.ndim != 2:
        raise RuntimeError(f"mm: expected 2-D tensors, got shapes {a.shape} and {b.shape}")
    return matmul(a, b)


def bmm(a, b):
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise RuntimeError(
            f"bmm: expected 3-D tensors with the same batch size, got {a.shape} and {b.shape}"
        )
    return matmul(a, b)


class Linear(Function):
    """y = x @ w^T (+ b) over the last dim of x, as one node instead of three (transpose,
    matmul, add): the weight's gradient gy^T @ x comes out in w's own (out, in) layout,
    where through w.T's node it was a transposed view that became `.grad` by a copy, and the
    bias is added into the product's fresh buffer."""

    def forward(self, x, w, b=None):
        lead = x.shape[:-1]
        # The row count spelled out: a -1 cannot be inferred when a feature count is 0.
        y = backend.matmul(x.reshape(math.prod(lead), x.shape[-1]), w.T)
        if b is not None:
            y += b
        return y.reshape(lead + (w.shape[0],))

    def backward(self, gy):
        from gpugrad.ops.reduce import sum
        from gpugrad.ops.shape import reshape, transpose

        x, w = self.inputs[0], self.inputs[1]
        needs = self.needs_input_grad
        out_features, in_features = w.shape
        rows = math.prod(x.shape[:-1])
        gy2 = reshape(gy, (rows, out_features))
        gx = reshape(MatMul.apply(gy2, w), x.shape) if needs[0] else None
        gw = None
        if needs[1]:
            gw = MatMul.apply(transpose(gy2, 0, 1), reshape(x, (rows, in_features)))
        if len(needs) == 2:
            return gx, gw
        return gx, gw, (sum(gy2, dim=0) if needs[2] else None)


def linear(x, w, b=None):
    """x @ w.T (+ b) for x (..., in), w (out, in), b (out,) or None, one dtype and device
    (F.linear checks its arguments and takes other shapes through matmul)."""
    if x.dtype != w.dtype or (b is not None and b.dtype != x.dtype):
        dtypes = f"{x.dtype}, {w.dtype}" + ("" if b is None else f" and {b.dtype}")
        raise RuntimeError(f"linear: expected input, weight and bias of one dtype, got {dtypes}")
    return Linear.apply(x, w) if b is None else Linear.apply(x, w, b)
