"""Layer and loss inputs: conv/pool geometry, Linear features, loss targets, empty batches.

Each bad input must raise before any arithmetic, naming the op, what it expected and what it got;
each empty batch must behave as in PyTorch (empty outputs, nan for a mean over nothing, zero
gradients, running statistics left alone).
"""

import warnings

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import nn
from gpugrad.nn import functional as F

GEOMETRY_ERRORS = (ValueError, RuntimeError)


# ----------------------------------------------------------------------------- conv geometry

def _conv(x_shape=(1, 3, 8, 8), w_shape=(4, 3, 3, 3), **kw):
    return F.conv2d(gg.randn(*x_shape), gg.randn(*w_shape), **kw)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"x_shape": (1, 3, 8, 8), "w_shape": (4, 2, 3, 3)}, r"conv2d.*2 channels.*got 3"),
    ({"x_shape": (1, 3, 4, 4), "w_shape": (4, 3, 7, 7), "padding": 1},
     r"conv2d.*kernel.*7.*larger than the padded input 6"),
    ({"x_shape": (1, 3, 4, 4), "w_shape": (4, 3, 3, 3), "dilation": 3},
     r"conv2d.*kernel size 7.*dilation 3.*padded input 4"),
    ({"stride": 0}, r"conv2d.*stride.*>= 1.*0"),
    ({"stride": (1, -2)}, r"conv2d.*stride.*>= 1.*-2"),
    ({"padding": -1}, r"conv2d.*padding.*>= 0.*-1"),
    ({"padding": (0, -3)}, r"conv2d.*padding.*>= 0.*-3"),
    ({"dilation": 0}, r"conv2d.*dilation.*>= 1.*0"),
    ({"groups": 0}, r"conv2d.*groups.*0"),
    ({"w_shape": (4, 1, 3, 3), "groups": 2}, r"conv2d.*2 channels.*got 3"),
    ({"x_shape": (8, 8)}, r"conv2d.*3-D or 4-D.*\(8, 8\)"),
    ({"w_shape": (4, 3, 3)}, r"conv2d.*4-D weight.*\(4, 3, 3\)"),
])
def test_conv2d_geometry(kwargs, pattern):
    with pytest.raises(GEOMETRY_ERRORS, match=pattern):
        _conv(**kwargs)


def test_conv2d_bias_shape_and_module_channels():
    with pytest.raises(GEOMETRY_ERRORS, match=r"conv2d.*bias.*\(4,\).*\(5,\)"):
        F.conv2d(gg.randn(1, 3, 8, 8), gg.randn(4, 3, 3, 3), gg.randn(5))
    with pytest.raises(GEOMETRY_ERRORS, match=r"Conv2d.*in_channels=3.*got 2"):
        nn.Conv2d(3, 4, 3)(gg.randn(1, 2, 8, 8))
    with pytest.raises(GEOMETRY_ERRORS, match=r"Conv2d.*(stride|positive).*0"):
        nn.Conv2d(3, 3, 3, stride=0)
    with pytest.raises(GEOMETRY_ERRORS, match=r"Conv2d.*padding.*-1"):
        nn.Conv2d(3, 3, 3, padding=-1)


POOLS = {"max_pool2d": F.max_pool2d, "avg_pool2d": F.avg_pool2d}


@pytest.mark.parametrize("op", sorted(POOLS))
@pytest.mark.parametrize("args, kwargs, pattern", [
    ((3,), {}, r"kernel.*3.*larger than the padded input 2"),
    ((0,), {}, r"kernel_size.*>= 1.*0"),
    ((2,), {"stride": 0}, r"stride.*>= 1.*0"),
    ((2,), {"stride": -1}, r"stride.*>= 1.*-1"),
    ((2,), {"padding": -1}, r"padding.*>= 0.*-1"),
    ((2,), {"padding": 2}, r"padding.*at most half.*2"),
])
def test_pool_geometry(op, args, kwargs, pattern):
    with pytest.raises(GEOMETRY_ERRORS, match=rf"{op}.*{pattern}"):
        POOLS[op](gg.randn(1, 1, 2, 2), *args, **kwargs)


def test_pool_rank_dilation_and_modules():
    with pytest.raises(GEOMETRY_ERRORS, match=r"max_pool2d.*dilation.*>= 1.*0"):
        F.max_pool2d(gg.randn(1, 1, 4, 4), 2, dilation=0)
    with pytest.raises(GEOMETRY_ERRORS, match=r"max_pool2d.*3-D or 4-D.*\(4, 4\)"):
        F.max_pool2d(gg.randn(4, 4), 2)
    with pytest.raises(GEOMETRY_ERRORS, match=r"max_pool2d.*kernel 5.*padded input 4"):
        nn.MaxPool2d(5)(gg.randn(1, 1, 4, 4))


