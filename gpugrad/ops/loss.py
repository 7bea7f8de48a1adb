"""Classification losses: fused softmax-cross-entropy and nll_loss.

cross_entropy runs the fused kernels (one pass for the loss, one for dlogits, no one-hot). Its
double backward is a composite of simpler ops: dlogits = (softmax(x) * A - B) * r, where for
row i with target y, smoothing e, class weights w and C classes
    A_i = (1 - e) w[y] + (e / C) sum(w),   B_ij = (1 - e) w[y] [j == y] + (e / C) w[j],
and r_i is the incoming gradient over the mean's total weight (0 for ignored rows).
"""

from __future__ import annotations

import numpy as np

from gpugrad import backend
from gpugrad.autograd.function import Function
from gpugrad.kernels import loss as loss_kernels
from gpugrad.tensor import Tensor

REDUCTIONS = ("mean", "sum", "none")


class CrossEntropy(Function):
    def forward(self, logits, target, weight, ignore_index, label_smoothing, reduction):
        self.options = (weight, ignore_index, label_smoothing, reduction)
        loss, lse, total_weight = loss_kernels.softmax_cross_entropy_forward(
            logits, target, weight, ignore_index, label_smoothing, reduction, self.device
        )
        self.lse, self.total_weight = lse, total_weight
        return loss

    def backward(self, gloss):
        logits, target = self.inputs[0], self.inputs[1]
        return CrossEntropyBackward.apply(logits, gloss, target=target.data, lse=self.lse,
                                          total_weight=self.total_weight,
                                          options=self.options), None


class CrossEntropyBackward(Function):
    """dlogits from the fused backward kernel; differentiable again through a composite."""

    def forward(self, logits, gloss, target, lse, total_weight, options):
        self.target, self.total_weight, self.options = target, total_weight, options
        weight, ignore_index, label_smoothing, reduction = options
        # The forward checked these labels: no second check (on the GPU, a wait).
        return loss_kernels.softmax_cross_entropy_backward(
            logits, target, lse, gloss, weight, ignore_index, label_smoothing, reduction,
            total_weight, self.device, check_labels=False,
        )

    def backward(self, ggx):
        from gpugrad.ops.reduce import sum
        from gpugrad.ops.softmax import softmax

        logits, gloss = self.inputs
        weight, ignore_index, label_smoothing, reduction = self.options
        a, b, per_row = _composite_terms(logits.data, self.target, weight, ignore_index,
                                         label_smoothing, reduction, self.total_weight)
        dev = logits.device
        a, b, per_row = Tensor(a, dev), Tensor(b, dev), Tensor(per_row, dev)
        r = (gloss.reshape(-1, 1) if reduction == "none" else gloss) * per_row
        p = softmax(logits, dim=1)
        g_logits = g_gloss = None
        if self.needs_input_grad[0]:
            # d<ggx, (p*A - B) r>/dx: the softmax VJP applied to ggx * A * r.
            v = ggx * a * r
            g_logits = p * (v - sum(v * p, dim=1, keepdim=True))
        if self.needs_input_grad[1]:
            per_row_total = sum(ggx * (p * a - b), dim=1, keepdim=True) * per_row
            g_gloss = per_row_total.reshape(-1) if reduction == "none" else sum(per_row_total)
        return g_logits, g_gloss


def _composite_terms(logits, target, weight, ignore_index, eps, reduction, total_weight):
    """A (N,1), B (N,C) and the per-row factor (N,1) of the composite dlogits."""
    xp = backend.array_module(logits)
    n, c = logits.shape
    dt = logits.dtype
    w = xp.ones(c, dtype=dt) if weight is None else weight.astype(dt)
    keep = target != ignore_index
    safe = xp.where(keep, target, 0)
    wy = w[safe] * keep
    a = ((1 - eps) * wy + (eps / c) * w.sum() * keep).reshape(n, 1).astype(dt)
    b = xp.zeros((n, c), dtype=dt)
    b[xp.arange(n), safe] = (1 - eps) * wy
    b += (eps / c) * w.reshape(1, c) * keep.reshape(n, 1)
    per_row = xp.ones((n, 1), dtype=dt)
    if reduction == "mean":
        per_row = per_row / total_weight
    return a, b, per_row.astype(dt)


