"""`gpugrad.nn`: modules, parameters, `functional` and `init`, with PyTorch's names."""

from gpugrad.nn import functional, init  # noqa: F401
from gpugrad.nn.activation import (  # noqa: F401
    ELU, GELU, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU, LogSoftmax, Mish, ReLU, ReLU6, SiLU,
    Sigmoid, Softmax, Softplus, Tanh,
)
from gpugrad.nn.batchnorm import BatchNorm1d, BatchNorm2d  # noqa: F401
from gpugrad.nn.container import ModuleDict, ModuleList, Sequential  # noqa: F401
from gpugrad.nn.conv import Conv2d, ConvTranspose2d  # noqa: F401
from gpugrad.nn.dropout import Dropout  # noqa: F401
from gpugrad.nn.embedding import Embedding  # noqa: F401
from gpugrad.nn.flatten import Flatten  # noqa: F401
from gpugrad.nn.linear import Identity, Linear  # noqa: F401
from gpugrad.nn.loss import (  # noqa: F401
    BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss, MSELoss,
    MultiMarginLoss, NLLLoss, SmoothL1Loss,
)
from gpugrad.nn.module import Module  # noqa: F401
from gpugrad.nn.normalization import GroupNorm, LayerNorm  # noqa: F401
from gpugrad.nn.parameter import Parameter  # noqa: F401
from gpugrad.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d  # noqa: F401
from gpugrad.nn.upsampling import (  # noqa: F401
    Upsample, UpsamplingBilinear2d, UpsamplingNearest2d,
)
