"""More of `torch.nn.functional`: the regression and divergence losses, binary cross entropy on
probabilities, and the embedding lookup.

`gpugrad.nn.functional` re-exports these names; this module imports only the shared checks
(`gpugrad.nn._checks`), never `functional` itself, so that the two can import in any order.

Everything but binary_cross_entropy is a composition of gpugrad ops, so autograd
differentiates it to any order. binary_cross_entropy is a Function of its own because
PyTorch's gradient there is not the derivative of its clamped forward (see below).
"""

from __future__ import annotations

import warnings

import numpy as np  # np.errstate only: log(0) is an expected -inf here, not a mistake

from gpugrad import backend, ops
from gpugrad.autograd.function import Function
from gpugrad.nn._checks import (
    _check_devices, _check_tensor, _check_weight_size, _reduce, _reduction,
)
from gpugrad.tensor import Tensor


def _warn_if_sizes_differ(op: str, input: Tensor, target: Tensor) -> None:
    # PyTorch warns (and then broadcasts) for the element-wise regression losses.
    if input.shape != target.shape:
        warnings.warn(
            f"{op}: using a target size {target.shape} that is different to the input size "
            f"{input.shape}. This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            stacklevel=3,
        )


def _check_pair(op: str, input, target, weight=None) -> None:
    """input and target (and an optional weight) are Tensors on one device."""
    _check_tensor(op, "input", input)
    _check_tensor(op, "target", target)
    if weight is not None:
        _check_tensor(op, "weight", weight)
    _check_devices(op, input=input, target=target, weight=weight)


def _float_difference(op: str, input: Tensor, target: Tensor) -> Tensor:
    """input - target in the promoted dtype, which must be a float (PyTorch's kernels for
    smooth_l1 and friends exist for floats only)."""
    diff = input - target
    if diff.dtype.kind != "f":
        raise RuntimeError(
            f"{op}: expected a floating point input or target, got {input.dtype} and "
            f"{target.dtype}"
        )
    return diff


# ----------------------------------------------------------------------------- regression


def l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None,
            reduction: str = "mean", weight=None) -> Tensor:
    """Mean absolute error |input - target|, reduced; shapes broadcast (with a warning).

    With a `weight` (the input's shape, as PyTorch 2.13), 'mean' is the weighted average
    sum(w * |d|) / sum(w).
    """
    op = "l1_loss"
    reduction = _reduction(op, size_average, reduce, reduction)
    _check_pair(op, input, target, weight)
    if input.dtype.kind == "b" or target.dtype.kind == "b":
        # gpugrad subtracts bools, PyTorch refuses to; l1_loss is the one loss that shows it.
        raise RuntimeError(f"{op}: subtraction with a bool tensor is not supported, got "
                           f"{input.dtype} and {target.dtype}")
    _warn_if_sizes_differ(op, input, target)
    # abs's gradient is sign(d): 0 where input == target, as PyTorch's l1_loss.
    err = ops.abs(input - target)
    if weight is None:
        return _reduce(err, reduction)
    _check_weight_size(op, weight, input)
    err = err * weight
    if reduction == "mean":
        return ops.sum(err) / ops.sum(weight)
    return _reduce(err, reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None,
                   reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target); beta = 0
    is l1_loss. Shapes broadcast (with a warning)."""
    op = "smooth_l1_loss"
    reduction = _reduction(op, size_average, reduce, reduction)
    _check_pair(op, input, target)
    if beta < 0:
        raise RuntimeError(f"{op}: does not support negative values for beta, got {beta}")
    _warn_if_sizes_differ(op, input, target)
    d = _float_difference(op, input, target)
    z = ops.abs(d)
    if beta == 0:
        return _reduce(z, reduction)
    # Both branches meet with slope 1 at |d| == beta, which takes the linear one (as PyTorch:
    # its second derivative there is 0).
    loss = ops.where(z < beta, d * d * (0.5 / beta), z - 0.5 * beta)
    return _reduce(loss, reduction)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight=None) -> Tensor:
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta); smooth_l1_loss times delta.

    The loss has the input's dtype (the target is cast to it, as PyTorch does); shapes
    broadcast (with a warning). A `weight` (the input's shape) multiplies each term before
    the reduction, and 'mean' stays the plain mean, as PyTorch 2.13.
    """
    op = "huber_loss"
    reduction = _reduction(op, None, None, reduction)
    _check_pair(op, input, target, weight)
    if delta <= 0:
        raise RuntimeError(f"{op}: does not support non-positive values for delta, got {delta}")
    if input.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected a floating point input, got {input.dtype}")
    _warn_if_sizes_differ(op, input, target)
    d = input - target.to(input.dtype)
    z = ops.abs(d)
    loss = ops.where(z < delta, d * d * 0.5, (z - 0.5 * delta) * delta)
    if weight is not None:
        _check_weight_size(op, weight, input)
        loss = loss * weight
    return _reduce(loss, reduction)


