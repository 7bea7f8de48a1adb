"""`gpugrad.nn.functional`: the stateless layer functions, as `torch.nn.functional`.

Heavy ops live in `gpugrad.ops` (conv, pool, loss, pad, batch norm, dropout); the rest are
short compositions of gpugrad ops, so autograd differentiates them (to any order).
"""

from __future__ import annotations

import warnings

import numpy as np

from gpugrad import backend
from gpugrad import grad_mode
from gpugrad import ops
from gpugrad.ops.dropout import check_p
from gpugrad.ops.dropout import dropout as _dropout
from gpugrad.ops.normalization import batch_norm as _batch_norm
from gpugrad.ops.pad import pad as _pad
from gpugrad.nn._checks import (  # noqa: F401  (_reduction: nn.loss uses it through F)
    _REDUCTIONS, _check_devices, _check_tensor, _check_weight_size, _reduce, _reduction,
)
from gpugrad.tensor import Tensor


# ----------------------------------------------------------------------------- linear, conv


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = input @ weight.T + bias, with weight of shape (out_features, in_features)."""
    _check_tensor("linear", "input", input)
    _check_devices("linear", input=input, weight=weight, bias=bias)
    if weight.ndim not in (1, 2):
        raise RuntimeError(f"linear: weight must be 1-D or 2-D, got shape {weight.shape}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[-1]:
        raise RuntimeError(
            f"linear: input has {input.shape[-1] if input.ndim else 0} features in its last "
            f"dimension (shape {input.shape}) but weight of shape {weight.shape} expects "
            f"{weight.shape[-1]}"
        )
    if weight.ndim == 2 and (bias is None or (isinstance(bias, Tensor)
                                              and bias.shape == (weight.shape[0],))):
        return ops.linear(input, weight, bias)
    # A 1-D weight, or a bias of another (broadcastable) shape, as PyTorch allows.
    y = ops.matmul(input, ops.transpose(weight, 0, 1) if weight.ndim == 2 else weight)
    if bias is not None:
        y = y + bias
    return y


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation) of (N, C, H, W) or (C, H, W) input.

    padding='same' with an odd total (an even kernel) pads one more row/column at the
    bottom/right, as PyTorch does, by padding the input first.
    """
    from gpugrad.ops.conv import conv2d as _conv2d

    if isinstance(padding, str) and padding == "same" and isinstance(weight, Tensor) and \
            weight.ndim == 4:
        dil = (dilation, dilation) if isinstance(dilation, int) else tuple(dilation)
        totals = [d * (k - 1) for d, k in zip(dil, weight.shape[2:])]
        if any(t % 2 for t in totals):
            st = (stride, stride) if isinstance(stride, int) else tuple(stride)
            if st != (1, 1):
                raise ValueError(f"conv2d: padding='same' is not supported for strided "
                                 f"convolutions (stride={stride})")
            (th, tw) = totals
            input = _pad(input, (tw // 2, tw - tw // 2, th // 2, th - th // 2))
            padding = 0
    return _conv2d(input, weight, bias, stride=stride, padding=padding, dilation=dilation,
                   groups=groups)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,
                     padding=0, output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """2-D transposed convolution of (N, C_in, H, W) or (C_in, H, W) input with weight
    (C_in, C_out / groups, kH, kW): conv2d's adjoint in its input."""
    from gpugrad.ops.conv import conv_transpose2d as _conv_transpose2d

    return _conv_transpose2d(input, weight, bias, stride=stride, padding=padding,
                             output_padding=output_padding, groups=groups, dilation=dilation)


# ----------------------------------------------------------------------------- pooling


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    from gpugrad.ops.pool import max_pool2d as _max_pool2d

    return _max_pool2d(input, kernel_size, stride=stride, padding=padding, dilation=dilation,
                       ceil_mode=ceil_mode, return_indices=return_indices)


def max_pool2d_with_indices(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode: bool = False, return_indices: bool = True):
    return max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode,
                      return_indices=True)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None) -> Tensor:
    from gpugrad.ops.pool import avg_pool2d as _avg_pool2d

    return _avg_pool2d(input, kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                       count_include_pad=count_include_pad, divisor_override=divisor_override)


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    from gpugrad.ops.pool import adaptive_avg_pool2d as _adaptive_avg_pool2d

    return _adaptive_avg_pool2d(input, output_size)


# ----------------------------------------------------------------------------- normalization


