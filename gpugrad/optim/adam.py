"""Adam (and AdamW's decoupled weight decay), with amsgrad and maximize, as PyTorch's.

For each parameter p with gradient g (negated when maximize), at step t:
    p = p * (1 - lr * weight_decay)     (decoupled, AdamW)   or   g = g + weight_decay * p
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g^2
    v_max = max(v_max, v)               (amsgrad; used in place of v below)
    p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
"""

from __future__ import annotations

import math

import numpy as np

from gpugrad import backend
from gpugrad.optim.optimizer import Optimizer, check_option
from gpugrad.tensor import Tensor


class Adam(Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, foreach=None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False,
                 fused=None, decoupled_weight_decay: bool = False):
        if differentiable:
            raise NotImplementedError(f"{type(self).__name__}: differentiable=True is not "
                                      "supported")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        self._check_group(defaults)
        super().__init__(params, defaults)

    _required_options = ("lr", "betas", "eps", "weight_decay")
    _state_keys = frozenset({"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"})
    _scalar_state = frozenset({"step"})

    def _check_group(self, group):
        name = type(self).__name__
        self._check_number(group, "lr", "learning rate")
        self._check_number(group, "eps", "epsilon value")
        self._check_number(group, "weight_decay", "weight_decay value")
        betas = group["betas"]
        if isinstance(betas, Tensor) or not isinstance(betas, (tuple, list)):
            raise TypeError(f"{name}: betas must be a pair (beta1, beta2), got "
                            f"{type(betas).__name__} {betas!r}")
        if len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {len(betas)} "
                             f"values {tuple(betas)!r}")
        group["betas"] = tuple(check_option(name, f"beta parameter at index {i}", b, 0.0, 1.0)
                               for i, b in enumerate(betas))

    def _init_state(self, p, amsgrad):
        xp = backend.array_module(p.data)
        state = self.state[p]
        # The step count lives on the CPU (as PyTorch's): reading it never syncs the GPU.
        state["step"] = Tensor(np.zeros((), dtype=np.float32), backend.CPU)
        with backend.device_context(p.device):
            state["exp_avg"] = Tensor(xp.zeros_like(p.data), p.device)
            state["exp_avg_sq"] = Tensor(xp.zeros_like(p.data), p.device)
            if amsgrad:
                state["max_exp_avg_sq"] = Tensor(xp.zeros_like(p.data), p.device)
        return state

    def _step_group(self, group):
        lr = group["lr"]
        beta1, beta2 = group["betas"]
        eps = group["eps"]
        weight_decay = group["weight_decay"]
        amsgrad = group["amsgrad"]
        maximize = group["maximize"]
        decoupled = group["decoupled_weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            xp = backend.array_module(p.data)
            state = self.state[p]
            if len(state) == 0:
                state = self._init_state(p, amsgrad)
            elif amsgrad and "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = Tensor(xp.zeros_like(p.data), p.device)
            # `g` may be the .grad array itself: it is only ever read, never written, here.
            g = p.grad.data
            if maximize:
                g = -g
            if weight_decay != 0:
                if decoupled:
                    p.data *= 1 - lr * weight_decay
                else:
                    g = g + weight_decay * p.data
            step_t = state["step"]
            step_t.data += 1
            step = float(step_t.data)
            m = state["exp_avg"].data
            v = state["exp_avg_sq"].data
            m *= beta1
            # One scratch array per step (ufuncs with out= keep 0-d parameters arrays too).
            tmp = xp.empty_like(p.data)
            xp.multiply(g, 1 - beta1, out=tmp)
            m += tmp
            v *= beta2
            xp.multiply(g, g, out=tmp)
            tmp *= 1 - beta2
            v += tmp
            if amsgrad:
                v_max = state["max_exp_avg_sq"].data
                xp.maximum(v_max, v, out=v_max)
                v = v_max
            bias_correction1 = 1 - beta1**step
            bias_correction2_sqrt = math.sqrt(1 - beta2**step)
            step_size = lr / bias_correction1
            # denom = sqrt(v) / sqrt(bc2) + eps, then the update m / denom, all in `tmp`.
            xp.sqrt(v, out=tmp)
            tmp /= bias_correction2_sqrt
            tmp += eps
            xp.divide(m, tmp, out=tmp)
            tmp *= step_size
            p.data -= tmp
