"""Grad-mode switches behave as PyTorch's: plain calls, generators, bare decorators, threads."""

from __future__ import annotations

import threading

import pytest

import gpugrad as gg

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _restore_grad_mode():
    yield
    gg.set_grad_enabled(True)
    torch.set_grad_enabled(True)


@pytest.mark.parametrize("m", [gg, torch], ids=["gpugrad", "torch"])
def test_set_grad_enabled_as_a_plain_call_switches_until_switched_back(m):
    m.set_grad_enabled(False)
    assert not m.is_grad_enabled()
    x = m.ones(2, requires_grad=True)
    assert not (x * 2).requires_grad
    m.set_grad_enabled(True)
    assert m.is_grad_enabled()
    with m.set_grad_enabled(False):
        assert not m.is_grad_enabled()
    assert m.is_grad_enabled()


@pytest.mark.parametrize("m", [gg, torch], ids=["gpugrad", "torch"])
def test_set_grad_enabled_as_a_decorator_leaves_the_mode_alone(m):
    @m.set_grad_enabled(False)
    def f():
        return m.is_grad_enabled()

    assert m.is_grad_enabled()
    assert f() is False
    assert m.is_grad_enabled()


@pytest.mark.parametrize("m", [gg, torch], ids=["gpugrad", "torch"])
def test_no_grad_on_a_generator_function_applies_at_each_resume(m):
    x = m.ones(2, requires_grad=True)

    @m.no_grad()
    def gen():
        for _ in range(2):
            got = yield (x * 2).requires_grad, m.is_grad_enabled()
            assert got is None or got == "sent"

    it = gen()
    assert next(it) == (False, False)
    assert m.is_grad_enabled()  # the caller's mode while the generator is suspended
    assert (x * 2).requires_grad
    assert it.send("sent") == (False, False)
    with pytest.raises(StopIteration):
        next(it)


@pytest.mark.parametrize("m", [gg, torch], ids=["gpugrad", "torch"])
def test_no_grad_and_enable_grad_decorate_without_parentheses(m):
    @m.no_grad
    def off(t):
        return (t * 2).requires_grad

    @m.enable_grad
    def on(t):
        return (t * 2).requires_grad

    x = m.ones(2, requires_grad=True)
    assert off(x) is False
    assert m.is_grad_enabled()
    with m.no_grad():
        assert on(x) is True
        assert not m.is_grad_enabled()
    assert off.__name__ == "off"


def test_grad_mode_is_per_thread():
    seen = []
    gg.set_grad_enabled(False)
    t = threading.Thread(target=lambda: seen.append(gg.is_grad_enabled()))
    t.start()
    t.join()
    assert seen == [True] and not gg.is_grad_enabled()
    gg.set_grad_enabled(True)


def test_nested_and_reused_contexts_restore():
    ctx = gg.no_grad()
    with ctx:
        with ctx:
            assert not gg.is_grad_enabled()
        assert not gg.is_grad_enabled()
        with gg.enable_grad():
            assert gg.is_grad_enabled()
    assert gg.is_grad_enabled()
