"""Batch normalisation as one Function: statistics, normalisation, affine and the running-stat
update in a single forward, with the gradient written by hand.

For an input x of shape (N, C, *) the statistics are per channel over the other dims (m values
each). In training, y = (x - mean) * invstd * w + b with the biased batch variance, and the
running stats move towards the batch ones (running_var with the unbiased variance, as
PyTorch). In evaluation, the running stats take the place of the batch ones.

Backward has two paths. Without create_graph, a fast path on raw arrays:
    gb = sum(gy), gw = sum(gy * xhat),
    gx = w * invstd * (gy - gb / m - xhat * gw / m)            (training)
    gx = w * invstd * gy                                          (evaluation)
With create_graph, the same formulas in gpugrad ops with mean and invstd recomputed from x,
so the gradient is itself differentiable in x, w, b and gy.
"""

from __future__ import annotations

from gpugrad import backend
from gpugrad import grad_mode
from gpugrad.autograd.function import Function
from gpugrad.tensor import Tensor


def _layout(x_shape):
    axes = (0,) + tuple(range(2, len(x_shape)))
    bshape = (1, x_shape[1]) + (1,) * (len(x_shape) - 2)
    m = 1
    for a in axes:
        m *= x_shape[a]
    return axes, bshape, m


class BatchNorm(Function):
    """Inputs x, weight, bias (weight/bias are constants of ones/zeros when not affine)."""

    def forward(self, x, weight, bias, running_mean, running_var, training, momentum, eps):
        xp = backend.array_module(x)
        axes, bshape, m = _layout(x.shape)
        self.training, self.eps = training, eps
        dt = x.dtype
        if training and x.size == 0:
            # An empty batch has no statistics: leave the running stats alone (as PyTorch)
            # instead of writing the NaN mean of nothing into them.
            with backend.device_context(self.device):
                mean = xp.zeros(x.shape[1], dtype=dt)
                invstd = xp.ones(x.shape[1], dtype=dt)
            xc = x - mean.reshape(bshape)
        elif training:
            mean = x.mean(axis=axes)
            xc = x - mean.reshape(bshape)
            var = xp.square(xc).mean(axis=axes)  # biased: the one that normalises
            invstd = 1.0 / xp.sqrt(var + dt.type(eps))
            if running_mean is not None:
                running_mean *= 1.0 - momentum
                running_mean += (momentum * mean).astype(running_mean.dtype, copy=False)
            if running_var is not None:
                unbiased = var * (m / (m - 1)) if m > 1 else var
                running_var *= 1.0 - momentum
                running_var += (momentum * unbiased).astype(running_var.dtype, copy=False)
        else:
            # Copies: the buffers may be updated in place before this node's backward runs.
            mean = running_mean.astype(dt, copy=True)
            invstd = 1.0 / xp.sqrt(running_var.astype(dt, copy=True) + dt.type(eps))
            xc = x - mean.reshape(bshape)
        self.mean, self.invstd = mean, invstd.astype(dt, copy=False)
        # y = xc * (w * invstd) + b, written into xc's buffer (it is a fresh array).
        xc *= (weight * self.invstd).reshape(bshape)
        xc += bias.reshape(bshape)
        return xc

    def backward(self, gy):
        if grad_mode.is_grad_enabled():
            return self._backward_graph(gy)
        x, w, _ = self.inputs
        need_x, need_w, need_b = self.needs_input_grad
        axes, bshape, m = _layout(x.shape)
        g = gy.data
        xhat = x.data - self.mean.reshape(bshape)
        xhat *= self.invstd.reshape(bshape)
        gb = g.sum(axis=axes)
        gw = (g * xhat).sum(axis=axes)
        gx = None
        if need_x:
            scale = (w.data * self.invstd).reshape(bshape)
            if self.training and m > 0:
                xhat *= (gw / m).reshape(bshape)
                gx = g - xhat
                gx -= (gb / m).reshape(bshape)
                gx *= scale
            else:
                gx = g * scale
        dev = x.device
        return (
            Tensor(gx, dev) if need_x else None,
            Tensor(gw, dev) if need_w else None,
            Tensor(gb, dev) if need_b else None,
        )

    def _backward_graph(self, gy):
        from gpugrad.ops.elementwise import rsqrt
        from gpugrad.ops.reduce import mean, sum
        from gpugrad.ops.shape import reshape

        x, w, _ = self.inputs
        need_x, need_w, need_b = self.needs_input_grad
        axes, bshape, m = _layout(x.shape)
        if self.training:
            mu = mean(x, dim=axes, keepdim=True)
            xc = x - mu
            invstd = rsqrt(mean(xc * xc, dim=axes, keepdim=True) + self.eps)
        else:
            invstd = Tensor(self.invstd.reshape(bshape), x.device)
            xc = x - Tensor(self.mean.reshape(bshape), x.device)
        xhat = xc * invstd
        gb = sum(gy, dim=axes)
        gw = sum(gy * xhat, dim=axes)
        gx = None
        if need_x:
            gxhat = gy * reshape(w, bshape)
            if self.training:
                gx = invstd * (gxhat - mean(gxhat, dim=axes, keepdim=True)
                               - xhat * mean(gxhat * xhat, dim=axes, keepdim=True))
            else:
                gx = gxhat * invstd
        return gx, (gw if need_w else None), (gb if need_b else None)


