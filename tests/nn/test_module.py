"""Module: registration, traversal, modes, .to(), state_dict round trips and errors, repr."""

import copy

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn
from gpugrad.nn import Parameter


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.bn = nn.BatchNorm1d(4)
        self.scale = Parameter(gg.ones(4))
        self.register_buffer("seen", gg.zeros(4))
        self.register_buffer("scratch", gg.zeros(2), persistent=False)

    def forward(self, x):
        return self.bn(self.fc(x)) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Linear(4, 2, bias=False)

    def forward(self, x):
        return self.head(self.block(x))


def test_registration_order_and_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["block.scale", "block.fc.weight", "block.fc.bias", "block.bn.weight",
                     "block.bn.bias", "head.weight"]
    assert [n for n, _ in net.named_buffers()] == [
        "block.seen", "block.scratch", "block.bn.running_mean", "block.bn.running_var",
        "block.bn.num_batches_tracked",
    ]
    assert [n for n, _ in net.named_children()] == ["block", "head"]
    assert [n for n, _ in net.named_modules()] == ["", "block", "block.fc", "block.bn", "head"]
    assert len(list(net.parameters(recurse=False))) == 0
    assert len(list(net.block.parameters(recurse=False))) == 1
    assert all(isinstance(p, Parameter) and p.requires_grad for p in net.parameters())
    assert net.head.bias is None


def test_shared_module_and_parameter_counted_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.Tanh(), lin)
    assert len(list(seq.parameters())) == 2
    assert len(list(seq.modules())) == 3  # seq, lin, tanh
    assert len(seq) == 3