def batch_norm(input: Tensor, running_mean, running_var, weight=None, bias=None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation over dim 1; in training the running stats update in place."""
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


def dropout(input: Tensor, p: float = 0.5, training: bool = True,
            inplace: bool = False) -> Tensor:
    """Zero elements with probability p and scale the rest by 1/(1-p) (when training).

    `inplace=True`: see _maybe_inplace.
    """
    check_p("dropout", p)
    if not training or p == 0.0 or input.numel() == 0:
        return input
    out = _dropout(input, p)
    return _maybe_inplace("dropout", input, out, inplace)


def _maybe_inplace(op: str, input: Tensor, out: Tensor, inplace: bool) -> Tensor:
    """`inplace=True` as PyTorch where nothing is recorded: `out`'s values are written into
    `input`, which is returned (also under no_grad). A leaf that requires grad raises while
    recording, as in PyTorch. A recorded non-leaf gets `out`, a new tensor with the same
    values: gpugrad's tape has no version counters, and overwriting an array another op saved
    for its backward would corrupt that op's gradient silently."""
    if not inplace or out is input:
        return out
    recorded = input.requires_grad and grad_mode.is_grad_enabled()
    if recorded and input.is_leaf:
        raise RuntimeError(
            f"{op}(inplace=True): a leaf tensor that requires grad can't be modified in place "
            "(as in PyTorch); use inplace=False, or detach the input"
        )
    if recorded:
        return out
    input.data[...] = out.data
    return input


# ----------------------------------------------------------------------------- activations


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return _maybe_inplace("relu", input, ops.relu(input), inplace)


def sigmoid(input: Tensor) -> Tensor:
    return ops.sigmoid(input)


def tanh(input: Tensor) -> Tensor:
    return ops.tanh(input)


def _softmax_dim(name: str, ndim: int) -> int:
    warnings.warn(
        f"Implicit dimension choice for {name} has been deprecated. Change the call to "
        "include dim=X as an argument.",
        stacklevel=3,
    )
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim=None, _stacklevel: int = 3, dtype=None) -> Tensor:
    if dim is None:
        dim = _softmax_dim("softmax", input.ndim)
    return ops.softmax(input, dim=dim, dtype=dtype)


def log_softmax(input: Tensor, dim=None, _stacklevel: int = 3, dtype=None) -> Tensor:
    if dim is None:
        dim = _softmax_dim("log_softmax", input.ndim)
    return ops.log_softmax(input, dim=dim, dtype=dtype)


def _softplus(z: Tensor) -> Tensor:
    """log(1 + exp(z)), stable for any z, with the exact gradient sigmoid(z) everywhere.

    Each branch of the `where` sees a clamped input, so neither exp overflows and the unused
    branch contributes a zero (never a NaN) to the gradient.
    """
    pos = ops.clamp(z, min=0.0)
    neg = ops.clamp(z, max=0.0)
    big = pos + ops.log1p(ops.exp(-pos))
    small = ops.log1p(ops.exp(neg))
    return ops.where(z > 0, big, small)


# ----------------------------------------------------------------------------- losses


def cross_entropy(input: Tensor, target: Tensor, weight=None, size_average=None,
                  ignore_index: int = -100, reduce=None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    from gpugrad.ops.loss import cross_entropy as _cross_entropy

    reduction = _reduction("cross_entropy", size_average, reduce, reduction)
    return _cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                          reduction=reduction, label_smoothing=label_smoothing)


def nll_loss(input: Tensor, target: Tensor, weight=None, size_average=None,
             ignore_index: int = -100, reduce=None, reduction: str = "mean") -> Tensor:
    from gpugrad.ops.loss import nll_loss as _nll_loss

    reduction = _reduction("nll_loss", size_average, reduce, reduction)
    return _nll_loss(input, target, weight=weight, ignore_index=ignore_index,
                     reduction=reduction)


