"""The tape engine: order, accumulation, graph release, grad modes, hooks, higher order."""

import gc
import sys
import weakref

import numpy as np
import pytest

import gpugrad as gg


def test_deep_chain_has_no_recursion_limit():
    x = gg.tensor(2.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    assert 100_000 > sys.getrecursionlimit()
    y.backward()
    assert x.grad.item() == 1.0


def test_input_used_several_times_sums_gradients():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x + x * 3.0 + x).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1.0, 2.0]) + 4.0)


def test_leaf_grad_accumulates_across_backward_calls():
    x = gg.tensor([1.0, -1.0], requires_grad=True)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 5.0])
    x.grad = None
    (x * 4).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 4.0])


def test_second_backward_through_freed_graph_raises():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)


def test_non_scalar_backward_needs_gradient():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        (x * 2).backward()
    (x * 2).backward(gg.tensor([1.0, 10.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 20.0])


def test_gradient_shape_mismatch_raises():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="gradient has shape"):
        (x * 2).backward(gg.tensor([1.0, 2.0, 3.0]))


def test_a_gradient_of_another_dtype_takes_the_outputs_dtype_as_in_pytorch():
    """A float32 gradient for a float64 output: every backward sees float64 (the conv's
    Winograd passes refuse mixed dtypes), and the leaf's grad is float64."""
    rng = np.random.default_rng(0)
    x = gg.tensor(rng.standard_normal((2, 3, 5, 5)), requires_grad=True)
    w = gg.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    y = gg.nn.functional.conv2d(x, w, padding=1)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(gg.tensor(gy))
    assert x.grad.dtype == np.float64 and w.grad.dtype == np.float64
    x64, w64 = (gg.tensor(t.detach().numpy(), requires_grad=True) for t in (x, w))
    gg.nn.functional.conv2d(x64, w64, padding=1).backward(gg.tensor(gy.astype(np.float64)))
    np.testing.assert_array_equal(x.grad.numpy(), x64.grad.numpy())
    np.testing.assert_array_equal(w.grad.numpy(), w64.grad.numpy())
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x.detach().numpy(), requires_grad=True)
    (xt * 2).backward(torch.ones(xt.shape, dtype=torch.float32))
    assert xt.grad.dtype == torch.float64  # PyTorch casts the gradient the same way


def test_no_grad_records_nothing_and_works_as_decorator():
    x = gg.tensor([1.0], requires_grad=True)
    with gg.no_grad():
        y = x * 2
        with gg.enable_grad():
            z = x * 3
    assert y.grad_fn is None and not y.requires_grad
    assert z.grad_fn is not None and z.requires_grad

    @gg.no_grad()
    def f(t):
        return t.exp()

    assert f(x).grad_fn is None
    assert gg.is_grad_enabled()


def test_backward_of_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        gg.tensor([1.0]).sum().backward()


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(RuntimeError, match="only floating-point tensors"):
        gg.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="int64"):
        gg.arange(3).requires_grad_()


def test_graph_is_freed_after_backward():
    x = gg.tensor(np.ones((3, 3)), requires_grad=True)
    y = (x * 2).exp()
    node = weakref.ref(y.grad_fn)
    loss = y.sum()
    del y
    loss.backward()
    del loss
    gc.collect()
    assert node() is None


def test_no_reference_cycles_after_a_step():
    def step():
        x = gg.tensor(np.random.randn(4, 3), requires_grad=True)
        w = gg.tensor(np.random.randn(3, 2), requires_grad=True)
        loss = ((x @ w).relu().softmax(dim=1) * 3).sum()
        loss.backward()

    step()  # the first call JIT-compiles kernels, which leaves Numba's own garbage behind
    gc.collect()
    gc.disable()
    try:
        step()
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_autograd_grad_returns_and_leaves_grad_untouched():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = (x ** 3).sum()
    (g,) = gg.autograd.grad(y, x)
    np.testing.assert_allclose(g.numpy(), 3 * np.array([1.0, 4.0]))
    assert x.grad is None