def _check_options(op, reduction, label_smoothing, ignore_index):
    """(label_smoothing, ignore_index) as float and int, once checked."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return (loss_kernels.check_label_smoothing(op, label_smoothing),
            loss_kernels.check_ignore_index(op, ignore_index))


def _check_input(op, x, what):
    """Floating-point input of at least one dimension."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected floating-point {what}, got {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{op}: expected input of shape (C,), (N, C) or (N, C, d1, ...), "
                         f"got a 0-d tensor")


def _check_weight(op, weight, logits):
    if weight is None:
        return None
    c = logits.shape[1]
    if weight.ndim != 1 or weight.shape[0] != c:
        raise ValueError(f"{op}: expected weight of shape ({c},), got {tuple(weight.shape)}")
    if weight.device != logits.device:
        raise RuntimeError(f"{op}: weight is on {weight.device} but input on {logits.device}")
    return weight.data.astype(logits.dtype, copy=False)


def _flatten_spatial(x, target):
    """(N, C, d1, ...) logits with (N, d1, ...) targets -> (N*d1*..., C) and (N*d1*...)."""
    from gpugrad.ops.shape import permute

    dims = (0,) + tuple(range(2, x.ndim)) + (1,)
    return permute(x, dims).reshape(-1, x.shape[1]), target.reshape(-1)