def mse_loss(input: Tensor, target: Tensor, size_average=None, reduce=None,
             reduction: str = "mean", weight=None) -> Tensor:
    """Mean squared error: (input - target)^2, reduced; shapes broadcast (with a warning).
    A `weight` of the input's shape multiplies each term, and 'mean' is then
    sum(w * d^2) / sum(w) (PyTorch 2.13's `weight=`)."""
    reduction = _reduction("mse_loss", size_average, reduce, reduction)
    _check_tensor("mse_loss", "input", input)
    _check_tensor("mse_loss", "target", target)
    if weight is not None:
        _check_tensor("mse_loss", "weight", weight)
    _check_devices("mse_loss", input=input, target=target, weight=weight)
    if input.shape != target.shape:
        warnings.warn(
            f"mse_loss: using a target size ({target.shape}) that is different to the input "
            f"size ({input.shape}). This will likely lead to incorrect results due to "
            "broadcasting. Please ensure they have the same size.",
            stacklevel=2,
        )
    diff = input - target
    if weight is None:
        return _reduce(diff * diff, reduction)
    _check_weight_size("mse_loss", weight, input)
    err = diff * diff * weight
    if reduction == "mean":
        return ops.sum(err) / ops.sum(weight)
    return _reduce(err, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight=None,
                                     size_average=None, reduce=None, reduction: str = "mean",
                                     pos_weight=None) -> Tensor:
    """Sigmoid + binary cross entropy in one stable expression.

        loss = -w * [pos_weight * t * log(sigmoid(x)) + (1 - t) * log(1 - sigmoid(x))]
             = w * [(1 - t) * x + (1 + (pos_weight - 1) * t) * softplus(-x)]

    using log(sigmoid(x)) = -softplus(-x) and log(1 - sigmoid(x)) = -x - softplus(-x);
    softplus never overflows, so large |x| gives exact losses instead of inf or NaN.
    """
    reduction = _reduction("binary_cross_entropy_with_logits", size_average, reduce, reduction)
    _check_tensor("binary_cross_entropy_with_logits", "input", input)
    _check_tensor("binary_cross_entropy_with_logits", "target", target)
    _check_devices("binary_cross_entropy_with_logits", input=input, target=target,
                   weight=weight, pos_weight=pos_weight)
    if target.shape != input.shape:
        raise ValueError(
            f"binary_cross_entropy_with_logits: target size ({target.shape}) must be the same "
            f"as input size ({input.shape})"
        )
    if target.dtype != input.dtype:
        if target.dtype.kind == "f":  # a wider float target widens the loss, as in PyTorch
            dt = ops.common.result_dtype(input.dtype, target.dtype)
            input, target = input.to(dt), target.to(dt)
        else:
            target = target.to(input.dtype)
    sp = _softplus(-input)
    if isinstance(pos_weight, Tensor) and pos_weight.dtype != input.dtype:
        pos_weight = pos_weight.to(input.dtype)  # PyTorch keeps the loss in the input's dtype
    if pos_weight is not None:
        log_weight = (pos_weight - 1.0) * target + 1.0
        loss = (1.0 - target) * input + log_weight * sp
    else:
        loss = (1.0 - target) * input + sp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def _check_class_targets(op: str, target: Tensor, n_classes: int, n_rows: int | None):
    if not isinstance(target, Tensor):
        raise TypeError(f"{op}: target must be a Tensor, got {type(target).__name__}")
    if target.dtype.kind not in "iu":
        raise RuntimeError(f"{op}: expected an integer class-index target, got {target.dtype}")
    expected = () if n_rows is None else (n_rows,)
    if target.shape != expected:
        raise ValueError(
            f"{op}: expected a target of shape {expected} for the input, got {target.shape}"
        )
    if target.numel():
        lo, hi = int(target.data.min()), int(target.data.max())
        if lo < 0 or hi >= n_classes:
            raise IndexError(
                f"{op}: target values must be in [0, {n_classes - 1}] for {n_classes} "
                f"classes, got values in [{lo}, {hi}]"
            )


