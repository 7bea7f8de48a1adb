"""SGD / Adam / AdamW against torch.optim: trajectories with identical gradients for every
option combination, parameter groups, state_dict format and round trips, and errors."""

import itertools

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.optim as optim
from gpugrad.nn import Parameter

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (5,), ()]
STEPS = 10


def make_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ours = [Parameter(gg.tensor(a)) for a in arrays]
    theirs = [torch.nn.Parameter(torch.tensor(a)) for a in arrays]
    return ours, theirs


def grads_for(step, dtype, seed=1):
    rng = np.random.default_rng(seed + 100 * step)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def set_grads(ours, theirs, grads, skip=None):
    for i, (p, tp, g) in enumerate(zip(ours, theirs, grads)):
        if i == skip:
            p.grad, tp.grad = None, None
        else:
            p.grad, tp.grad = gg.tensor(g), torch.tensor(g)


def assert_close(ours, theirs, dtype):
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), **tol)


def run_trajectory(name, kwargs, dtype, steps=STEPS):
    ours, theirs = make_params(dtype)
    ids = [id(p.data) for p in ours]
    opt = getattr(optim, name)(ours, **kwargs)
    topt = getattr(torch.optim, name)(theirs, **kwargs)
    for step in range(steps):
        # parameter 2 has no gradient on step 3: it must be skipped, as torch skips it
        set_grads(ours, theirs, grads_for(step, dtype), skip=2 if step == 3 else None)
        opt.step()
        topt.step()
        assert_close(ours, theirs, dtype)
    # updates are in place: same Parameter objects, same arrays
    assert [id(p.data) for p in ours] == ids
    return opt, topt, ours, theirs


SGD_CASES = [
    dict(lr=0.1, momentum=m, dampening=d, nesterov=n, weight_decay=wd, maximize=mx)
    for m, d, n, wd, mx in itertools.product([0.0, 0.9], [0.0, 0.3], [False, True], [0.0, 0.05],
                                             [False, True])
    if not (n and (m == 0 or d != 0))
]


