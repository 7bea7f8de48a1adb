"""`Dropout`: random zeroing with 1/(1-p) scaling in training mode, identity in eval mode."""

from __future__ import annotations

from gpugrad.nn import functional as F
from gpugrad.nn.module import Module
from gpugrad.ops.dropout import check_p


class Dropout(Module):
    """inplace=True as F.dropout's: in place where nothing is recorded (PyTorch's rule), a
    leaf that requires grad raises, a recorded non-leaf gets a new tensor."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        self.p = check_p("Dropout", p)
        self.inplace = inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
