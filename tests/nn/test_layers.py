"""Layers (other than conv/pool/cross-entropy) against torch.nn with copied weights."""

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn

torch = pytest.importorskip("torch")

TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
NP_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}


def copy_weights(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def compare_grads(ours, theirs, dtype):
    for (name, p), (tname, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), **TOL[dtype])


def compare_state(ours, theirs, dtype):
    for (k, v), (tk, tv) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert k == tk
        np.testing.assert_allclose(v.numpy(), tv.numpy(), **TOL[dtype])


def forward_backward(ours, theirs, x, dtype):
    xg = gg.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    yg, yt = ours(xg), theirs(xt)
    np.testing.assert_allclose(yg.numpy(), yt.detach().numpy(), **TOL[dtype])
    w = np.random.default_rng(5).standard_normal(yg.shape).astype(dtype)
    yg.backward(gg.tensor(w))
    yt.backward(torch.tensor(w))
    np.testing.assert_allclose(xg.grad.numpy(), xt.grad.numpy(), **TOL[dtype])
    compare_grads(ours, theirs, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_module(dtype, bias):
    t = torch.nn.Linear(5, 3, bias=bias).to(NP_DTYPE[dtype])
    g = nn.Linear(5, 3, bias=bias, dtype=dtype)
    copy_weights(g, t)
    x = np.random.default_rng(0).standard_normal((4, 2, 5)).astype(dtype)
    forward_backward(g, t, x, dtype)


def test_linear_validation():
    m = nn.Linear(3, 4)
    with pytest.raises(RuntimeError, match=r"in_features=3 .* got input of shape \(2, 5\)"):
        m(gg.zeros(2, 5))


BN_CASES = [
    dict(momentum=0.1), dict(momentum=None), dict(affine=False), dict(momentum=0.5, eps=1e-3),
    dict(track_running_stats=False), dict(bias=False),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", BN_CASES)
@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (6, 4)), ("BatchNorm1d", (3, 4, 5)),
                                       ("BatchNorm2d", (3, 4, 3, 2))])
def test_batchnorm_modules_over_steps(dtype, kwargs, cls, shape):
    t = getattr(torch.nn, cls)(4, **kwargs).to(NP_DTYPE[dtype])
    g = getattr(nn, cls)(4, **kwargs, dtype=dtype)
    rng = np.random.default_rng(1)
    if g.affine:
        with torch.no_grad():
            t.weight.copy_(torch.tensor(rng.standard_normal(4)))
            if t.bias is not None:
                t.bias.copy_(torch.tensor(rng.standard_normal(4)))
    copy_weights(g, t)
    for step in range(3):
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(dtype)
        for p in list(g.parameters()):
            p.grad = None
        t.zero_grad()
        if g.affine:
            forward_backward(g, t, x, dtype)
        else:
            np.testing.assert_allclose(g(gg.tensor(x)).numpy(), t(torch.tensor(x)).numpy(),
                                       **TOL[dtype])
        compare_state(g, t, dtype)
    if g.track_running_stats:
        assert g.num_batches_tracked.item() == 3
    g.eval(), t.eval()
    x = rng.standard_normal(shape).astype(dtype)
    if g.affine:
        g.zero_grad(), t.zero_grad()
        forward_backward(g, t, x, dtype)
    else:
        np.testing.assert_allclose(g(gg.tensor(x)).numpy(), t(torch.tensor(x)).numpy(),
                                   **TOL[dtype])
    compare_state(g, t, dtype)


def test_batchnorm_validation():
    with pytest.raises(ValueError, match="expected 4D input, got 3D input"):
        nn.BatchNorm2d(3)(gg.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="expected 2D or 3D input, got 4D"):
        nn.BatchNorm1d(3)(gg.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"num_features=3 channels in dim 1, got 5"):
        nn.BatchNorm2d(3)(gg.zeros(2, 5, 4, 4))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(gg.zeros(1, 3))
    m = nn.BatchNorm1d(3)
    m.eval()
    assert m(gg.zeros(1, 3)).shape == (1, 3)  # eval mode uses running stats: batch 1 is fine


def test_batchnorm_reset_and_state_dict_round_trip():
    m = nn.BatchNorm2d(2)
    m(gg.randn(4, 2, 3, 3) * 3 + 2)
    m2 = nn.BatchNorm2d(2)
    m2.load_state_dict(m.state_dict())
    assert m2.num_batches_tracked.item() == 1
    np.testing.assert_array_equal(m2.running_var.numpy(), m.running_var.numpy())
    m.reset_running_stats()
    assert not m.running_mean.numpy().any() and (m.running_var.numpy() == 1).all()
    assert m.num_batches_tracked.item() == 0


def test_dropout_module_train_eval():
    gg.manual_seed(0)
    m = nn.Dropout(0.5)
    x = gg.ones(100, 100)
    y = m(x).numpy()
    assert set(np.unique(y)) == {0.0, 2.0}
    m.eval()
    assert m(x) is x
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.2)