def test_autograd_grad_non_leaf_input():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    y = (h ** 2).sum()
    (gh,) = gg.autograd.grad(y, h)
    np.testing.assert_allclose(gh.numpy(), 2 * h.numpy())


def test_autograd_grad_unused_input():
    x = gg.tensor([1.0], requires_grad=True)
    z = gg.tensor([1.0], requires_grad=True)
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="not used"):
        gg.autograd.grad(y, [x, z], retain_graph=True)
    gx, gz = gg.autograd.grad(y, [x, z], allow_unused=True)
    assert gz is None and gx.item() == 2.0


def test_third_order_gradient():
    x = gg.tensor(1.3, dtype=gg.float64, requires_grad=True)
    y = x.sin() * x ** 3
    (g1,) = gg.autograd.grad(y, x, create_graph=True)
    (g2,) = gg.autograd.grad(g1, x, create_graph=True)
    (g3,) = gg.autograd.grad(g2, x)
    v = 1.3
    expected = (-np.cos(v) * v**3 - 9 * np.sin(v) * v**2 + 18 * np.cos(v) * v + 6 * np.sin(v))
    np.testing.assert_allclose(g3.item(), expected, rtol=1e-10)


def test_hooks_can_replace_gradients():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    seen = []
    h.register_hook(lambda g: seen.append(g.numpy().copy()))
    handle = x.register_hook(lambda g: g * 10)
    (h * 3).sum().backward()
    np.testing.assert_allclose(seen[0], [3.0, 3.0])
    np.testing.assert_allclose(x.grad.numpy(), [60.0, 60.0])
    handle.remove()
    x.grad = None
    (h * 3).sum().backward() if False else (x * 1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])


def test_retain_grad_on_non_leaf():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.numpy())


def test_kinks_follow_pytorch():
    x = gg.tensor([0.0, 1.0, -1.0], requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 0.0])
    a = gg.tensor([1.0, 2.0], requires_grad=True)
    b = gg.tensor([1.0, 3.0], requires_grad=True)
    gg.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.5, 0.0])
    np.testing.assert_array_equal(b.grad.numpy(), [0.5, 1.0])
    m = gg.tensor([2.0, 2.0, 1.0], requires_grad=True)
    m.amax().backward()
    np.testing.assert_array_equal(m.grad.numpy(), [0.5, 0.5, 0.0])
    z = gg.tensor([0.0, 0.5], requires_grad=True)
    z.abs().sum().backward()
    np.testing.assert_array_equal(z.grad.numpy(), [0.0, 1.0])
    c = gg.tensor([-1.0, 0.0, 1.0, 2.0], requires_grad=True)
    c.clamp(0.0, 1.0).sum().backward()
    np.testing.assert_array_equal(c.grad.numpy(), [0.0, 1.0, 1.0, 0.0])


def test_getitem_backward_scatter_adds_repeated_indices():
    x = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])


def test_comparisons_return_bool_without_grad():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    for r in (x < 1.5, x <= 1, x > 0, x >= 2, x == 1, x != 1):
        assert r.dtype == gg.bool and not r.requires_grad
    np.testing.assert_array_equal((x < 1.5).numpy(), [True, False])


def test_forward_runs_with_the_inputs_gpu_current(monkeypatch):
    # CuPy and the kernels allocate on the current GPU; an op on cuda:1 tensors must run with
    # cuda:1 current, whatever device the caller left current.
    from gpugrad import backend
    from gpugrad.autograd.function import Function
    from gpugrad.tensor import Tensor

    current = []

    class Entered:
        def __init__(self, dev):
            self.dev = dev

        def __enter__(self):
            current.append(self.dev)

        def __exit__(self, *exc):
            current.pop()

    monkeypatch.setattr(backend, "device_context", Entered)
    seen = []

    class Probe(Function):
        def forward(self, x):
            seen.append(current[-1] if current else None)
            return x * 2

    gpu1 = backend.device("cuda", 1)
    Probe.apply(Tensor(np.ones(3), gpu1))
    Probe.apply(Tensor(np.ones(3)))
    assert seen == [gpu1, None]  # the CPU path enters no context
