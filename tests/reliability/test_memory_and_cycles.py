"""Memory: a long CPU training loop stays flat, graphs are freed by reference counting as soon as
backward is done (or their output is dropped), and no op leaves a reference cycle behind."""

import gc
import os
import weakref

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import nn, optim
from gpugrad.autograd import Function
from gpugrad.nn import functional as F


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _live(kind) -> int:
    # type() rather than isinstance(): isinstance on a dead weakref.proxy that another library
    # left in gc's lists raises ReferenceError.
    return sum(1 for o in gc.get_objects() if issubclass(type(o), kind))


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_two_thousand_training_steps_keep_memory_flat(one_kernel_thread):
    gg.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 4))
    opt = optim.Adam(model.parameters(), lr=1e-3)
    x, y = gg.randn(8, 16), gg.randint(0, 4, (8,))
    losses = []
    for step in range(2000):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step == 200:
            gc.collect()
            rss_warm = _rss_bytes()
            tensors_warm, nodes_warm = _live(gg.Tensor), _live(Function)
    gc.collect()
    growth = _rss_bytes() / rss_warm - 1.0
    assert growth < 0.05, f"RSS grew {100 * growth:.1f}% between step 200 and step 2000"
    # A stronger check than RSS: not one tensor or graph node more than after warm-up.
    assert _live(gg.Tensor) <= tensors_warm
    assert _live(Function) <= nodes_warm
    assert losses[-1] < losses[0]  # it trained


def _graph(x):
    h = (x * 2.0).exp()
    y = h.tanh() @ h.T
    return h, y.sum()


def test_graph_is_freed_after_backward_even_while_the_loss_is_held():
    x = gg.randn(4, 3, requires_grad=True)
    h = (x * 2.0).exp()
    t, h_t = h.tanh(), h.T
    loss = (t @ h_t).sum()
    node = weakref.ref(h.grad_fn)
    intermediates = [weakref.ref(t), weakref.ref(h_t)]  # the matmul's operands
    del h, t, h_t
    assert all(t() is not None for t in intermediates)  # the graph holds them until backward
    loss.backward()
    assert x.grad is not None
    assert [t() for t in intermediates] == [None, None], "intermediates outlived backward"
    assert node() is None, "a node of the graph outlived backward"
    assert loss.grad_fn is not None  # the held loss keeps only its (released) last node


def test_graph_without_backward_is_freed_when_the_output_is_dropped():
    x = gg.randn(4, 3, requires_grad=True)
    _, loss = _graph(x)
    node = weakref.ref(loss.grad_fn)
    del loss
    assert node() is None  # reference counting alone, no gc pass needed


def test_model_graph_freed_after_training_step(one_kernel_thread):
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 10))
    out = model(gg.randn(4, 1, 8, 8))
    loss = F.cross_entropy(out, gg.randint(0, 10, (4,)))
    nodes = weakref.ref(out.grad_fn), weakref.ref(loss.grad_fn)
    loss.backward()
    del out, loss
    assert all(n() is None for n in nodes)


def _convnet_step(model, opt, x, y):
    loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def test_a_training_step_creates_no_reference_cycles(one_kernel_thread):
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Dropout(0.2), nn.Conv2d(4, 4, 3, padding=1), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(16, 10),
    )
    opt = optim.Adam(model.parameters(), lr=1e-3)
    x, y = gg.randn(4, 1, 8, 8), gg.randint(0, 10, (4,))
    _convnet_step(model, opt, x, y)  # first-call set-up (kernel compilation) may make cycles
    gc.collect()
    gc.disable()
    try:
        _convnet_step(model, opt, x, y)
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0, f"gc found {found} objects in reference cycles after one step"


CYCLE_CASES = {
    "elementwise": lambda x: ((x * 2 + 1).exp().log() / 3 - x.sigmoid()).tanh().sum(),
    "pow_sqrt": lambda x: (x.abs() + 1).sqrt().pow(1.5).sum(),
    "softmax": lambda x: x.softmax(dim=1).sum() + x.log_softmax(dim=1).sum(),
    "reductions": lambda x: x.mean(dim=0).sum() + x.var() + x.amax(dim=1).sum() + x.norm(),
    "shape": lambda x: gg.cat([x, x.T.reshape(4, 3).T], 0).unsqueeze(0).squeeze(0).sum(),
    "indexing": lambda x: x[1:, ::2].sum() + x[gg.tensor([0, 2])].sum(),
    "gather": lambda x: x.gather(1, gg.tensor([[0], [1], [2]])).sum(),
    "matmul": lambda x: (x @ x.T).sum(),
    "where": lambda x: gg.where(x > 0, x, x * 0.1).sum() + gg.maximum(x, x * 0.5).sum(),
    "cross_entropy": lambda x: F.cross_entropy(x, gg.tensor([0, 1, 2])),
    "nll": lambda x: F.nll_loss(x.log_softmax(dim=1), gg.tensor([0, 1, 2])),
    "conv": lambda x: F.conv2d(x.reshape(1, 1, 3, 4), gg.randn(2, 1, 2, 2)).sum(),
    "pool": lambda x: F.max_pool2d(x.reshape(1, 1, 3, 4), 2, stride=1).sum(),
    "batch_norm": lambda x: F.batch_norm(x, gg.zeros(4), gg.ones(4), training=True).sum(),
    "dropout": lambda x: F.dropout(x, 0.5).sum(),
    "pad": lambda x: F.pad(x, (1, 1)).sum(),
    "bce": lambda x: F.binary_cross_entropy_with_logits(x, gg.ones(3, 4)),
    "retain_grad": lambda x: _with_retain_grad(x * 2).sum(),
    "hook": lambda x: _with_hook(x * 2).sum(),
}


