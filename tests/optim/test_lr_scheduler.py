"""lr schedulers: lr (and momentum) sequences against torch.optim.lr_scheduler, state dicts."""

import math

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.optim as optim
from gpugrad.nn import Parameter
from gpugrad.optim import lr_scheduler

torch = pytest.importorskip("torch")


def make(opt_name, opt_kwargs, groups=1):
    ours = [Parameter(gg.zeros(2)) for _ in range(groups)]
    theirs = [torch.nn.Parameter(torch.zeros(2)) for _ in range(groups)]
    lrs = [opt_kwargs.get("lr", 0.1) * (i + 1) for i in range(groups)]
    opt = getattr(optim, opt_name)(
        [{"params": [p], "lr": lr} for p, lr in zip(ours, lrs)], **opt_kwargs)
    topt = getattr(torch.optim, opt_name)(
        [{"params": [p], "lr": lr} for p, lr in zip(theirs, lrs)], **opt_kwargs)
    return opt, topt


def momenta(opt):
    return [g["betas"][0] if "betas" in g else g.get("momentum") for g in opt.param_groups]


def compare_sequences(sched, tsched, opt, topt, steps):
    assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12, abs=1e-15)
    for _ in range(steps):
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        assert sched.last_epoch == tsched.last_epoch
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12, abs=1e-15)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx(
            [g["lr"] for g in topt.param_groups], rel=1e-12, abs=1e-15)
        assert momenta(opt) == pytest.approx(momenta(topt), rel=1e-12)


CASES = [
    ("StepLR", dict(step_size=3), 12),
    ("StepLR", dict(step_size=1, gamma=0.5), 6),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.3), 12),
    ("CosineAnnealingLR", dict(T_max=10), 25),
    ("CosineAnnealingLR", dict(T_max=4, eta_min=0.01), 20),
    ("LambdaLR", dict(lr_lambda=lambda e: 0.9 ** e + 0.1 * (e % 3)), 10),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=20), 20),
    ("OneCycleLR", dict(max_lr=[0.5, 2.0], epochs=3, steps_per_epoch=5, pct_start=0.25,
                        anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0), 15),
    ("OneCycleLR", dict(max_lr=0.3, total_steps=30, three_phase=True), 30),
    ("OneCycleLR", dict(max_lr=0.3, total_steps=10, cycle_momentum=False), 10),
    ("OneCycleLR", dict(max_lr=0.3, total_steps=12, base_momentum=0.7, max_momentum=0.99), 12),
]


@pytest.mark.parametrize("opt_name,opt_kwargs", [
    ("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01)), ("AdamW", dict(lr=0.02)),
])
@pytest.mark.parametrize("name,kwargs,steps", CASES)
def test_lr_sequences_match_torch(opt_name, opt_kwargs, name, kwargs, steps):
    opt, topt = make(opt_name, opt_kwargs, groups=2)
    sched = getattr(lr_scheduler, name)(opt, **kwargs)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    compare_sequences(sched, tsched, opt, topt, steps)


def test_closed_form_with_explicit_epoch():
    for name, kwargs in [("StepLR", dict(step_size=3, gamma=0.5)),
                         ("MultiStepLR", dict(milestones=[2, 4])),
                         ("CosineAnnealingLR", dict(T_max=8))]:
        opt, topt = make("SGD", dict(lr=0.1))
        sched = getattr(lr_scheduler, name)(opt, **kwargs)
        tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
        for epoch in (5, 2, 7):
            with pytest.warns(UserWarning):
                sched.step(epoch)
            with pytest.warns(UserWarning):
                tsched.step(epoch)
            assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12)


def test_cosine_values_follow_the_closed_form():
    opt, _ = make("SGD", dict(lr=1.0))
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=6, eta_min=0.1)
    for t in range(1, 7):
        opt.step()
        sched.step()
        expected = 0.1 + 0.9 * (1 + math.cos(math.pi * t / 6)) / 2
        assert sched.get_last_lr()[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name,kwargs", [
    ("StepLR", dict(step_size=2, gamma=0.5)),
    ("CosineAnnealingLR", dict(T_max=7)),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=12)),
    ("MultiStepLR", dict(milestones=[3, 6])),
])
def test_state_dict_round_trip_resumes_the_schedule(name, kwargs):
    opt, _ = make("SGD", dict(lr=0.1, momentum=0.9))
    sched = getattr(lr_scheduler, name)(opt, **kwargs)
    for _ in range(4):
        opt.step()
        sched.step()
    opt_sd, sched_sd = opt.state_dict(), sched.state_dict()
    assert "optimizer" not in sched_sd and sched_sd["last_epoch"] == 4

    opt2, _ = make("SGD", dict(lr=0.1, momentum=0.9))
    sched2 = getattr(lr_scheduler, name)(opt2, **kwargs)
    opt2.load_state_dict(opt_sd)
    sched2.load_state_dict(sched_sd)
    for _ in range(5):
        opt.step(), opt2.step()
        sched.step(), sched2.step()
        assert sched2.get_last_lr() == sched.get_last_lr()
        assert momenta(opt2) == momenta(opt)


def test_lambda_lr_state_dict_skips_functions():
    class Factor:
        def __init__(self):
            self.k = 0.5

        def __call__(self, epoch):
            return self.k ** epoch

    opt, _ = make("SGD", dict(lr=1.0), groups=2)
    sched = lr_scheduler.LambdaLR(opt, [lambda e: 1.0, Factor()])
    sd = sched.state_dict()
    assert sd["lr_lambdas"] == [None, {"k": 0.5}]
    sd["lr_lambdas"][1]["k"] = 0.25
    sched.load_state_dict(sd)
    opt.step()
    sched.step()
    assert sched.get_last_lr() == [1.0, 0.5]  # base lr 2.0 * 0.25


def test_resuming_requires_initial_lr_and_errors():
    opt, _ = make("SGD", dict(lr=0.1))
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(opt, 2, last_epoch=3)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        lr_scheduler.StepLR(object(), 2)
    with pytest.raises(ValueError, match="total_steps OR"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="anneal_strategy must be one of"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=5, anneal_strategy="exp")
    with pytest.raises(ValueError, match="pct_start"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=5, pct_start=1.5)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=3)
    for _ in range(3):
        sched.step()
    with pytest.raises(ValueError, match="Tried to step 4 times"):
        sched.step()
    plain = optim.SGD([Parameter(gg.zeros(1))], lr=0.1)
    plain.defaults.pop("momentum")
    with pytest.raises(ValueError, match="must support momentum"):
        lr_scheduler.OneCycleLR(plain, max_lr=1.0, total_steps=3)


def test_scheduler_drives_the_optimizer_update():
    p = Parameter(gg.tensor([1.0]))
    opt = optim.SGD([p], lr=1.0)
    sched = lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    seen = []
    for _ in range(3):
        p.grad = gg.tensor([1.0])
        before = p.item()
        opt.step()
        seen.append(before - p.item())
        sched.step()
    np.testing.assert_allclose(seen, [1.0, 0.5, 0.25])
