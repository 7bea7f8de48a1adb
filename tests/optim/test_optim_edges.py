"""Optimizer and scheduler options: non-finite or malformed values raise, in every group,
and load_state_dict refuses a state dict of another optimizer or of other shapes."""

import math

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import optim
from gpugrad.nn import Parameter

NAN, INF = math.nan, math.inf


def _params(*shapes):
    return [Parameter(gg.ones(*s)) for s in shapes]


def _stepped(opt, params, steps=2):
    for _ in range(steps):
        for p in params:
            p.grad = gg.ones(*p.shape)
        opt.step()
    return opt


@pytest.mark.parametrize("make, match", [
    (lambda p: optim.SGD(p, lr=NAN), "SGD: Invalid learning rate: nan"),
    (lambda p: optim.SGD(p, lr=INF), "SGD: Invalid learning rate: inf"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=NAN), "SGD: Invalid momentum value: nan"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=NAN), "SGD: Invalid weight_decay value: nan"),
    (lambda p: optim.SGD(p, lr=0.1, dampening=NAN), "SGD: Invalid dampening value: nan"),
    (lambda p: optim.Adam(p, lr=INF), "Adam: Invalid learning rate: inf"),
    (lambda p: optim.Adam(p, eps=NAN), "Adam: Invalid epsilon value: nan"),
    (lambda p: optim.Adam(p, weight_decay=INF), "Adam: Invalid weight_decay value: inf"),
    (lambda p: optim.Adam(p, betas=(NAN, 0.9)), "Adam: Invalid beta parameter at index 0"),
    (lambda p: optim.AdamW(p, betas=(0.9, 1.0)), "AdamW: Invalid beta parameter at index 1"),
    (lambda p: optim.Adam(p, betas=(0.9,)), "Adam: betas must be a pair"),
    (lambda p: optim.Adam(p, betas=(0.9, 0.99, 0.999)), "Adam: betas must be a pair"),
])
def test_non_finite_and_malformed_options_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make(_params((3,)))


@pytest.mark.parametrize("make, match", [
    (lambda p: optim.Adam(p, betas=0.9), "Adam: betas must be a pair"),
    (lambda p: optim.SGD(p, lr="0.1"), "SGD: learning rate must be a real number, got str"),
    (lambda p: optim.SGD(p, lr=None), "SGD: learning rate must be a real number"),
])
def test_options_of_the_wrong_type_raise_type_error(make, match):
    with pytest.raises(TypeError, match=match):
        make(_params((3,)))


def test_every_group_is_checked_in_the_constructor_and_add_param_group():
    with pytest.raises(ValueError, match="Adam: Invalid beta parameter at index 0: 2"):
        optim.Adam([{"params": _params((3,)), "betas": (2, 0.9)}])
    with pytest.raises(ValueError, match="SGD: Invalid momentum value: nan"):
        optim.SGD([{"params": _params((3,)), "momentum": NAN}], lr=0.1)
    opt = optim.Adam(_params((3,)))
    with pytest.raises(ValueError, match="Adam: Invalid epsilon value: -1"):
        opt.add_param_group({"params": _params((2,)), "eps": -1.0})
    assert len(opt.param_groups) == 1


def test_load_state_dict_checks_the_loaded_groups():
    params = _params((3,))
    sd = optim.SGD(params, lr=0.1).state_dict()
    sd["param_groups"][0]["lr"] = -5.0
    opt = optim.SGD(params, lr=0.1)
    with pytest.raises(ValueError, match="SGD: Invalid learning rate: -5"):
        opt.load_state_dict(sd)
    assert opt.param_groups[0]["lr"] == 0.1  # unchanged after the refusal


def test_load_state_dict_refuses_another_optimizers_state():
    params = _params((3,), (2, 2))
    adam_sd = _stepped(optim.Adam(params), params).state_dict()
    sgd = optim.SGD(params, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"SGD.load_state_dict: parameter group 0 has no "
                                         r"momentum, dampening, nesterov option"):
        sgd.load_state_dict(adam_sd)
    sgd_sd = _stepped(sgd, params).state_dict()
    with pytest.raises(ValueError, match="Adam.load_state_dict: parameter group 0 has no betas, "
                                         "eps option"):
        optim.Adam(params).load_state_dict(sgd_sd)
    # Right options, foreign state: SGD keeps no exp_avg.
    sgd_sd["state"][0] = adam_sd["state"][0]
    with pytest.raises(ValueError, match=r"SGD.load_state_dict: state of parameter 0 has "
                                         r"exp_avg, exp_avg_sq, step, which SGD does not keep"):
        optim.SGD(params, lr=0.1, momentum=0.9).load_state_dict(sgd_sd)
    with pytest.raises(ValueError, match="AdamW: decoupled_weight_decay must be True"):
        optim.AdamW(params).load_state_dict(adam_sd)


def test_load_state_dict_refuses_state_of_other_shapes():
    params = _params((3,), (2, 2))
    sd = _stepped(optim.Adam(params), params).state_dict()
    other = _params((2, 2), (3,))  # same count, shapes swapped
    opt = optim.Adam(other)
    with pytest.raises(ValueError, match=r"Adam.load_state_dict: state 'exp_avg' of parameter 0 "
                                         r"has shape \(3,\), expected \(2, 2\)"):
        opt.load_state_dict(sd)
    assert len(opt.state) == 0
    sd["state"][7] = sd["state"].pop(1)
    with pytest.raises(ValueError, match="state for parameter 7"):
        optim.Adam(params).load_state_dict(sd)


def test_a_valid_state_dict_still_loads_and_steps():
    params = _params((3,), (2, 2))
    opt = _stepped(optim.Adam(params, amsgrad=True), params)
    copies = [Parameter(gg.tensor(p.numpy().copy())) for p in params]
    opt2 = optim.Adam(copies, amsgrad=True)
    opt2.load_state_dict(opt.state_dict())
    _stepped(opt, params, 1)
    _stepped(opt2, copies, 1)
    for p, q in zip(params, copies):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


@pytest.mark.parametrize("make, match", [
    (lambda o: optim.lr_scheduler.OneCycleLR(o, max_lr=-1.0, total_steps=10),
     "OneCycleLR: Invalid max_lr: -1"),
    (lambda o: optim.lr_scheduler.OneCycleLR(o, max_lr=NAN, total_steps=10),
     "OneCycleLR: Invalid max_lr: nan"),
    (lambda o: optim.lr_scheduler.OneCycleLR(o, max_lr=[INF], total_steps=10),
     "OneCycleLR: Invalid max_lr: inf"),
    (lambda o: optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=10, div_factor=0),
     "OneCycleLR: Invalid div_factor: 0"),
    (lambda o: optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=-1e-3),
     "CosineAnnealingLR: Invalid eta_min: -0.001"),
    (lambda o: optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=NAN),
     "CosineAnnealingLR: Invalid eta_min: nan"),
])
def test_schedulers_refuse_negative_or_non_finite_lrs(make, match):
    with pytest.raises(ValueError, match=match):
        make(optim.SGD(_params((3,)), lr=0.1, momentum=0.9))