@pytest.mark.parametrize("kwargs", SGD_CASES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_matches_torch(kwargs, dtype):
    run_trajectory("SGD", kwargs, dtype)


ADAM_CASES = [
    dict(lr=0.05, betas=b, eps=e, weight_decay=wd, amsgrad=a, maximize=mx)
    for b, e, wd, a, mx in itertools.product([(0.9, 0.999), (0.5, 0.9)], [1e-8, 1e-3],
                                             [0.0, 0.1], [False, True], [False, True])
]


@pytest.mark.parametrize("kwargs", ADAM_CASES, ids=str)
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_family_matches_torch_float64(name, kwargs):
    run_trajectory(name, kwargs, np.float64)


@pytest.mark.parametrize("name,kwargs", [
    ("Adam", dict(lr=1e-2)), ("Adam", dict(lr=1e-2, amsgrad=True, weight_decay=1e-2)),
    ("AdamW", dict(lr=1e-2)), ("AdamW", dict(lr=1e-2, amsgrad=True, maximize=True)),
    ("Adam", dict(lr=1e-2, decoupled_weight_decay=True, weight_decay=0.1)),
])
def test_adam_family_matches_torch_float32(name, kwargs):
    run_trajectory(name, kwargs, np.float32)


def test_defaults_and_state_dict_format_match_torch():
    for name, kwargs in [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", {}), ("AdamW", {}),
                         ("Adam", dict(amsgrad=True))]:
        opt, topt, _, _ = run_trajectory(name, kwargs, np.float64, steps=2)
        sd, tsd = opt.state_dict(), topt.state_dict()
        assert sd["param_groups"] == tsd["param_groups"]
        assert sd["state"].keys() == tsd["state"].keys()
        for k in sd["state"]:
            assert sd["state"][k].keys() == tsd["state"][k].keys()
            for key, v in sd["state"][k].items():
                tv = tsd["state"][k][key]
                np.testing.assert_allclose(v.numpy(), tv.numpy(), rtol=1e-12)
                assert v.dtype == np.dtype(str(tv.dtype).replace("torch.", ""))


@pytest.mark.parametrize("name,kwargs", [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("AdamW", dict(lr=0.05, weight_decay=0.2)),
])
def test_state_dict_round_trip_then_continue(name, kwargs):
    dtype = np.float64
    ours, _ = make_params(dtype)
    opt = getattr(optim, name)(ours, **kwargs)
    for step in range(4):
        for p, g in zip(ours, grads_for(step, dtype)):
            p.grad = gg.tensor(g)
        opt.step()
    sd = opt.state_dict()
    # a second model and optimizer resumed from copies of the weights and the state
    resumed = [Parameter(gg.tensor(p.numpy().copy())) for p in ours]
    opt2 = getattr(optim, name)(resumed, lr=123.0)  # the loaded groups override this lr
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == kwargs["lr"]
    assert opt2.param_groups[0]["params"][0] is resumed[0]
    for step in range(4, 8):
        for p, q, g in zip(ours, resumed, grads_for(step, dtype)):
            p.grad, q.grad = gg.tensor(g), gg.tensor(g)
        opt.step()
        opt2.step()
    for p, q in zip(ours, resumed):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    # the loaded state is a copy: the two optimizers don't share buffers
    for p, q in zip(ours, resumed):
        for key, t in opt.state[p].items():
            assert t.data is not opt2.state[q][key].data


def test_load_torch_optimizer_state_dict():
    dtype = np.float64
    ours, theirs = make_params(dtype)
    topt = torch.optim.Adam(theirs, lr=0.01)
    for step in range(3):
        for tp, g in zip(theirs, grads_for(step, dtype)):
            tp.grad = torch.tensor(g)
        topt.step()
    for p, tp in zip(ours, theirs):
        with gg.no_grad():
            p.data[...] = tp.detach().numpy()
    tsd = topt.state_dict()
    sd = {"state": {k: {n: v.numpy() for n, v in s.items()} for k, s in tsd["state"].items()},
          "param_groups": tsd["param_groups"]}
    opt = optim.Adam(ours, lr=0.5)
    opt.load_state_dict(sd)
    for step in range(3, 6):
        set_grads(ours, theirs, grads_for(step, dtype))
        opt.step()
        topt.step()
    assert_close(ours, theirs, dtype)


def test_state_dict_survives_gpugrad_save_load(tmp_path):
    ours, _ = make_params(np.float32)
    opt = optim.SGD(ours, lr=0.1, momentum=0.9)
    for p, g in zip(ours, grads_for(0, np.float32)):
        p.grad = gg.tensor(g)
    opt.step()
    gg.save(opt.state_dict(), tmp_path / "opt.safetensors")
    loaded = gg.load(tmp_path / "opt.safetensors")
    opt2 = optim.SGD([Parameter(gg.tensor(p.numpy())) for p in ours], lr=0.1, momentum=0.9)
    opt2.load_state_dict(loaded)
    bufs = [opt2.state[p]["momentum_buffer"].numpy() for p in opt2.param_groups[0]["params"]]
    for b, g in zip(bufs, grads_for(0, np.float32)):
        np.testing.assert_array_equal(b, g)


def test_param_groups_with_own_options():
    dtype = np.float64
    ours, theirs = make_params(dtype)
    opt = optim.SGD([{"params": ours[:2], "lr": 0.5}, {"params": ours[2:], "momentum": 0.5}],
                    lr=0.1, momentum=0.9)
    topt = torch.optim.SGD([{"params": theirs[:2], "lr": 0.5},
                            {"params": theirs[2:], "momentum": 0.5}], lr=0.1, momentum=0.9)
    assert opt.param_groups[0]["momentum"] == 0.9 and opt.param_groups[1]["lr"] == 0.1
    for step in range(5):
        set_grads(ours, theirs, grads_for(step, dtype))
        opt.step()
        topt.step()
    assert_close(ours, theirs, dtype)
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sd == opt.state_dict()

    extra = Parameter(gg.zeros(2))
    opt.add_param_group({"params": extra, "lr": 0.01})
    assert opt.param_groups[2]["momentum"] == 0.9 and opt.param_groups[2]["params"] == [extra]
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [ours[0]]})
    with pytest.raises(ValueError, match="different number of parameter groups"):
        optim.SGD(ours, lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="doesn't match the size"):
        optim.SGD([{"params": ours[:1]}, {"params": ours[1:]}], lr=0.1).load_state_dict(sd)


def test_zero_grad_and_closure():
    p = Parameter(gg.tensor([1.0, 2.0]))
    opt = optim.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 5.0
    np.testing.assert_allclose(p.numpy(), [0.8, 1.6])
    assert p.grad is not None
    opt.zero_grad(set_to_none=False)
    assert p.grad.tolist() == [0.0, 0.0]
    opt.zero_grad()
    assert p.grad is None


def test_step_records_nothing():
    p = Parameter(gg.tensor([1.0]))
    p.grad = gg.tensor([1.0])
    optim.Adam([p]).step()
    assert p.grad_fn is None and p.is_leaf


def test_errors():
    p = Parameter(gg.zeros(2))
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="Invalid momentum value"):
        optim.SGD([p], lr=0.1, momentum=-0.5)
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero "
                                         "dampening"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Invalid epsilon"):
        optim.AdamW([p], eps=-1.0)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([Parameter(gg.ones(2)) * 2], lr=0.1)
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        optim.SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD({p}, lr=0.1)
    with pytest.raises(ValueError, match="duplicate"):
        optim.SGD([p, p], lr=0.1)


def test_repr():
    p = Parameter(gg.zeros(2))
    text = repr(optim.SGD([p], lr=0.1, momentum=0.9))
    assert text.startswith("SGD (\nParameter Group 0\n") and "    momentum: 0.9" in text