def test_activation_and_shape_modules():
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    xg, xt = gg.tensor(x), torch.tensor(x)
    for ours, theirs in [(nn.Sigmoid(), torch.nn.Sigmoid()), (nn.Tanh(), torch.nn.Tanh()),
                         (nn.ReLU(), torch.nn.ReLU()), (nn.Flatten(), torch.nn.Flatten()),
                         (nn.Flatten(0, 1), torch.nn.Flatten(0, 1)),
                         (nn.Softmax(dim=-1), torch.nn.Softmax(dim=-1)),
                         (nn.LogSoftmax(dim=1), torch.nn.LogSoftmax(dim=1)),
                         (nn.Identity(3, k=2), torch.nn.Identity(3, k=2))]:
        np.testing.assert_allclose(ours(xg).numpy(), theirs(xt).numpy(), rtol=1e-12, atol=1e-14)
    assert nn.Identity()(xg) is xg


def test_relu_inplace_flag():
    x = gg.tensor([-1.0, 2.0])
    out = nn.ReLU(inplace=True)(x)
    assert out is x and x.tolist() == [0.0, 2.0]
    # with a graph, the in-place request falls back to a new tensor with the same values
    x = gg.tensor([-1.0, 2.0], requires_grad=True)
    y = nn.ReLU(inplace=True)(x * 1)
    y.sum().backward()
    assert y.tolist() == [0.0, 2.0] and x.grad.tolist() == [0.0, 1.0]


def test_sequential_behaviour():
    a, b, c = nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and seq[0] is a and seq[-1] is c
    assert list(seq) == [a, b, c]
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c]
    assert [n for n, _ in sub.named_children()] == ["1", "2"]
    x = gg.randn(4, 2)
    np.testing.assert_allclose(seq(x).numpy(), c(b(a(x))).numpy())
    d = nn.Sigmoid()
    assert seq.append(d) is seq and seq[3] is d
    seq[3] = nn.Identity()
    assert isinstance(seq[3], nn.Identity)
    del seq[1]
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2"] and seq[1] is c
    with pytest.raises(IndexError, match="out of range"):
        seq[7]
    from collections import OrderedDict
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert [n for n, _ in named.named_parameters()] == ["fc.weight", "fc.bias"]
    assert isinstance(named.act, nn.ReLU)


def test_module_list_behaviour():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(layers) == 3 and len(list(layers.parameters())) == 6
    layers.append(nn.ReLU())
    layers.extend([nn.Tanh()])
    layers += [nn.Sigmoid()]
    assert len(layers) == 6 and isinstance(layers[-1], nn.Sigmoid)
    layers.insert(0, nn.Identity())
    assert isinstance(layers[0], nn.Identity) and isinstance(layers[1], nn.Linear)
    assert [n for n, _ in layers.named_children()] == [str(i) for i in range(7)]
    assert isinstance(layers[1:3], nn.ModuleList) and len(layers[1:3]) == 2

    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])

        def forward(self, x):
            for blk in self.blocks:
                x = blk(x)
            return x

    h = Holder()
    assert [n for n, _ in h.named_parameters()] == [
        "blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias"]
    assert h(gg.zeros(1, 2)).shape == (1, 2)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_modules(reduction):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 3)), rng.random((4, 3))
    w, pw = rng.random((4, 3)), rng.uniform(0.5, 2, 3)
    pairs = [
        (nn.MSELoss(reduction=reduction), torch.nn.MSELoss(reduction=reduction), y),
        (nn.BCEWithLogitsLoss(weight=gg.tensor(w), pos_weight=gg.tensor(pw),
                              reduction=reduction),
         torch.nn.BCEWithLogitsLoss(weight=torch.tensor(w), pos_weight=torch.tensor(pw),
                                    reduction=reduction), y),
    ]
    target = np.array([0, 2, 1, 2])
    cw = rng.random(3)
    pairs.append((nn.MultiMarginLoss(p=2, margin=0.5, weight=gg.tensor(cw), reduction=reduction),
                  torch.nn.MultiMarginLoss(p=2, margin=0.5, weight=torch.tensor(cw),
                                           reduction=reduction), target))
    for ours, theirs, tgt in pairs:
        xg = gg.tensor(x, requires_grad=True)
        xt = torch.tensor(x, requires_grad=True)
        lg, lt = ours(xg, gg.tensor(tgt)), theirs(xt, torch.tensor(tgt))
        np.testing.assert_allclose(lg.numpy(), lt.detach().numpy(), rtol=1e-10, atol=1e-12)
        lg.sum().backward()
        lt.sum().backward()
        np.testing.assert_allclose(xg.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.MSELoss(reduction="avg")


def test_loss_weight_is_a_buffer():
    m = nn.BCEWithLogitsLoss(pos_weight=gg.ones(3))
    assert "pos_weight" in m.state_dict()
    m.double()
    assert m.pos_weight.dtype == gg.float64
