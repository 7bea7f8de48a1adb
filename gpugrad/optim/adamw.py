"""AdamW: Adam with decoupled weight decay (p *= 1 - lr * weight_decay before the update)."""

from __future__ import annotations

from gpugrad.optim.adam import Adam


class AdamW(Adam):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 foreach=None, capturable: bool = False, differentiable: bool = False,
                 fused=None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def _check_group(self, group):
        super()._check_group(group)
        # An Adam state dict (coupled decay) loaded here would silently turn AdamW into Adam.
        if not group["decoupled_weight_decay"]:
            raise ValueError("AdamW: decoupled_weight_decay must be True (a group with "
                             "decoupled_weight_decay=False is Adam's; use optim.Adam)")
