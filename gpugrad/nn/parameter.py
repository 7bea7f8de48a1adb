"""`Parameter`: a Tensor that a Module registers as a learnable weight."""

from __future__ import annotations

from gpugrad import backend
from gpugrad.tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor that requires grad by default and that a Module lists in `parameters()`.

    `Parameter(t)` shares `t`'s array (no copy), as PyTorch's does; the Parameter stays the
    same object when a Module moves it with `.to()`, so optimizers keep pointing at it.
    """

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            xp = backend.xp_for(backend.CPU)
            data = Tensor(xp.zeros((0,), dtype=backend.get_default_dtype()), backend.CPU)
        if not isinstance(data, Tensor):
            raise TypeError(
                f"Parameter: expected a gpugrad Tensor, got {type(data).__name__}; "
                "wrap arrays with gg.tensor(...) first"
            )
        super().__init__(data.data, data.device, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol):
        # Pickling and deepcopy rebuild a Parameter around a copy of the array.
        return (_rebuild_parameter, (self.data, self.device, self.requires_grad))

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        result = Parameter(Tensor(self.data.copy(), self.device), self.requires_grad)
        if self.grad is not None:
            result.grad = Tensor(self.grad.data.copy(), self.grad.device)
        memo[id(self)] = result
        return result


def _rebuild_parameter(data, device, requires_grad):
    return Parameter(Tensor(data, device), requires_grad)
