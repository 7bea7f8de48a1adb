"""The public names of gpugrad.nn and gpugrad.nn.functional exist and carry PyTorch's names, so
`import gpugrad.nn.functional as F` code ports from torch by changing the import."""

import pytest

import gpugrad as gg
import gpugrad.nn.functional as F
from gpugrad.nn import (
    functional_activations, functional_interpolate, functional_losses, functional_norm,
)

MODULES = ["ELU", "GELU", "Hardsigmoid", "Hardswish", "Hardtanh", "LeakyReLU", "Mish", "ReLU6",
           "SiLU", "Softplus", "LayerNorm", "GroupNorm", "Embedding", "L1Loss", "SmoothL1Loss",
           "HuberLoss", "KLDivLoss", "BCELoss", "ConvTranspose2d", "Upsample",
           "UpsamplingNearest2d", "UpsamplingBilinear2d"]


def test_functional_exports_every_name_in_its_all():
    for name in F.__all__:
        assert callable(getattr(F, name)), name
    for module in (functional_activations, functional_interpolate, functional_losses,
                   functional_norm):
        for name in getattr(module, "__all__", [n for n in dir(module) if not n.startswith("_")]):
            if callable(getattr(module, name)) and name in F.__all__:
                assert getattr(F, name) is getattr(module, name)
    for name in ("gelu", "silu", "layer_norm", "group_norm", "embedding", "kl_div",
                 "binary_cross_entropy", "huber_loss", "interpolate", "conv_transpose2d"):
        assert name in F.__all__


def test_the_names_are_pytorchs():
    torch = pytest.importorskip("torch")
    extras = {"flatten"}  # torch.flatten, kept in F too for convenience
    for name in set(F.__all__) - extras:
        assert hasattr(torch.nn.functional, name), f"F.{name} is not a torch.nn.functional name"
    for name in MODULES:
        assert hasattr(torch.nn, name) and hasattr(gg.nn, name), name
    assert callable(gg.erf) and callable(gg.expm1)
    x = gg.tensor([0.5, -1.0])
    assert x.erf().tolist() == gg.erf(x).tolist()
