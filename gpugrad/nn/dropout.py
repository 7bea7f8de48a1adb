"""`Dropout`: random zeroing with 1/(1-p) scaling in training mode, identity in eval mode."""

from __future__ import annotations

from gpugrad import grad_mode
from gpugrad.nn import functional as F
from gpugrad.nn.module import Module
from gpugrad.ops.dropout import check_p


class Dropout(Module):
    """inplace=True overwrites the input and returns it when no graph records it (no grad,
    or under no_grad), as PyTorch does. A leaf that requires grad raises, as in PyTorch. A
    non-leaf in a recorded graph gets a new tensor with the same values: gpugrad's tape has
    no version counters, so overwriting an array another op saved for its backward would
    corrupt that op's gradient silently."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        self.p = check_p("Dropout", p)
        self.inplace = inplace

    def forward(self, input):
        if not self.inplace or not self.training or self.p == 0.0:
            return F.dropout(input, self.p, self.training)
        recorded = input.requires_grad and grad_mode.is_grad_enabled()
        if recorded and input.is_leaf:
            raise RuntimeError(
                "Dropout(inplace=True): a leaf tensor that requires grad can't be modified in "
                "place (as in PyTorch); use inplace=False, or detach the input"
            )
        out = F.dropout(input, self.p, self.training)
        if recorded or out is input:
            return out
        input.data[...] = out.data
        return input

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
