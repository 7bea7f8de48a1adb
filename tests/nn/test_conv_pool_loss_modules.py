"""Modules and F wrappers built on the core conv / pool / loss ops (gpugrad.ops.conv, .pool,
.loss), against torch.nn with copied weights; plus a small CNN trained side by side."""

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F

torch = pytest.importorskip("torch")

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-11)}
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}


def copy_weights(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def forward_backward(ours, theirs, x, dtype):
    xg = gg.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    yg, yt = ours(xg), theirs(xt)
    if isinstance(yg, tuple):
        np.testing.assert_array_equal(yg[1].numpy(), yt[1].numpy())
        yg, yt = yg[0], yt[0]
    np.testing.assert_allclose(yg.numpy(), yt.detach().numpy(), **TOL[dtype])
    w = np.random.default_rng(5).standard_normal(yg.shape).astype(dtype)
    yg.backward(gg.tensor(w))
    yt.backward(torch.tensor(w))
    np.testing.assert_allclose(xg.grad.numpy(), xt.grad.numpy(), **TOL[dtype])
    for (name, p), (tname, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), **TOL[dtype])


CONV_CASES = [
    dict(in_channels=3, out_channels=4, kernel_size=3),
    dict(in_channels=3, out_channels=4, kernel_size=3, padding=1, bias=False),
    dict(in_channels=4, out_channels=6, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0)),
    dict(in_channels=4, out_channels=4, kernel_size=3, groups=2, dilation=2, padding=2),
    dict(in_channels=4, out_channels=8, kernel_size=3, groups=4, padding="same"),
    dict(in_channels=2, out_channels=3, kernel_size=4, padding="same"),  # asymmetric 'same'
    dict(in_channels=2, out_channels=3, kernel_size=3, padding="valid"),
    dict(in_channels=2, out_channels=3, kernel_size=3, padding=1, padding_mode="reflect"),
    dict(in_channels=2, out_channels=3, kernel_size=3, padding=(2, 1),
         padding_mode="replicate"),
    dict(in_channels=2, out_channels=3, kernel_size=3, padding=1, padding_mode="circular"),
    dict(in_channels=2, out_channels=2, kernel_size=2, padding="same", padding_mode="reflect"),
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", CONV_CASES)
def test_conv2d_module_matches_torch(dtype, kwargs):
    t = torch.nn.Conv2d(**kwargs).to(TORCH_DTYPE[dtype])
    g = nn.Conv2d(**kwargs, dtype=dtype)
    copy_weights(g, t)
    x = np.random.default_rng(0).standard_normal((2, kwargs["in_channels"], 7, 6)).astype(dtype)
    forward_backward(g, t, x, dtype)


def test_conv2d_unbatched_input():
    t = torch.nn.Conv2d(2, 3, 3, padding=1).double()
    g = nn.Conv2d(2, 3, 3, padding=1, dtype=gg.float64)
    copy_weights(g, t)
    forward_backward(g, t, np.random.default_rng(0).standard_normal((2, 5, 5)), np.float64)