def multi_margin_loss(input: Tensor, target: Tensor, p: int = 1, margin: float = 1.0,
                      weight=None, size_average=None, reduce=None,
                      reduction: str = "mean") -> Tensor:
    """The multi-class hinge (SVM) loss, as PyTorch's `MultiMarginLoss`.

    For a row x of C scores with true class y,

        loss(x, y) = sum_{i != y} w[y] * max(0, margin - x[y] + x[i])^p / C

    with p in {1, 2} and w the optional per-class weight (1 when absent; it multiplies after
    the power, as PyTorch's kernel does). Input is (N, C) with target (N,), or (C,) with a
    0-dim target. 'mean' averages over the N rows (not weighted by w).
    """
    op = "multi_margin_loss"
    reduction = _reduction(op, size_average, reduce, reduction)
    _check_tensor(op, "input", input)
    if p not in (1, 2):
        raise ValueError(f"{op}: only p == 1 and p == 2 supported, got p={p}")
    if input.ndim not in (1, 2) or input.shape[-1] == 0:
        raise ValueError(
            f"{op}: expected a non-empty 1-D (C,) or 2-D (N, C) input, got shape {input.shape}"
        )
    _check_devices(op, input=input, target=target, weight=weight)
    unbatched = input.ndim == 1
    n_classes = input.shape[-1]
    _check_class_targets(op, target, n_classes, None if unbatched else input.shape[0])
    if weight is not None and (weight.ndim != 1 or weight.shape[0] != n_classes):
        raise ValueError(
            f"{op}: expected a 1-D weight of {n_classes} elements (one per class), got shape "
            f"{weight.shape}"
        )
    x = ops.unsqueeze(input, 0) if unbatched else input
    t = ops.reshape(target, (-1, 1)).to(backend.int64)
    x_true = ops.gather(x, 1, t)  # (N, 1): the score of the true class
    z = x - x_true + margin
    xp = backend.xp_for(x.device)
    with backend.device_context(x.device):
        not_true = Tensor(xp.arange(n_classes).reshape(1, -1) != t.data, x.device)
    # where(), not clamp: the hinge's gradient at z == 0 is 0, as in PyTorch.
    h = ops.where(not_true & (z > 0), z, 0.0)
    if p == 2:
        h = h * h
    loss = ops.sum(h, dim=1) * (1.0 / n_classes)
    if weight is not None:
        loss = loss * ops.reshape(weight[t.data.reshape(-1)], (-1,))
    if unbatched:
        loss = ops.reshape(loss, ())
    return _reduce(loss, reduction)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot encoding with a new last dim of size num_classes (inferred if -1)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"one_hot: expected a Tensor, got {type(tensor).__name__}")
    if not ops.common.is_int(num_classes):
        raise TypeError(f"one_hot: num_classes must be an int, got {num_classes!r}")
    if num_classes < -1:
        raise RuntimeError(f"one_hot: num_classes should be -1 or non-negative, got {num_classes}")
    if tensor.dtype.kind not in "iu":
        raise RuntimeError(f"one_hot: expected an integer tensor, got {tensor.dtype}")
    xp = backend.xp_for(tensor.device)
    data = tensor.data
    if num_classes == -1:
        if data.size == 0:
            raise RuntimeError("one_hot: can not infer total number of classes from empty "
                               "tensor")
        num_classes = int(data.max()) + 1
    if data.size:
        lo, hi = int(data.min()), int(data.max())
        if lo < 0:
            raise RuntimeError(f"one_hot: class values must be non-negative, got {lo}")
        if hi >= num_classes:
            raise RuntimeError(
                f"one_hot: class values must be smaller than num_classes={num_classes}, got {hi}"
            )
    with backend.device_context(tensor.device):
        out = (data[..., None] == xp.arange(num_classes)).astype(np.int64)
    return Tensor(out, tensor.device)


def pad(input: Tensor, pad, mode: str = "constant", value=None) -> Tensor:
    """Pad the last dims: `pad` = (left, right, top, bottom, ...); negative values crop."""
    return _pad(input, pad, mode=mode, value=value)


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return ops.flatten(input, start_dim, end_dim)


# Defined in their own modules (activations, layer/group norm, more losses and embedding);
# imported last: they use _maybe_inplace and _softplus from this module inside their functions.
from gpugrad.nn.functional_activations import (  # noqa: E402
    elu, gelu, hardsigmoid, hardswish, hardtanh, leaky_relu, mish, relu6, silu, softplus,
)
from gpugrad.nn.functional_interpolate import interpolate  # noqa: E402
from gpugrad.nn.functional_losses import (  # noqa: E402
    binary_cross_entropy, embedding, huber_loss, kl_div, l1_loss, smooth_l1_loss,
)
from gpugrad.nn.functional_norm import group_norm, layer_norm  # noqa: E402

__all__ = [
    "adaptive_avg_pool2d", "avg_pool2d", "batch_norm", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "conv2d", "conv_transpose2d", "cross_entropy", "dropout", "elu", "embedding",
    "flatten", "gelu", "group_norm", "hardsigmoid", "hardswish", "hardtanh", "huber_loss",
    "interpolate",
    "kl_div", "l1_loss", "layer_norm", "leaky_relu", "linear", "log_softmax", "max_pool2d",
    "max_pool2d_with_indices", "mish", "mse_loss", "multi_margin_loss", "nll_loss", "one_hot",
    "pad", "relu", "relu6", "sigmoid", "silu", "smooth_l1_loss", "softmax", "softplus", "tanh",
]
