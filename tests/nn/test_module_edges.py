"""Module edges: load_state_dict names the key of a bad value and accepts old BatchNorm
state dicts; layer constructors name the module and argument; Dropout's p and inplace."""

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn


def _model():
    gg.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))


def test_a_string_value_names_its_key():
    sd = dict(_model().state_dict())
    sd["1.num_batches_tracked"] = "abc"
    with pytest.raises(RuntimeError, match=r"1.num_batches_tracked.*got str 'abc'"):
        _model().load_state_dict(sd)


def test_none_names_its_key_and_type():
    sd = dict(_model().state_dict())
    sd["3.bias"] = None
    with pytest.raises(RuntimeError, match=r"3.bias, expected a Tensor or array of shape "
                                           r"\(3,\) from the checkpoint, got NoneType"):
        _model().load_state_dict(sd)


def test_an_array_of_strings_names_its_key():
    sd = dict(_model().state_dict())
    sd["3.bias"] = ["a", "b", "c"]
    with pytest.raises(RuntimeError, match=r"3.bias: expected numbers, got an array of dtype"):
        _model().load_state_dict(sd)


def test_numbers_and_arrays_still_load():
    sd = {k: v.numpy() for k, v in _model().state_dict().items()}
    sd["1.num_batches_tracked"] = 7
    model = _model()
    model.load_state_dict(sd)
    assert int(model[1].num_batches_tracked.item()) == 7


def test_batchnorm_state_dict_without_num_batches_tracked_loads_strict():
    # PyTorch < 0.4.1 saved no counter; PyTorch loads such a dict and keeps the counter.
    source = _model()
    source(gg.randn(4, 1, 4, 4))
    sd = dict(source.state_dict())
    del sd["1.num_batches_tracked"]
    model = _model()
    model(gg.randn(4, 1, 4, 4))
    model(gg.randn(4, 1, 4, 4))
    result = model.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert int(model[1].num_batches_tracked.item()) == 2
    np.testing.assert_array_equal(model[1].running_mean.numpy(), source[1].running_mean.numpy())
    # Other keys are still required.
    del sd["1.running_mean"]
    with pytest.raises(RuntimeError, match='Missing key.*"1.running_mean"'):
        _model().load_state_dict(sd)


@pytest.mark.parametrize("make, error, match", [
    (lambda: nn.Linear(-1, 3), ValueError, "Linear: in_features must be >= 0, got -1"),
    (lambda: nn.Linear(3, -2), ValueError, "Linear: out_features must be >= 0, got -2"),
    (lambda: nn.Linear(2.5, 3), TypeError, "Linear: in_features must be an int, got float"),
    (lambda: nn.BatchNorm2d(-1), ValueError, "BatchNorm2d: num_features must be >= 0, got -1"),
    (lambda: nn.BatchNorm1d(2.5), TypeError, "BatchNorm1d: num_features must be an int"),
    (lambda: nn.Dropout("a"), TypeError, "Dropout: dropout probability p must be a number"),
])
def test_constructors_name_the_module_and_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_dropout_inplace_modifies_a_tensor_outside_the_graph():
    x = gg.ones(64)
    y = nn.Dropout(0.5, inplace=True)(x)
    assert y is x
    assert set(np.unique(x.numpy())) <= {0.0, 2.0} and (x.numpy() == 0).any()
    leaf = gg.ones(64, requires_grad=True)
    with gg.no_grad():
        assert nn.Dropout(0.5, inplace=True)(leaf) is leaf
    assert (leaf.numpy() == 0).any()


def test_dropout_inplace_refuses_a_leaf_that_requires_grad():
    x = gg.ones(8, requires_grad=True)
    with pytest.raises(RuntimeError, match="dropout\\(inplace=True\\): a leaf tensor that "
                                           "requires grad"):
        nn.Dropout(0.5, inplace=True)(x)
    with pytest.raises(RuntimeError, match="relu\\(inplace=True\\): a leaf tensor that "
                                           "requires grad"):
        nn.ReLU(inplace=True)(x)  # the same rule for ReLU, as in PyTorch
    with gg.no_grad():  # nothing recorded: in place, as in PyTorch
        assert nn.ReLU(inplace=True)(x) is x
    assert (x.numpy() == 1).all()
    m = nn.Dropout(0.5, inplace=True).eval()
    assert m(x) is x  # eval mode does not touch the input, as in PyTorch


def test_dropout_inplace_in_a_recorded_graph_keeps_gradients_right():
    a = gg.ones(32, requires_grad=True)
    b = a * 2
    c = b * b  # saves b for its backward: overwriting b would corrupt a.grad
    d = nn.Dropout(0.5, inplace=True)(b)
    (c.sum() + d.sum()).backward()
    keep = d.numpy() != 0
    np.testing.assert_allclose(a.grad.numpy(), 8 + 4 * keep)


def test_a_failed_load_leaves_the_module_as_it_was():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    bad = {k: np.full(v.shape, 7.0, np.float32) for k, v in before.items()}
    bad["1.weight"] = np.zeros((5, 5), np.float32)  # the last entry is the wrong shape
    with pytest.raises(RuntimeError, match="size mismatch for 1.weight"):
        model.load_state_dict(bad)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])  # "0.weight" was not written
    del bad["1.weight"]
    with pytest.raises(RuntimeError, match="Missing key"):
        model.load_state_dict(bad)  # strict: a missing key fails it too, before any write
    np.testing.assert_array_equal(model.state_dict()["0.weight"].numpy(), before["0.weight"])
    model.load_state_dict(bad, strict=False)  # and a load that passes writes everything
    assert (model.state_dict()["0.weight"].numpy() == 7.0).all()


def _torch():
    return pytest.importorskip("torch")


def test_replacing_a_child_or_parameter_keeps_its_place_as_torch():
    torch = _torch()
    for m, N in ((gg, nn), (torch, torch.nn)):
        s = N.Sequential(N.Linear(3, 3), N.Tanh(), N.Linear(3, 3))
        s[0] = N.Linear(3, 3)  # it ran last: Tanh, Linear, Linear
        assert [type(x).__name__ for x in s] == ["Linear", "Tanh", "Linear"]
        assert list(s.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
        lin = N.Linear(2, 2)
        lin.weight = N.Parameter(m.ones(2, 2))
        assert list(lin.state_dict()) == ["weight", "bias"]
        ml = N.ModuleList([N.ReLU(), N.Tanh()])
        ml[0] = N.Sigmoid()
        assert [type(x).__name__ for x in ml] == ["Sigmoid", "Tanh"]


@pytest.mark.parametrize("index", [-1, -2, -3, 0, 3])
def test_sequential_insert_matches_torch(index):
    torch = _torch()
    names = []
    for N in (nn, torch.nn):
        s = N.Sequential(N.Linear(2, 3), N.ReLU(), N.Linear(3, 4))
        s.insert(index, N.Tanh())
        names.append([type(x).__name__ for x in s])
    assert names[0] == names[1]


def test_lenet_refuses_images_too_small_for_its_pools():
    from gpugrad.models import LeNet

    with pytest.raises(ValueError, match="LeNet: image_size must be at least 4"):
        LeNet(image_size=3)
    assert LeNet(image_size=4)(gg.zeros(1, 1, 4, 4)).shape == (1, 10)
