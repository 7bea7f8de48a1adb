"""`Embedding`: a learnable lookup table of num_embeddings vectors, as `torch.nn.Embedding`."""

from __future__ import annotations

from gpugrad import factory, grad_mode
from gpugrad.nn import functional_losses as FL
from gpugrad.nn import init
from gpugrad.nn.module import Module
from gpugrad.nn.parameter import Parameter
from gpugrad.ops.conv import integer
from gpugrad.tensor import Tensor


class Embedding(Module):
    """weight (num_embeddings, embedding_dim), drawn from N(0, 1) with the padding_idx row
    zeroed; forward(indices) = weight[indices], see `functional.embedding`.

    max_norm, scale_grad_by_freq and sparse=True are not implemented and raise
    NotImplementedError here, at construction, rather than being ignored.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None,
                 max_norm=None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight=None, _freeze: bool = False, device=None,
                 dtype=None):
        super().__init__()
        op = "Embedding"
        FL._unsupported_options(op, max_norm, scale_grad_by_freq, sparse)
        self.num_embeddings = integer(op, "num_embeddings", num_embeddings, 0)
        self.embedding_dim = integer(op, "embedding_dim", embedding_dim, 0)
        self.padding_idx = FL._padding_index(op, padding_idx, self.num_embeddings)
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.sparse = sparse
        if _weight is None:
            self.weight = Parameter(
                factory.empty(self.num_embeddings, self.embedding_dim, dtype=dtype,
                              device=device),
                requires_grad=not _freeze,
            )
            self.reset_parameters()
        else:
            if not isinstance(_weight, Tensor):
                raise TypeError(f"{op}: _weight must be a gpugrad Tensor, got "
                                f"{type(_weight).__name__}")
            if _weight.shape != (self.num_embeddings, self.embedding_dim):
                raise AssertionError(  # AssertionError, as PyTorch raises here
                    f"{op}: shape of weight {_weight.shape} does not match num_embeddings and "
                    f"embedding_dim ({self.num_embeddings}, {self.embedding_dim})"
                )
            # Shares _weight's array, as PyTorch's Parameter(_weight) shares its storage; the
            # padding row is left as given.
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        self._fill_padding_idx_with_zero()

    def _fill_padding_idx_with_zero(self) -> None:
        if self.padding_idx is not None:
            with grad_mode.no_grad():
                self.weight[self.padding_idx] = 0

    def forward(self, input):
        return FL.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                            self.scale_grad_by_freq, self.sparse)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        return s

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx=None, max_norm=None,
                        norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False):
        """An Embedding whose weight is `embeddings` (2-D; shared, not copied), frozen
        (requires_grad=False) unless freeze=False; its padding row keeps its values."""
        if not isinstance(embeddings, Tensor):
            raise TypeError(f"Embedding.from_pretrained: embeddings must be a gpugrad Tensor, "
                            f"got {type(embeddings).__name__}")
        if embeddings.ndim != 2:
            raise AssertionError(  # as PyTorch
                f"Embedding.from_pretrained: embeddings parameter is expected to be "
                f"2-dimensional, got shape {embeddings.shape}"
            )
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx=padding_idx, max_norm=max_norm,
                   norm_type=norm_type, scale_grad_by_freq=scale_grad_by_freq, sparse=sparse,
                   _weight=embeddings, _freeze=freeze)