def test_conv_geometry_matches_pytorch_on_the_edge():
    # The largest kernel that fits the padded input is accepted; one more is refused.
    y = _conv((1, 3, 4, 4), (2, 3, 6, 6), padding=1)
    assert y.shape == (1, 2, 1, 1)
    with pytest.raises(GEOMETRY_ERRORS, match="larger than the padded input 6"):
        _conv((1, 3, 4, 4), (2, 3, 7, 6), padding=1)


# ----------------------------------------------------------------------------- Linear

def test_linear_in_features():
    with pytest.raises(RuntimeError, match=r"Linear.*in_features=3.*\(4, 5\)"):
        nn.Linear(3, 2)(gg.randn(4, 5))
    with pytest.raises(RuntimeError, match=r"Linear.*in_features=3.*\(\)"):
        nn.Linear(3, 2)(gg.tensor(1.0))
    with pytest.raises(RuntimeError, match=r"linear.*5 features.*\(2, 3\).*expects 3"):
        F.linear(gg.randn(4, 5), gg.randn(2, 3))


def test_linear_dtype_mismatch_names_both_dtypes():
    with pytest.raises((RuntimeError, TypeError), match=r"float64.*float32|float32.*float64"):
        nn.Linear(3, 2)(gg.ones(4, 3, dtype=gg.float64))
    with pytest.raises((RuntimeError, TypeError), match=r"int64.*float32|float32.*int64"):
        nn.Linear(3, 2)(gg.ones(4, 3, dtype=gg.int64))


def test_batchnorm_channels_and_rank():
    with pytest.raises(ValueError, match=r"BatchNorm2d.*num_features=4.*got 3"):
        nn.BatchNorm2d(4)(gg.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"BatchNorm2d.*4D.*\(2, 3\)"):
        nn.BatchNorm2d(3)(gg.randn(2, 3))
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*\(1, 3\)"):
        nn.BatchNorm1d(3)(gg.randn(1, 3))


# ----------------------------------------------------------------------------- loss targets

LOGITS = (4, 3)


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("target, error, pattern", [
    ([0, 1, 3, 0], (ValueError, IndexError), r"target.*3.*out of range.*\[0, 3\)"),
    ([0, 1, -1, 0], (ValueError, IndexError), r"target.*-1.*out of range"),
    ([0, 1, -2, 0], (ValueError, IndexError), r"target.*-2.*out of range"),
    ([0, 1, -99, 0], (ValueError, IndexError), r"target.*-99.*ignore_index=-100"),
    ([0, 1, 2**40, 0], (ValueError, IndexError), r"target.*1099511627776.*out of range"),
    ([0, 1, 2], ValueError, r"target of shape \(4,\).*got \(3,\)"),
    ([[0], [1], [2], [0]], ValueError, r"target of shape \(4,\).*got \(4, 1\)"),
])
def test_class_targets(loss, target, error, pattern):
    with pytest.raises(error, match=f"{loss}: .*{pattern}"):
        getattr(F, loss)(gg.randn(*LOGITS), gg.tensor(target))


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_target_dtypes(loss):
    x = gg.randn(*LOGITS)
    with pytest.raises(TypeError, match=rf"{loss}.*dtype bool"):
        getattr(F, loss)(x, gg.tensor([True, False, True, False]))
    with pytest.raises(TypeError, match=rf"{loss}.*Tensor.*list"):
        getattr(F, loss)(x, [0, 1, 2, 0])


def test_float_targets_of_the_wrong_shape_and_integer_logits():
    with pytest.raises(ValueError, match=r"cross_entropy: expected class indices of an integer "
                                         r"dtype.*\(4, 3\).*got float32 targets of shape \(4,\)"):
        F.cross_entropy(gg.randn(*LOGITS), gg.randn(4))
    with pytest.raises(TypeError, match=r"nll_loss.*float32"):
        F.nll_loss(gg.randn(*LOGITS), gg.randn(4))
    with pytest.raises(TypeError, match=r"cross_entropy.*floating-point.*int64"):
        F.cross_entropy(gg.ones(*LOGITS, dtype=gg.int64), gg.tensor([0, 1, 2, 0]))