def test_setattr_rules_and_errors():
    class Early(nn.Module):
        def __init__(self):
            self.w = Parameter(gg.ones(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'weight'"):
        m.weight = gg.ones(2, 2)
    m.bias = None
    assert m.bias is None and "bias" in m._parameters
    with pytest.raises(KeyError, match="attribute 'weight' already exists"):
        m.register_buffer("weight", gg.zeros(1))
    with pytest.raises(KeyError, match="contain"):
        m.register_buffer("a.b", gg.zeros(1))
    with pytest.raises(TypeError, match="buffer"):
        m.register_buffer("buf", np.zeros(1))
    with pytest.raises(ValueError, match="non-leaf"):
        m.register_parameter("derived", _non_leaf())
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'nope'"):
        m.nope
    del m.weight
    assert "weight" not in m._parameters


def _non_leaf():
    # A Parameter object that has a grad_fn (as if it were computed from another tensor).
    p = Parameter(gg.ones(2))
    p.grad_fn = (Parameter(gg.ones(2)) * 2).grad_fn
    return p


def test_parameter_shares_data_and_repr():
    t = gg.tensor([1.0, 2.0])
    p = Parameter(t)
    assert p.data is t.data and p.requires_grad and p.is_leaf
    assert repr(p).startswith("Parameter containing:\ntensor([1., 2.]")
    assert not Parameter(t, requires_grad=False).requires_grad
    with pytest.raises(TypeError, match="gpugrad Tensor"):
        Parameter(np.ones(2))


def test_train_eval_propagates():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError, match="boolean"):
        net.train("yes")


def test_to_dtype_keeps_parameter_objects_and_int_buffers():
    net = Net()
    params = list(net.parameters())
    net(gg.randn(5, 3)).sum().backward()
    assert net.double() is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(p.dtype == gg.float64 for p in net.parameters())
    assert all(p.grad.dtype == gg.float64 for p in net.parameters())
    assert net.block.bn.running_mean.dtype == gg.float64
    assert net.block.bn.num_batches_tracked.dtype == gg.int64
    out = net(gg.randn(5, 3, dtype=gg.float64))
    assert out.dtype == gg.float64
    net.to(gg.float32)
    assert net.block.scale.dtype == gg.float32
    with pytest.raises(TypeError, match="floating point"):
        net.to(gg.int64)
    net.to("cpu")
    assert all(p.device == gg.device("cpu") for p in net.parameters())


def test_optimizer_still_updates_after_to():
    net = nn.Linear(3, 2)
    opt = gg.optim.SGD(net.parameters(), lr=0.5)
    net.double()
    before = net.weight.numpy().copy()
    net(gg.randn(4, 3, dtype=gg.float64)).sum().backward()
    opt.step()
    assert not np.allclose(before, net.weight.numpy())


def test_zero_grad_and_apply():
    net = Net()
    net(gg.randn(5, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    for p in net.parameters():
        assert p.grad is not None and not p.grad.numpy().any()
        assert p.grad.shape == p.shape and p.grad.dtype == p.dtype
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())

    visited = []
    assert net.apply(lambda m: visited.append(type(m).__name__)) is net
    assert visited == ["Linear", "BatchNorm1d", "Block", "Linear", "Net"]


def test_requires_grad_():
    net = Net()
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_state_dict_keys_values_and_round_trip():
    gg.manual_seed(0)
    a = Net()
    sd = a.state_dict()
    assert list(sd) == [
        "block.scale", "block.seen", "block.fc.weight", "block.fc.bias", "block.bn.weight",
        "block.bn.bias", "block.bn.running_mean", "block.bn.running_var",
        "block.bn.num_batches_tracked", "head.weight",
    ]
    assert "block.scratch" not in sd  # non-persistent buffer
    assert all(not v.requires_grad for v in sd.values())
    assert sd["block.fc.weight"].data is a.block.fc.weight.data  # shares memory, as PyTorch
    assert all(isinstance(v, Parameter) for k, v in a.state_dict(keep_vars=True).items()
               if "running" not in k and "seen" not in k and "num_batches" not in k)

    a(gg.randn(6, 3))  # moves the running stats
    b = Net()
    result = b.load_state_dict(a.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(va.numpy(), vb.numpy())
    # loading copies: the modules don't share arrays afterwards
    assert b.block.fc.weight.data is not a.block.fc.weight.data
    x = gg.randn(4, 3)
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())


def test_load_state_dict_accepts_numpy_and_casts():
    m = nn.Linear(2, 3)
    w = np.arange(6, dtype=np.float64).reshape(3, 2)
    m.load_state_dict({"weight": w, "bias": gg.zeros(3, dtype=gg.float64)})
    assert m.weight.dtype == gg.float32
    np.testing.assert_array_equal(m.weight.numpy(), w.astype(np.float32))


def test_load_state_dict_strict_errors():
    m = Net()
    sd = dict(m.state_dict())
    del sd["head.weight"]
    sd["extra.thing"] = gg.zeros(1)
    with pytest.raises(RuntimeError) as e:
        m.load_state_dict(sd)
    msg = str(e.value)
    assert msg.startswith("Error(s) in loading state_dict for Net:")
    assert 'Missing key(s) in state_dict: "head.weight"' in msg
    assert 'Unexpected key(s) in state_dict: "extra.thing"' in msg

    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert missing == ["head.weight"] and unexpected == ["extra.thing"]

    bad = dict(m.state_dict())
    bad["block.fc.weight"] = gg.zeros(5, 3)
    with pytest.raises(RuntimeError) as e:
        m.load_state_dict(bad, strict=False)  # a shape mismatch is always an error
    assert ("size mismatch for block.fc.weight: copying a param with shape (5, 3) from "
            "checkpoint, the shape in current model is (4, 3).") in str(e.value)
    with pytest.raises(TypeError, match="dict-like"):
        m.load_state_dict([1, 2])


def test_load_state_dict_from_torch_module():
    torch = pytest.importorskip("torch")
    t = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    t(torch.randn(8, 3))
    g = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    g.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
    for (kg, vg), (kt, vt) in zip(g.state_dict().items(), t.state_dict().items()):
        assert kg == kt
        np.testing.assert_array_equal(vg.numpy(), vt.numpy())


def test_deepcopy_is_independent():
    net = Net()
    clone = copy.deepcopy(net)
    assert isinstance(clone.head.weight, Parameter)
    assert clone.head.weight is not net.head.weight
    np.testing.assert_array_equal(clone.head.weight.numpy(), net.head.weight.numpy())
    with gg.no_grad():
        clone.head.weight.data[...] = 0
    assert net.head.weight.numpy().any()


def test_forward_hooks():
    m = nn.Linear(2, 2)
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: calls.append("pre"))
    h2 = m.register_forward_hook(lambda mod, args, out: out * 0)
    out = m(gg.ones(1, 2))
    assert calls == ["pre"] and not out.numpy().any()
    h1.remove(), h2.remove()
    assert m(gg.ones(1, 2)).numpy().any()


def test_missing_forward():
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(1)


def test_repr_matches_torch():
    torch = pytest.importorskip("torch")

    def build(lib):
        return lib.Sequential(
            lib.Conv2d(3, 8, 3, padding=1, bias=False),
            lib.BatchNorm2d(8),
            lib.ReLU(),
            lib.MaxPool2d(2),
            lib.Conv2d(8, 8, (3, 1), stride=2, groups=2),
            lib.AvgPool2d(2),
            lib.AdaptiveAvgPool2d((1, 1)),
            lib.Flatten(),
            lib.Dropout(0.25),
            lib.Linear(8, 10),
            lib.Sigmoid(),
            lib.Tanh(),
            lib.Identity(),
            lib.BatchNorm1d(10, momentum=None, affine=False),
            lib.Sequential(lib.Linear(10, 2, bias=False), lib.ReLU(inplace=True)),
        )

    assert repr(build(nn)) == repr(build(torch.nn))
    assert repr(nn.Conv2d(1, 2, 3, padding="same")) == repr(torch.nn.Conv2d(1, 2, 3,
                                                                           padding="same"))
    assert repr(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect", dilation=2)) == repr(
        torch.nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect", dilation=2))
    for name in ("CrossEntropyLoss", "MSELoss", "NLLLoss", "BCEWithLogitsLoss",
                 "MultiMarginLoss"):
        assert repr(getattr(nn, name)()) == repr(getattr(torch.nn, name)())


def test_state_dict_survives_gpugrad_save_load(tmp_path):
    gg.manual_seed(0)
    a = Net()
    a(gg.randn(6, 3))
    gg.save(a.state_dict(), tmp_path / "net.safetensors")
    b = Net()
    assert b.load_state_dict(gg.load(tmp_path / "net.safetensors")).missing_keys == []
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=k)
        assert va.dtype == vb.dtype
