"""gg.profiler.profile: per-op call counts and times, forward and backward, as the README shows."""

import pytest

import gpugrad as gg
from gpugrad.autograd import function


def _step():
    x = gg.randn(3, 4, requires_grad=True)
    w = gg.randn(4, 2, requires_grad=True)
    return x, w, (x @ w).relu().sum()


def test_counts_each_op_forward_and_backward_and_user_regions():
    x, w, _ = _step()
    with gg.profiler.profile() as prof:
        y = (x @ w).relu().sum()
        y.backward()  # the backward formulas' own inner ops belong to them, not to forwards
        with prof.record("optimizer.step"):
            with gg.no_grad():
                w -= 0.1 * w.grad
    counts = {k: (v.forward_calls, v.backward_calls) for k, v in prof.stats.items()}
    assert counts["MatMul"] == (1, 1) and counts["Relu"] == (1, 1) and counts["Sum"] == (1, 1)
    assert counts["optimizer.step"] == (1, 0)
    assert all(s.forward_s >= 0 and s.backward_s >= 0 for s in prof.stats.values())
    assert prof.wall_s >= prof.stats["MatMul"].forward_s
    table = prof.table()
    assert table.splitlines()[0].split()[:3] == ["op", "fwd", "calls"]
    assert "MatMul" in table and "optimizer.step" in table and "ops total" in table


def test_table_limit_keeps_that_many_rows():
    x, w, _ = _step()
    with gg.profiler.profile() as prof:
        (x @ w).relu().sum().backward()
    rows = lambda text: [line for line in text.splitlines()  # noqa: E731
                         if line.split()[0] in prof.stats]
    assert len(rows(prof.table())) == 3
    assert len(rows(prof.table(limit=1))) == 1
    assert rows(prof.table(limit=0)) == []  # it printed every row


def test_the_previous_profiler_comes_back_even_after_an_error():
    before = function._profiler
    with pytest.raises(ZeroDivisionError):
        with gg.profiler.profile():
            1 / 0
    assert function._profiler is before
    x, w, _ = _step()
    with gg.profiler.profile() as prof:
        pass
    (x @ w).sum()  # outside: not recorded
    assert prof.stats == {}


def test_a_nested_profile_counts_its_ops_in_the_outer_one_too():
    x, w, _ = _step()
    with gg.profiler.profile() as outer:
        (x @ w).sum()
        with gg.profiler.profile() as inner:
            (x @ w).relu()
    assert inner.stats["MatMul"].forward_calls == 1 and "Sum" not in inner.stats
    assert outer.stats["MatMul"].forward_calls == 2  # the inner profile hid its call
    assert outer.stats["Relu"].forward_calls == 1