def test_ignore_index_is_the_only_negative_target_allowed():
    x = gg.randn(*LOGITS)
    full = F.cross_entropy(x, gg.tensor([0, 1, 2, 0]), reduction="none").numpy()
    for ignore in (-100, -7):
        y = F.cross_entropy(x, gg.tensor([0, 1, ignore, 0]), ignore_index=ignore)
        np.testing.assert_allclose(y.item(), full[[0, 1, 3]].mean(), rtol=1e-6)
        with pytest.raises((ValueError, IndexError), match="out of range"):
            F.cross_entropy(x, gg.tensor([0, 1, ignore + 1, 0]), ignore_index=ignore)


def test_unbatched_cross_entropy_with_a_batched_target_names_cross_entropy():
    # PyTorch: "For 1D input, 1D target must have size 1". A message from `reshape` tells the
    # user nothing about their loss call.
    with pytest.raises((ValueError, RuntimeError), match=r"cross_entropy.*\(2,\)"):
        F.cross_entropy(gg.randn(3), gg.tensor([0, 1]))


def test_loss_options_and_weights():
    x, t = gg.randn(*LOGITS), gg.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match=r"cross_entropy.*weight.*\(3,\).*\(4,\)"):
        F.cross_entropy(x, t, weight=gg.ones(4))
    with pytest.raises(ValueError, match=r"cross_entropy.*label_smoothing.*2\.0"):
        F.cross_entropy(x, t, label_smoothing=2.0)
    with pytest.raises(ValueError, match=r"cross_entropy.*avg.*reduction"):
        F.cross_entropy(x, t, reduction="avg")
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits.*\(5,\).*\(4,\)"):
        F.binary_cross_entropy_with_logits(gg.randn(4), gg.randn(5))
    with pytest.raises((ValueError, IndexError), match=r"cross_entropy.*target.*5.*out of range"):
        nn.CrossEntropyLoss()(x, gg.tensor([0, 1, 5, 0]))


# ----------------------------------------------------------------------------- empty batches

def test_empty_batch_through_a_convnet_forward_and_backward():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.AvgPool2d(2), nn.Dropout(0.5), nn.Flatten(), nn.Linear(16, 10))
    x = gg.randn(0, 1, 8, 8, requires_grad=True)
    out = model(x)
    assert out.shape == (0, 10)
    loss = F.cross_entropy(out, gg.zeros(0, dtype=gg.int64), reduction="sum")
    assert loss.item() == 0.0
    loss.backward()
    assert x.grad.shape == (0, 1, 8, 8)
    for p in model.parameters():
        np.testing.assert_array_equal(p.grad.numpy(), np.zeros(p.shape, np.float32))


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_empty_batch_losses_match_pytorch(loss):
    # PyTorch: mean over no rows is nan, sum is 0, none is an empty tensor.
    x, t = gg.randn(0, 3), gg.zeros(0, dtype=gg.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.isnan(getattr(F, loss)(x, t).item())
    assert getattr(F, loss)(x, t, reduction="sum").item() == 0.0
    assert getattr(F, loss)(x, t, reduction="none").shape == (0,)


def test_empty_batch_leaves_batchnorm_running_stats_alone():
    # PyTorch returns an empty output and keeps running_mean/var; averaging over zero values
    # would write nan into them and silently ruin every later evaluation.
    bn = nn.BatchNorm2d(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        y = bn(gg.randn(0, 3, 4, 4))
    assert y.shape == (0, 3, 4, 4)
    np.testing.assert_array_equal(bn.running_mean.numpy(), np.zeros(3, np.float32))
    np.testing.assert_array_equal(bn.running_var.numpy(), np.ones(3, np.float32))
    bn.eval()
    out = bn(gg.ones(2, 3, 4, 4))
    assert np.isfinite(out.numpy()).all()


def test_empty_reductions_match_pytorch():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.isnan(gg.randn(0, 3).mean().item())
    assert gg.randn(0, 3).sum().item() == 0.0
    assert gg.randn(0, 3).softmax(dim=1).shape == (0, 3)
    with pytest.raises((RuntimeError, ValueError, IndexError),
                       match=r"(amax|max).*empty.*\(0, 3\)"):
        gg.randn(0, 3).max()


def test_empty_dataset_gives_no_batches():
    from gpugrad.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(gg.randn(0, 3), gg.zeros(0, dtype=gg.int64)),
                        batch_size=4, shuffle=True, seed=0)
    assert len(loader) == 0 and list(loader) == []