def _with_retain_grad(t):
    t.retain_grad()
    return t


def _with_hook(t):
    t.register_hook(lambda g: g * 2)
    return t


@pytest.mark.parametrize("case", sorted(CYCLE_CASES))
def test_ops_make_no_reference_cycles(case):
    build = CYCLE_CASES[case]
    x = gg.randn(3, 4, requires_grad=True)
    build(x).backward()  # warm-up: compile kernels, fill caches
    gc.collect()
    gc.disable()
    try:
        x = gg.randn(3, 4, requires_grad=True)
        loss = build(x)
        loss.backward()
        del loss
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0, f"{case}: gc found {found} objects in reference cycles"
    assert np.isfinite(x.grad.numpy()).all()


def test_retained_graph_is_freed_after_the_last_backward():
    x = gg.randn(3, requires_grad=True)
    gc.collect()
    gc.disable()
    try:
        loss = (x.exp() * x).sum()
        node = weakref.ref(loss.grad_fn)
        loss.backward(retain_graph=True)
        loss.backward()
        del loss
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0 and node() is None
    np.testing.assert_allclose(x.grad.numpy(), 2 * (np.exp(x.numpy()) * (1 + x.numpy())),
                               rtol=1e-5)


def test_an_intermediate_that_backward_does_not_need_is_freed_during_the_forward():
    """ReLU keeps its output and add/subtract/negate nothing (Function.keeps_inputs): the
    batch-norm output before a ReLU and a residual sum go as soon as the user drops them, as in
    PyTorch, and the gradients are the same."""
    rng = np.random.default_rng(0)
    xa, wa = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    x = gg.tensor(xa, requires_grad=True)
    w = gg.tensor(wa, requires_grad=True)
    pre = x * w  # Mul keeps x and w, not its output
    freed = [weakref.ref(pre)]
    h = F.relu(pre)
    del pre
    s = h + x  # a residual sum
    freed.append(weakref.ref(s))
    y = -(F.relu(s) - 1.0)
    del s
    assert [t() for t in freed] == [None, None]
    assert h.grad_fn.inputs == (None,)  # only the shape and dtype stay with the node
    y.sum().backward()
    # d/dx of -(relu(relu(x*w) + x) - 1), by hand
    inner = np.maximum(xa * wa, 0) + xa
    outer = -(inner > 0).astype(float)
    np.testing.assert_allclose(x.grad.numpy(), outer * ((xa * wa > 0) * wa + 1))
    np.testing.assert_allclose(w.grad.numpy(), outer * (xa * wa > 0) * xa)


def test_released_inputs_keep_broadcasting_dtypes_and_double_backward_right():
    """The engine undoes broadcasting and casts the gradient from the shape and dtype the node
    kept for an input it did not keep."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    a64, b32 = rng.standard_normal((3, 1)), rng.standard_normal((1, 4)).astype(np.float32)
    ga, gb = gg.tensor(a64, requires_grad=True), gg.tensor(b32, requires_grad=True)
    ta, tb = torch.tensor(a64, requires_grad=True), torch.tensor(b32, requires_grad=True)
    results = []
    for lib, a, b in ((gg, ga, gb), (torch, ta, tb)):
        p, q = a * 1.5, b * 2.0  # produced inputs, so the nodes below drop them
        y = ((p - q) + (-q)) * (p + q)
        (g_p,) = lib.autograd.grad(y.sum(), p, create_graph=True)
        g_p.sum().backward()
        results.append((g_p, a.grad, b.grad))
    for mine, theirs in zip(*results):
        assert mine.dtype == gg.float64 if theirs.dtype == torch.float64 else gg.float32
        np.testing.assert_allclose(mine.detach().numpy(), theirs.detach().numpy(), rtol=1e-6)


def test_a_hook_on_an_intermediate_runs_after_its_tensor_object_is_gone():
    """The hook list lives on the node too (as PyTorch keeps hooks on grad_fn): a module that
    registers a hook on an intermediate and returns something else still gets it called."""
    x = gg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    calls = []

    def scale(g):
        calls.append(g.numpy().copy())
        return g * 10.0

    def forward(x):
        h = x * 2.0
        h.register_hook(scale)
        return (h + 1.0).sum()

    loss = forward(x)
    gc.collect()
    loss.backward()
    assert len(calls) == 1
    np.testing.assert_allclose(x.grad.numpy(), [20.0, 20.0, 20.0])


def test_a_constant_operand_of_an_op_that_drops_its_inputs_is_freed():
    """A mask or a detached term added to a recorded tensor is not needed by add's backward:
    the node does not keep it (only leaves that require grad stay, for their .grad)."""
    x = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    mask = gg.zeros(3)
    gone = weakref.ref(mask)
    y = (x * 2 + mask).sum()
    del mask
    assert gone() is None
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])