def _check_class_target(op, x, target):
    if not isinstance(target, Tensor):
        raise TypeError(f"{op}: target must be a Tensor, got {type(target).__name__}")
    if target.device != x.device:
        raise RuntimeError(f"{op}: target is on {target.device} but input on {x.device}")
    if target.dtype.kind not in "iu":
        raise TypeError(
            f"{op}: expected class-index targets of dtype int64 (or float class probabilities "
            f"of the input's shape), got dtype {target.dtype} with shape {tuple(target.shape)}"
        )
    expected = (x.shape[0],) + tuple(x.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"{op}: expected target of shape {expected} for input of shape {tuple(x.shape)}, "
            f"got {tuple(target.shape)}"
        )


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Softmax cross-entropy, as torch.nn.functional.cross_entropy."""
    op = "cross_entropy"
    label_smoothing, ignore_index = _check_options(op, reduction, label_smoothing, ignore_index)
    x = input
    _check_input(op, x, "logits")
    if x.ndim == 1:  # one unbatched sample: (C,) logits, a 0-d class or (C,) probabilities
        if not isinstance(target, Tensor):
            raise TypeError(f"{op}: target must be a Tensor, got {type(target).__name__}")
        expected = tuple(x.shape) if target.dtype.kind == "f" else ()
        if tuple(target.shape) != expected:
            raise ValueError(
                f"{op}: for unbatched input of shape {tuple(x.shape)} expected a target of "
                f"shape {expected}, got {tuple(target.shape)}"
            )
        batched_target = target.reshape(1, -1) if target.dtype.kind == "f" else target.reshape(1)
        out = cross_entropy(x.reshape(1, -1), batched_target, weight, ignore_index, reduction,
                            label_smoothing)
        return out.reshape(()) if reduction == "none" else out
    if isinstance(target, Tensor) and target.dtype.kind == "f":
        if ignore_index != -100:
            raise ValueError(f"{op}: ignore_index is not supported for class-probability "
                             f"(floating-point) targets, got ignore_index={ignore_index}")
        return _soft_target_cross_entropy(x, target, weight, reduction, label_smoothing)
    _check_class_target(op, x, target)
    w = _check_weight(op, weight, x)
    spatial = x.shape[2:]
    if x.ndim > 2:
        x, target = _flatten_spatial(x, target)
    target_data = loss_kernels.class_indices(target.data, x.shape[1], ignore_index, op)
    loss = CrossEntropy.apply(x, Tensor(target_data, target.device), weight=w,
                              ignore_index=ignore_index, label_smoothing=label_smoothing,
                              reduction=reduction)
    if reduction == "none" and spatial:
        loss = loss.reshape(input.shape[0], *spatial)
    return loss


def _soft_target_cross_entropy(x, target, weight, reduction, label_smoothing):
    """Class-probability targets: -sum_c w_c q_c log p_c per row, q smoothed towards uniform."""
    from gpugrad.ops.reduce import sum
    from gpugrad.ops.softmax import log_softmax

    op = "cross_entropy"
    if tuple(target.shape) != tuple(x.shape):
        raise ValueError(f"{op}: expected class indices of an integer dtype, or probability "
                         f"targets of the input's shape {x.shape}; got {target.dtype} targets "
                         f"of shape {target.shape}")
    c = x.shape[1]
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / c
    logp = log_softmax(x, dim=1)
    if weight is not None:
        shape = (1, c) + (1,) * (x.ndim - 2)
        logp = logp * weight.reshape(*shape)
    per_row = -sum(target * logp, dim=1)
    if reduction == "none":
        return per_row
    total = sum(per_row)
    return total * (1.0 / per_row.numel()) if reduction == "mean" else total


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of log-probabilities, as torch.nn.functional.nll_loss."""
    from gpugrad.ops.indexing import Gather
    from gpugrad.ops.reduce import sum

    op = "nll_loss"
    _, ignore_index = _check_options(op, reduction, 0.0, ignore_index)
    x = input
    _check_input(op, x, "log-probabilities")
    if x.ndim == 1:  # one unbatched sample: a 0-d class (or one of shape (1,), as PyTorch)
        if not isinstance(target, Tensor):
            raise TypeError(f"{op}: target must be a Tensor, got {type(target).__name__}")
        if tuple(target.shape) not in ((), (1,)):
            raise ValueError(f"{op}: for unbatched input of shape {tuple(x.shape)} expected a "
                             f"target of shape () or (1,), got {tuple(target.shape)}")
        out = nll_loss(x.reshape(1, -1), target.reshape(1), weight, ignore_index, reduction)
        return out.reshape(()) if reduction == "none" else out
    _check_class_target(op, x, target)
    w = _check_weight(op, weight, x)
    spatial = x.shape[2:]
    if x.ndim > 2:
        x, target = _flatten_spatial(x, target)
    # Checked in the labels' own dtype, before the cast (a uint64 label could wrap).
    loss_kernels.check_targets(target.data, x.shape[1], ignore_index, op=op)
    t = target.data.astype(np.int64, copy=False)
    xp = backend.array_module(t)
    keep = t != ignore_index
    safe = xp.where(keep, t, 0)
    row_w = ((xp.ones(x.shape[1], dtype=x.dtype) if w is None else w)[safe] * keep).astype(x.dtype)
    # The Function, not gather(): check_targets has checked the labels, and gather's own
    # range check would read the GPU back once more.
    picked = Gather.apply(x, index=safe.reshape(-1, 1), dim=1).reshape(-1)
    if reduction == "mean":
        # Each kept row's weight over the total, and exactly 0 for an ignored row (as PyTorch:
        # a gradient of 0, not 0 * 1/0). With every row ignored the loss is 0 / 0 = nan, and
        # the gradient zeros.
        total_w = row_w.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            share = xp.where(keep, row_w / total_w, 0).astype(x.dtype)
        nothing_kept = xp.where(keep.any(), 0, np.nan).astype(x.dtype)
        return sum(-picked * Tensor(share, x.device)) + Tensor(nothing_kept, x.device)
    losses = -picked * Tensor(row_w, x.device)
    if reduction == "none":
        return losses.reshape(input.shape[0], *spatial) if spatial else losses
    return sum(losses)
