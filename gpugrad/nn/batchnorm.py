"""BatchNorm1d / BatchNorm2d with running statistics, as PyTorch's."""

from __future__ import annotations

from gpugrad import backend
from gpugrad import factory
from gpugrad.nn import functional as F
from gpugrad.nn.module import Module
from gpugrad.nn.normalization import register_affine, reset_affine
from gpugrad.ops.conv import integer


class _BatchNorm(Module):
    """Normalises over every dim but the channel dim (1) with batch or running statistics.

    momentum=None uses the cumulative average: factor 1 / num_batches_tracked. `bias=False`
    (keyword, as PyTorch 2.13) keeps the learnable scale but drops the shift.
    """

    _version = 2
    _expected_ndims: tuple = ()
    _layout: str = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None,
                 dtype=None, *, bias: bool = True):
        super().__init__()
        num_features = integer(type(self).__name__, "num_features", num_features, 0)
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        register_affine(self, num_features, affine, bias, dtype, device)
        if track_running_stats:
            self.register_buffer("running_mean",
                                 factory.zeros(num_features, dtype=dtype, device=device))
            self.register_buffer("running_var",
                                 factory.ones(num_features, dtype=dtype, device=device))
            self.register_buffer("num_batches_tracked",
                                 factory.zeros((), dtype=backend.int64, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        reset_affine(self)

    def _optional_state(self) -> tuple:
        # PyTorch before 0.4.1 saved no num_batches_tracked; such a state dict loads (the
        # counter keeps its value), as in PyTorch.
        return ("num_batches_tracked",) if self.track_running_stats else ()

    def _check_input_dim(self, input) -> None:
        if input.ndim not in self._expected_ndims:
            raise ValueError(
                f"{type(self).__name__}: expected {self._layout} input, got {input.ndim}D input "
                f"of shape {input.shape}"
            )
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}: expected input with num_features={self.num_features} "
                f"channels in dim 1, got {input.shape[1]} channels in input of shape "
                f"{input.shape}"
            )

    def forward(self, input):
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.data += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.item())
        use_batch_stats = self.training or (self.running_mean is None
                                            and self.running_var is None)
        track = not self.training or self.track_running_stats
        return F.batch_norm(
            input,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight, self.bias, use_batch_stats, factor, self.eps,
        )

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm of (N, C) or (N, C, L) input."""

    _expected_ndims = (2, 3)
    _layout = "2D or 3D"


class BatchNorm2d(_BatchNorm):
    """Batch norm of (N, C, H, W) input."""

    _expected_ndims = (4,)
    _layout = "4D"