# ----------------------------------------------------------------------------- divergence

_KL_REDUCTIONS = ("none", "batchmean", "sum", "mean")


def _kl_div_reduction(size_average, reduce, reduction: str, warn: bool = True) -> str:
    """kl_div's reductions: the legacy flags as everywhere, else one of _KL_REDUCTIONS, with
    PyTorch's warning that 'mean' is not the divergence ('batchmean' is) when `warn` (at each
    call, not when KLDivLoss is built, as in PyTorch)."""
    if size_average is not None or reduce is not None:
        return _reduction("kl_div", size_average, reduce, "mean")
    if reduction not in _KL_REDUCTIONS:
        raise ValueError(f"kl_div: {reduction} is not a valid value for reduction "
                         f"(expected one of {', '.join(_KL_REDUCTIONS)})")
    if reduction == "mean" and warn:
        warnings.warn(
            "kl_div: reduction: 'mean' divides the total loss by both the batch size and the "
            "support size. 'batchmean' divides only by the batch size, and aligns with the KL "
            "div math definition. 'mean' will be changed to behave the same as 'batchmean' in "
            "the next major release.",
            stacklevel=3,
        )
    return reduction


def kl_div(input: Tensor, target: Tensor, size_average=None, reduce=None,
           reduction: str = "mean", log_target: bool = False) -> Tensor:
    """KL(target || exp(input)) term by term, for log-probabilities `input`:

        target * (log(target) - input)        (log_target=False)
        exp(target) * (target - input)        (log_target=True)

    A target of 0 contributes 0 (0 log 0 = 0, as PyTorch's xlogy), with no NaN in the value
    or in either gradient. 'batchmean' is the sum over input.shape[0] (the true divergence
    per sample); shapes broadcast, without a warning, as in PyTorch.
    """
    op = "kl_div"
    reduction = _kl_div_reduction(size_average, reduce, reduction)
    _check_pair(op, input, target)
    if input.dtype.kind != "f" or target.dtype.kind != "f":
        raise RuntimeError(f"{op}: integral inputs not supported, got {input.dtype} and "
                           f"{target.dtype}")
    if log_target:
        loss = ops.exp(target) * (target - input)
    else:
        # log of 1 where target == 0: the term is then 0 * (0 - input), and the gradient of
        # the log is cut there by the where (PyTorch's xlogy gives NaN for d/dtarget at 0;
        # here it is -input). A negative target still gives NaN, as in PyTorch.
        safe = ops.where(target == 0, 1.0, target)
        loss = target * (ops.log(safe) - input)
    if reduction == "batchmean":
        total = ops.sum(loss)
        return total / input.shape[0] if input.ndim else total
    return _reduce(loss, reduction)


# ----------------------------------------------------------------------------- binary CE

# PyTorch's floor on input * (1 - input) in the gradient: 1e-12 rounded to float32, as its
# kernel holds it (also for float64 inputs, where the gradient at 0 or 1 is 1.000000004e12).
_BCE_EPS = float(np.float32(1e-12))


class _BinaryCrossEntropy(Function):
    """Element-wise -(t log(x) + (1 - t) log(1 - x)), each log clamped at -100 (PyTorch's
    BCELoss), so inputs of exactly 0 or 1 give a finite loss.

    The gradients are PyTorch's formulas, not the derivatives of the clamped forward:
        d/dx = (x - t) / max(x (1 - x), _BCE_EPS) (finite at x = 0 and 1)
        d/dt = log(1 - x) - log(x)               (unclamped: -inf / inf at x = 0 / 1)
    written with gpugrad ops, so they are differentiable in turn.
    """

    def forward(self, x, t):
        xp = backend.array_module(x)
        with np.errstate(divide="ignore"):  # log(0) = -inf, clamped to -100 at once
            log_x = xp.maximum(xp.log(x), -100.0)
            log_1mx = xp.maximum(xp.log(1.0 - x), -100.0)
        return (t - 1.0) * log_1mx - t * log_x

    def backward(self, gy):
        x, t = self.inputs
        gx = gt = None
        if self.needs_input_grad[0]:
            gx = gy * (x - t) / ops.clamp(x * (1.0 - x), min=_BCE_EPS)
        if self.needs_input_grad[1]:
            with np.errstate(divide="ignore"):
                gt = gy * (ops.log(1.0 - x) - ops.log(x))
        return gx, gt


def _check_probabilities(op: str, name: str, x: Tensor) -> None:
    """Every element in [0, 1] (NaN fails), as PyTorch checks; names the first bad value."""
    if x.numel() == 0:
        return
    xp = backend.array_module(x.data)
    inside = (x.data >= 0) & (x.data <= 1)
    if not bool(xp.all(inside)):
        bad = float(x.data[~inside].reshape(-1)[0])
        raise RuntimeError(f"{op}: all elements of {name} should be between 0 and 1, got {bad}")


