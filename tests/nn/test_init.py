"""nn.init: gains, fans, distributions, reproducibility; default Linear/Conv2d init."""

import math

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn
from gpugrad.nn import init


@pytest.mark.parametrize("shape", [(5, 3), (8, 4, 3, 3), (2, 6, 5), (7, 1, 1, 1)])
def test_fans_match_torch(shape):
    torch = pytest.importorskip("torch")
    ours = init._calculate_fan_in_and_fan_out(gg.zeros(*shape))
    assert ours == torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(*shape))


def test_fan_errors():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(gg.zeros(3))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(gg.zeros(3, 3), mode="fan_avg")


@pytest.mark.parametrize("name,param", [
    ("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
    ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)), ("selu", None),
])
def test_calculate_gain_matches_torch(name, param):
    torch = pytest.importorskip("torch")
    assert init.calculate_gain(name, param) == pytest.approx(
        torch.nn.init.calculate_gain(name, param), rel=1e-15)


def test_calculate_gain_errors():
    with pytest.raises(ValueError, match="Unsupported nonlinearity gelu"):
        init.calculate_gain("gelu")
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", True)


def _std_of_uniform(bound):
    return bound / math.sqrt(3)


@pytest.mark.parametrize("dtype", [gg.float32, gg.float64])
def test_distributions(dtype):
    gg.manual_seed(1)
    w = gg.empty(256, 128, dtype=dtype)  # fan_in 128, fan_out 256
    fan_in, fan_out = 128, 256

    init.kaiming_uniform_(w, nonlinearity="relu")
    bound = math.sqrt(2) * math.sqrt(3 / fan_in)
    a = w.numpy()
    assert a.dtype == dtype and np.abs(a).max() <= bound
    assert a.std() == pytest.approx(_std_of_uniform(bound), rel=0.02)

    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert w.numpy().std() == pytest.approx(math.sqrt(2 / fan_out), rel=0.02)
    assert abs(w.numpy().mean()) < 0.01

    init.xavier_uniform_(w, gain=2.0)
    bound = 2.0 * math.sqrt(6 / (fan_in + fan_out))
    assert np.abs(w.numpy()).max() <= bound
    assert w.numpy().std() == pytest.approx(_std_of_uniform(bound), rel=0.02)

    init.xavier_normal_(w)
    assert w.numpy().std() == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.02)

    init.uniform_(w, -3, -1)
    assert w.numpy().min() >= -3 and w.numpy().max() <= -1
    init.normal_(w, 5.0, 0.5)
    assert w.numpy().mean() == pytest.approx(5.0, abs=0.01)
    assert w.numpy().std() == pytest.approx(0.5, rel=0.02)
    init.trunc_normal_(w, std=1.0, a=-0.5, b=0.5)
    assert np.abs(w.numpy()).max() <= 0.5

    init.constant_(w, 0.25)
    assert (w.numpy() == 0.25).all()
    init.zeros_(w)
    assert not w.numpy().any()
    init.ones_(w)
    assert (w.numpy() == 1).all()


def test_init_is_in_place_and_allowed_on_parameters():
    p = nn.Parameter(gg.zeros(4, 4))
    data = p.data
    out = init.kaiming_normal_(p)
    assert out is p and p.data is data and p.requires_grad and p.grad_fn is None
    assert p.numpy().any()


def test_manual_seed_makes_init_reproducible():
    gg.manual_seed(123)
    a = nn.Conv2d(3, 4, 3)
    b1 = nn.Linear(5, 6)
    gg.manual_seed(123)
    c = nn.Conv2d(3, 4, 3)
    b2 = nn.Linear(5, 6)
    np.testing.assert_array_equal(a.weight.numpy(), c.weight.numpy())
    np.testing.assert_array_equal(a.bias.numpy(), c.bias.numpy())
    np.testing.assert_array_equal(b1.weight.numpy(), b2.weight.numpy())
    gg.manual_seed(124)
    d = nn.Conv2d(3, 4, 3)
    assert not np.array_equal(a.weight.numpy(), d.weight.numpy())


def test_default_linear_and_conv_init_match_torch_distribution():
    # PyTorch: kaiming_uniform_(a=sqrt(5)) -> U(-1/sqrt(fan_in), 1/sqrt(fan_in)), same for bias.
    gg.manual_seed(0)
    lin = nn.Linear(300, 200)
    bound = 1 / math.sqrt(300)
    w = lin.weight.numpy()
    assert np.abs(w).max() <= bound and w.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert np.abs(lin.bias.numpy()).max() <= bound

    conv = nn.Conv2d(16, 64, 3, groups=2)
    fan_in = 8 * 9
    bound = 1 / math.sqrt(fan_in)
    w = conv.weight.numpy()
    assert w.shape == (64, 8, 3, 3)
    assert np.abs(w).max() <= bound and w.std() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert np.abs(conv.bias.numpy()).max() <= bound
    assert lin.weight.dtype == gg.float32


def test_module_dtype_argument():
    lin = nn.Linear(3, 2, dtype=gg.float64)
    assert lin.weight.dtype == gg.float64 and lin.bias.dtype == gg.float64
    bn = nn.BatchNorm2d(3, dtype=gg.float64)
    assert bn.running_mean.dtype == gg.float64 and bn.num_batches_tracked.dtype == gg.int64
