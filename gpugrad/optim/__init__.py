"""`gpugrad.optim`: optimizers (SGD, Adam, AdamW) and `lr_scheduler`, as `torch.optim`."""

from gpugrad.optim import lr_scheduler  # noqa: F401
from gpugrad.optim.adam import Adam  # noqa: F401
from gpugrad.optim.adamw import AdamW  # noqa: F401
from gpugrad.optim.optimizer import Optimizer  # noqa: F401
from gpugrad.optim.sgd import SGD  # noqa: F401
