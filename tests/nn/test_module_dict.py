"""nn.ModuleDict: registration, order, state_dict names and the dict API, against PyTorch's."""

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn


def test_registers_by_name_in_order_like_torch():
    torch = pytest.importorskip("torch")
    gg.manual_seed(0)
    d = nn.ModuleDict({"conv": nn.Conv2d(1, 2, 3), "head": nn.Linear(4, 2)})
    d["act"] = nn.ReLU()
    d.update([("drop", nn.Dropout(0.1))])
    td = torch.nn.ModuleDict({"conv": torch.nn.Conv2d(1, 2, 3), "head": torch.nn.Linear(4, 2)})
    td["act"] = torch.nn.ReLU()
    td.update([("drop", torch.nn.Dropout(0.1))])
    assert list(d) == list(td) == ["conv", "head", "act", "drop"]
    assert list(d.state_dict()) == list(td.state_dict())
    assert len(list(d.parameters())) == 4 and len(d) == 4
    assert "head" in d and "nope" not in d
    assert repr(d) == repr(td)
    head = d.pop("head")
    assert isinstance(head, nn.Linear) and list(d.keys()) == ["conv", "act", "drop"]
    del d["act"]
    assert [type(m).__name__ for m in d.values()] == ["Conv2d", "Dropout"]
    assert [k for k, _ in d.items()] == ["conv", "drop"]
    d.clear()
    assert len(d) == 0 and list(d.parameters()) == []


def test_a_model_holding_one_trains_and_moves_with_it():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.branches = nn.ModuleDict({"a": nn.Linear(3, 2), "b": nn.Linear(3, 2)})

        def forward(self, x):
            return self.branches["a"](x) + self.branches["b"](x)

    net = Net()
    x = gg.tensor(np.ones((4, 3), dtype=np.float32))
    net(x).sum().backward()
    names = [n for n, p in net.named_parameters() if p.grad is not None]
    assert names == ["branches.a.weight", "branches.a.bias", "branches.b.weight",
                     "branches.b.bias"]


def test_errors_name_the_container():
    d = nn.ModuleDict()
    with pytest.raises(KeyError, match="ModuleDict: no module named 'x'"):
        d["x"]
    with pytest.raises(KeyError, match="no module named 'x'"):
        del d["x"]
    with pytest.raises(TypeError, match="is not a Module subclass"):
        d["x"] = 3
    with pytest.raises(ValueError, match="element #0 of the sequence should be a"):
        d.update([nn.ReLU()])
    with pytest.raises(NotImplementedError, match="ModuleDict is not callable"):
        d(gg.ones(1))