def batch_norm(input: Tensor, running_mean, running_var, weight=None, bias=None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """PyTorch's `F.batch_norm`; updates the running stats in place when training."""
    op = "batch_norm"
    if input.ndim < 2:
        raise ValueError(f"{op}: expected an input of at least 2 dims (N, C, ...), got shape "
                         f"{input.shape}")
    if input.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected a floating-point input, got {input.dtype}")
    if eps < 0 or (training and eps == 0):
        # A negative eps can make var + eps negative, and 0 divides by zero on a constant
        # channel, the output NaN either way (PyTorch raises too; eps 0 is fine in eval).
        raise ValueError(f"{op}: expected a non-negative eps (positive when training), "
                         f"got {eps}")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is None:
            continue
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor or None, got {type(t).__name__}")
        if t.numel() != c:
            raise RuntimeError(
                f"{op}: {name} should contain {c} elements (the channels of input of shape "
                f"{input.shape}) not {t.numel()}"
            )
        if t.device != input.device:
            raise RuntimeError(f"{op}: {name} is on {t.device} but the input is on "
                               f"{input.device}")
    if training:
        if input.numel() // c == 1:
            raise ValueError(
                f"{op}: expected more than 1 value per channel when training, got input size "
                f"{input.shape}"
            )
    elif running_mean is None or running_var is None:
        raise RuntimeError(f"{op}: running_mean and running_var must be defined in evaluation "
                           "mode (training=False)")
    xp = backend.xp_for(input.device)
    with backend.device_context(input.device):
        if weight is None:
            weight = Tensor(xp.ones((c,), dtype=input.dtype), input.device)
        if bias is None:
            bias = Tensor(xp.zeros((c,), dtype=input.dtype), input.device)
    if weight.dtype != input.dtype or bias.dtype != input.dtype:
        raise RuntimeError(
            f"{op}: expected weight and bias of the input's dtype {input.dtype}, got "
            f"{weight.dtype} and {bias.dtype}"
        )
    rm = None if running_mean is None else running_mean.data.reshape(c)
    rv = None if running_var is None else running_var.data.reshape(c)
    weight = weight.reshape(c) if weight.ndim != 1 else weight
    bias = bias.reshape(c) if bias.ndim != 1 else bias
    half = input.dtype == backend.float16
    if half:
        # The squares and means of a float16 batch overflow or round away (values of 1e4
        # gave NaN): the statistics and the normalisation run in float32, as PyTorch's do;
        # the running stats keep their own dtype.
        input, weight, bias = (t.to(backend.float32) for t in (input, weight, bias))
    y = BatchNorm.apply(input, weight, bias, running_mean=rm, running_var=rv,
                        training=bool(training), momentum=float(momentum), eps=float(eps))
    return y.to(backend.float16) if half else y
