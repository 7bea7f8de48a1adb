"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

PyTorch's rule, for each parameter p with gradient g (negated when maximize):
    g = g + weight_decay * p
    buf = g                                   (first step)
    buf = momentum * buf + (1 - dampening) * g  (later steps)
    g = g + momentum * buf if nesterov else buf
    p = p - lr * g
"""

from __future__ import annotations

import math

from gpugrad import backend
from gpugrad.optim.optimizer import Optimizer
from gpugrad.tensor import Tensor


class SGD(Optimizer):
    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False,
                 foreach=None, differentiable: bool = False, fused=None):
        if differentiable:
            raise NotImplementedError("SGD: differentiable=True is not supported")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=differentiable, fused=fused)
        self._check_group(defaults)
        super().__init__(params, defaults)

    _required_options = ("lr", "momentum", "dampening", "weight_decay", "nesterov")
    _state_keys = frozenset({"momentum_buffer"})

    def _check_group(self, group):
        self._check_number(group, "lr", "learning rate")
        momentum = self._check_number(group, "momentum", "momentum value")
        dampening = self._check_number(group, "dampening", "dampening value", -math.inf)
        self._check_number(group, "weight_decay", "weight_decay value")
        if group["nesterov"] and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening, "
                             f"got momentum={momentum}, dampening={dampening}")

    def _step_group(self, group):
        lr = group["lr"]
        momentum = group["momentum"]
        dampening = group["dampening"]
        weight_decay = group["weight_decay"]
        nesterov = group["nesterov"]
        maximize = group["maximize"]
        for p in group["params"]:
            if p.grad is None:
                continue
            xp = backend.array_module(p.data)
            # `g` may be the .grad array itself: it is only ever read, never written, here.
            g = p.grad.data
            if maximize:
                g = -g
            if weight_decay != 0:
                g = g + weight_decay * p.data
            if momentum != 0:
                state = self.state[p]
                buf_t = state.get("momentum_buffer")
                if buf_t is None:
                    buf = xp.array(g, copy=True)
                    state["momentum_buffer"] = Tensor(buf, p.device)
                else:
                    buf = buf_t.data
                    buf *= momentum
                    if dampening == 0:
                        buf += g
                    else:
                        buf += (1 - dampening) * g
                if nesterov:
                    g = g + momentum * buf
                else:
                    g = buf
            update = g * lr
            p.data -= update