def binary_cross_entropy(input: Tensor, target: Tensor, weight=None, size_average=None,
                         reduce=None, reduction: str = "mean") -> Tensor:
    """Binary cross entropy of probabilities `input` against `target` (same shape and dtype,
    both in [0, 1]); `weight` broadcasts to the input's shape and multiplies each term.

    For logits, binary_cross_entropy_with_logits is the stable choice.
    """
    op = "binary_cross_entropy"
    reduction = _reduction(op, size_average, reduce, reduction)
    _check_pair(op, input, target, weight)
    if target.shape != input.shape:
        raise ValueError(
            f"{op}: using a target size {target.shape} that is different to the input size "
            f"{input.shape} is deprecated. Please ensure they have the same size."
        )
    if input.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected a floating point input, got {input.dtype}")
    if target.dtype != input.dtype:
        raise RuntimeError(f"{op}: expected a target of the input's dtype {input.dtype}, got "
                           f"{target.dtype}")
    _check_probabilities(op, "input", input)
    _check_probabilities(op, "target", target)
    loss = _BinaryCrossEntropy.apply(input, target)
    if weight is not None:
        _check_tensor(op, "weight", weight)
        # The weight takes the input's dtype (as PyTorch) and may not grow the loss's shape.
        weighted = loss * weight.to(input.dtype)
        if weighted.shape != loss.shape:
            raise RuntimeError(f"{op}: weight of shape {weight.shape} does not broadcast to "
                               f"the input's shape {input.shape}")
        loss = weighted
    return _reduce(loss, reduction)


# ----------------------------------------------------------------------------- embedding

_INDEX_DTYPES = (backend.int64, backend.int32)


def _padding_index(op: str, padding_idx, num_embeddings: int):
    """padding_idx checked and made non-negative (None stays None), as PyTorch's."""
    if padding_idx is None:
        return None
    if isinstance(padding_idx, bool) or not ops.common.is_int(padding_idx):
        raise TypeError(f"{op}: padding_idx must be an int, got {padding_idx!r}")
    if not -num_embeddings <= padding_idx < num_embeddings:
        # AssertionError, as PyTorch raises here.
        raise AssertionError(f"{op}: padding_idx must be within num_embeddings, got "
                             f"padding_idx={padding_idx} for {num_embeddings} embeddings")
    return int(padding_idx) % num_embeddings


def _unsupported_options(op: str, max_norm, scale_grad_by_freq, sparse) -> None:
    """Options gpugrad does not implement raise rather than being ignored."""
    if max_norm is not None:
        raise NotImplementedError(f"{op}: max_norm is not supported by gpugrad (got "
                                  f"max_norm={max_norm}); renormalise the weight yourself")
    if scale_grad_by_freq:
        raise NotImplementedError(f"{op}: scale_grad_by_freq=True is not supported by gpugrad")
    if sparse:
        raise NotImplementedError(f"{op}: sparse=True is not supported by gpugrad (it has no "
                                  "sparse gradients); use sparse=False")


def embedding(input: Tensor, weight: Tensor, padding_idx=None, max_norm=None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False,
              sparse: bool = False) -> Tensor:
    """Rows of `weight` (num_embeddings, embedding_dim) at the int64/int32 indices `input`
    (any shape): the output has shape input.shape + (embedding_dim,).

    The gradient adds up over repeated indices (indexing's scatter-add), and is 0 for the
    row padding_idx, whose value is still looked up (nn.Embedding zeros it at construction).
    An index outside [0, num_embeddings) raises naming it: a negative index is an error, as
    in PyTorch, never counted from the end.
    """
    op = "embedding"
    _check_tensor(op, "input", input)
    _check_tensor(op, "weight", weight)
    _check_devices(op, input=input, weight=weight)
    _unsupported_options(op, max_norm, scale_grad_by_freq, sparse)
    if weight.ndim != 2:
        raise RuntimeError(f"{op}: 'weight' must be 2-D, got shape {weight.shape}")
    if input.dtype not in _INDEX_DTYPES:
        raise RuntimeError(f"{op}: expected indices of dtype int64 or int32, got {input.dtype}")
    n = weight.shape[0]
    padding_idx = _padding_index(op, padding_idx, n)
    if input.numel():
        xp = backend.array_module(input.data)
        lo, hi = int(xp.min(input.data)), int(xp.max(input.data))
        if lo < 0 or hi >= n:
            raise IndexError(f"{op}: index {lo if lo < 0 else hi} is out of range for a weight "
                             f"of {n} rows (indices must be in [0, {n - 1}])")
    out = ops.getitem(weight, input)
    if padding_idx is not None:
        # The padding positions read the row through a detached copy, so no gradient reaches
        # that row (the others' gradients are untouched).
        is_pad = ops.unsqueeze(input == padding_idx, -1)
        out = ops.where(is_pad, out.detach(), out)
    return out


__all__ = ["binary_cross_entropy", "embedding", "huber_loss", "kl_div", "l1_loss",
           "smooth_l1_loss"]