def test_conv2d_validation():
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):
        nn.Conv2d(4, 3, 3, groups=2)
    with pytest.raises(ValueError, match="not supported for strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="invalid padding string"):
        nn.Conv2d(3, 4, 3, padding="full")
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    m = nn.Conv2d(3, 4, 3)
    with pytest.raises(RuntimeError, match=r"in_channels=3 channels .* got 5 channels in "
                                            r"input of shape \(2, 5, 8, 8\)"):
        m(gg.zeros(2, 5, 8, 8))
    with pytest.raises(RuntimeError, match=r"3-D \(C, H, W\) or 4-D .* got shape \(8, 8\)"):
        m(gg.zeros(8, 8))
    with pytest.raises(RuntimeError, match="input dtype float64 does not match weight dtype "
                                           "float32"):
        m(gg.zeros(1, 3, 8, 8, dtype=gg.float64))


POOL_CASES = [
    ("MaxPool2d", dict(kernel_size=2)),
    ("MaxPool2d", dict(kernel_size=3, stride=2, padding=1)),
    ("MaxPool2d", dict(kernel_size=(2, 3), stride=1, dilation=(1, 2))),
    ("MaxPool2d", dict(kernel_size=3, stride=2, ceil_mode=True)),
    ("MaxPool2d", dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)),
    ("MaxPool2d", dict(kernel_size=2, return_indices=True)),
    ("AvgPool2d", dict(kernel_size=2)),
    ("AvgPool2d", dict(kernel_size=3, stride=2, padding=1)),
    ("AvgPool2d", dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("AvgPool2d", dict(kernel_size=3, stride=2, ceil_mode=True)),
    ("AvgPool2d", dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)),
    ("AvgPool2d", dict(kernel_size=2, stride=2, padding=1, ceil_mode=True,
                       count_include_pad=False)),
    ("AvgPool2d", dict(kernel_size=2, divisor_override=3)),
    ("AdaptiveAvgPool2d", dict(output_size=1)),
    ("AdaptiveAvgPool2d", dict(output_size=(3, 2))),
    ("AdaptiveAvgPool2d", dict(output_size=(4, None))),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kwargs", POOL_CASES)
def test_pool_modules_match_torch(dtype, name, kwargs):
    t, g = getattr(torch.nn, name)(**kwargs), getattr(nn, name)(**kwargs)
    assert repr(g) == repr(t)
    # distinct values, so max-pool ties (where the gradient routing is arbitrary) never occur
    x = np.random.default_rng(0).permutation(2 * 3 * 7 * 7).reshape(2, 3, 7, 7)
    forward_backward(g, t, (x / 10).astype(dtype), dtype)


def test_pool_functional_wrappers():
    x = np.random.default_rng(0).permutation(2 * 6 * 6).reshape(1, 2, 6, 6).astype(np.float64)
    xg, xt = gg.tensor(x), torch.tensor(x)
    vals, idx = F.max_pool2d(xg, 2, return_indices=True)
    tv, ti = torch.nn.functional.max_pool2d(xt, 2, return_indices=True)
    np.testing.assert_array_equal(vals.numpy(), tv.numpy())
    np.testing.assert_array_equal(idx.numpy(), ti.numpy())
    np.testing.assert_allclose(F.avg_pool2d(xg, 3, 1, 1).numpy(),
                               torch.nn.functional.avg_pool2d(xt, 3, 1, 1).numpy())
    np.testing.assert_allclose(F.adaptive_avg_pool2d(xg, (4, 5)).numpy(),
                               torch.nn.functional.adaptive_avg_pool2d(xt, (4, 5)).numpy())


LOSS_CASES = [
    dict(),
    dict(reduction="sum"),
    dict(reduction="none"),
    dict(ignore_index=1),
    dict(weight=True),
    dict(weight=True, ignore_index=2, reduction="mean"),
    dict(label_smoothing=0.2),
    dict(label_smoothing=0.1, weight=True, reduction="sum"),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", LOSS_CASES)
@pytest.mark.parametrize("spatial", [False, True])
def test_cross_entropy_and_nll_modules_match_torch(dtype, kwargs, spatial):
    rng = np.random.default_rng(0)
    shape = (4, 3, 2, 2) if spatial else (5, 3)
    x = rng.standard_normal(shape).astype(dtype) * 2
    tshape = (shape[0],) + shape[2:]
    target = rng.integers(0, 3, tshape)
    kwargs = dict(kwargs)
    w = rng.uniform(0.5, 2, 3).astype(dtype) if kwargs.pop("weight", False) else None
    ce_g = nn.CrossEntropyLoss(weight=None if w is None else gg.tensor(w), **kwargs)
    ce_t = torch.nn.CrossEntropyLoss(weight=None if w is None else torch.tensor(w), **kwargs)
    kwargs.pop("label_smoothing", None)
    nll_g = nn.NLLLoss(weight=None if w is None else gg.tensor(w), **kwargs)
    nll_t = torch.nn.NLLLoss(weight=None if w is None else torch.tensor(w), **kwargs)
    for ours, theirs, prep_g, prep_t in [
        (ce_g, ce_t, lambda a: a, lambda a: a),
        (nll_g, nll_t, lambda a: F.log_softmax(a, dim=1),
         lambda a: torch.nn.functional.log_softmax(a, dim=1)),
    ]:
        xg = gg.tensor(x, requires_grad=True)
        xt = torch.tensor(x, requires_grad=True)
        lg = ours(prep_g(xg), gg.tensor(target))
        lt = theirs(prep_t(xt), torch.tensor(target))
        np.testing.assert_allclose(lg.numpy(), lt.detach().numpy(), **TOL[dtype])
        cot = rng.standard_normal(lg.shape).astype(dtype)
        lg.backward(gg.tensor(cot))
        lt.backward(torch.tensor(cot))
        np.testing.assert_allclose(xg.grad.numpy(), xt.grad.numpy(), **TOL[dtype])


def test_functional_loss_wrappers_legacy_flags():
    rng = np.random.default_rng(1)
    x, target = rng.standard_normal((4, 5)), rng.integers(0, 5, 4)
    xg, tg = gg.tensor(x), gg.tensor(target)
    xt, tt = torch.tensor(x), torch.tensor(target)
    np.testing.assert_allclose(
        F.cross_entropy(xg, tg, size_average=False).numpy(),
        torch.nn.functional.cross_entropy(xt, tt, reduction="sum").numpy())
    np.testing.assert_allclose(
        F.nll_loss(F.log_softmax(xg, 1), tg, reduce=False).numpy(),
        torch.nn.functional.nll_loss(torch.log_softmax(xt, 1), tt, reduction="none").numpy())
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.cross_entropy(xg, tg, reduction="avg")


def _cnn(lib):
    return lib.Sequential(
        lib.Conv2d(1, 4, 3, padding=1), lib.BatchNorm2d(4), lib.ReLU(), lib.MaxPool2d(2),
        lib.Conv2d(4, 6, 3, groups=2, padding="same", bias=False), lib.BatchNorm2d(6),
        lib.Tanh(), lib.AvgPool2d(2), lib.AdaptiveAvgPool2d((1, 1)), lib.Flatten(),
        lib.Dropout(0.0), lib.Linear(6, 3),
    )


@pytest.mark.parametrize("opt_name,kwargs", [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("Adam", dict(lr=1e-2, amsgrad=True)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1)),
])
def test_small_cnn_trains_like_torch(opt_name, kwargs):
    torch.manual_seed(0)
    t_model = _cnn(torch.nn).double()
    g_model = _cnn(nn).double()
    copy_weights(g_model, t_model)
    t_opt = getattr(torch.optim, opt_name)(t_model.parameters(), **kwargs)
    g_opt = getattr(gg.optim, opt_name)(g_model.parameters(), **kwargs)
    rng = np.random.default_rng(0)
    for _ in range(4):
        x = rng.standard_normal((6, 1, 8, 8))
        y = rng.integers(0, 3, 6)
        g_loss = F.cross_entropy(g_model(gg.tensor(x)), gg.tensor(y), label_smoothing=0.05)
        t_loss = torch.nn.functional.cross_entropy(t_model(torch.tensor(x)), torch.tensor(y),
                                                   label_smoothing=0.05)
        np.testing.assert_allclose(g_loss.item(), t_loss.item(), rtol=1e-9)
        g_opt.zero_grad()
        t_opt.zero_grad()
        g_loss.backward()
        t_loss.backward()
        g_opt.step()
        t_opt.step()
    for (k, v), (tk, tv) in zip(g_model.state_dict().items(), t_model.state_dict().items()):
        assert k == tk
        np.testing.assert_allclose(v.numpy(), tv.numpy(), rtol=1e-8, atol=1e-10)
    g_model.eval()
    t_model.eval()
    x = rng.standard_normal((2, 1, 8, 8))
    np.testing.assert_allclose(g_model(gg.tensor(x)).numpy(),
                               t_model(torch.tensor(x)).detach().numpy(), rtol=1e-9, atol=1e-10)
