"""The hot-path ops end to end on a real GPU (CuPy arrays, Numba CUDA kernels, cuBLAS), against
the same ops on the CPU: forward, gradients, grad-of-grad, and a few training steps.

Skipped without a GPU (the `gpu` marker). The kernels alone are checked against their NumPy
references in tests/kernels/test_gpu_kernels.py; this file checks the ops that use them: the
layouts, reshapes and transposes around the kernels, and the tape.
"""

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn.functional as F

pytestmark = pytest.mark.gpu

# (x shape, w shape, stride, padding, dilation, groups, with bias)
CONV_CASES = [
    ((4, 3, 13, 11), (8, 3, 3, 3), 1, 1, 1, 1, True),
    ((2, 4, 9, 10), (6, 2, 3, 2), (2, 1), (1, 2), (2, 1), 2, False),
    ((1, 6, 7, 7), (6, 1, 3, 3), 1, "same", 1, 6, True),
    ((3, 2, 5, 8), (4, 2, 1, 1), 2, 0, 1, 1, True),
    ((64, 32, 14, 14), (64, 32, 3, 3), 1, 1, 1, 1, True),  # the benchmark's shape
]


def _on(device, *arrays, requires_grad=True):
    return [None if a is None else gg.tensor(a, device=device, requires_grad=requires_grad)
            for a in arrays]


def _assert_close(cuda_value, cpu_value, rtol=1e-9, atol=1e-9):
    np.testing.assert_allclose(cuda_value.numpy(), cpu_value.numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups, with_bias", CONV_CASES)
def test_conv2d_forward_gradients_and_double_backward_match_the_cpu(
        xs, ws, stride, padding, dilation, groups, with_bias):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    b = rng.standard_normal(ws[0]) if with_bias else None
    results = {}
    for device in ("cpu", "cuda"):
        tx, tw, tb = _on(device, x, w, b)
        y = F.conv2d(tx, tw, tb, stride=stride, padding=padding, dilation=dilation,
                     groups=groups)
        gy = gg.tensor(np.random.default_rng(1).standard_normal(y.shape), device=device)
        inputs = [t for t in (tx, tw, tb) if t is not None]
        grads = gg.autograd.grad(y, inputs, gy, create_graph=True)
        # Second order: d/dw of |gx|^2 goes through ConvInputGrad's backward.
        (ggw,) = gg.autograd.grad((grads[0] ** 2).sum(), [tw])
        results[device] = (y, *grads, ggw)
    assert results["cuda"][0].device.type == "cuda"
    for cuda_value, cpu_value in zip(results["cuda"], results["cpu"]):
        assert cuda_value.shape == cpu_value.shape
        _assert_close(cuda_value, cpu_value)


def test_conv_transpose2d_and_its_double_backward_match_the_cpu():
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((4, 6, 7, 5)), rng.standard_normal((6, 2, 3, 3)), \
        rng.standard_normal(4)
    results = {}
    for device in ("cpu", "cuda"):
        tx, tw, tb = _on(device, x, w, b)
        y = F.conv_transpose2d(tx, tw, tb, stride=2, padding=1, output_padding=1, groups=2)
        gy = gg.tensor(np.random.default_rng(5).standard_normal(y.shape), device=device)
        grads = gg.autograd.grad(y, [tx, tw, tb], gy, create_graph=True)
        (ggw,) = gg.autograd.grad((grads[0] ** 2).sum(), [tw])
        results[device] = (y, *grads, ggw)
    for cuda_value, cpu_value in zip(results["cuda"], results["cpu"]):
        assert cuda_value.shape == cpu_value.shape
        _assert_close(cuda_value, cpu_value)


@pytest.mark.parametrize("kernel, stride, padding, ceil_mode", [
    (2, None, 0, False), (3, 2, 1, True), ((2, 3), (1, 2), (1, 0), False)])
def test_pooling_matches_the_cpu(kernel, stride, padding, ceil_mode):
    x = np.random.default_rng(2).standard_normal((3, 4, 11, 9))
    for pool in (F.max_pool2d, F.avg_pool2d):
        results = {}
        for device in ("cpu", "cuda"):
            (tx,) = _on(device, x)
            y = pool(tx, kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
            gy = gg.tensor(np.random.default_rng(3).standard_normal(y.shape), device=device)
            results[device] = (y, *gg.autograd.grad(y, [tx], gy))
        for cuda_value, cpu_value in zip(results["cuda"], results["cpu"]):
            _assert_close(cuda_value, cpu_value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_matches_the_cpu(dtype):
    x = np.random.default_rng(4).standard_normal((1000, 37)).astype(dtype)
    x[::7] = 0.0
    results = {}
    for device in ("cpu", "cuda"):
        (tx,) = _on(device, x)
        y = tx.relu()
        results[device] = (y, *gg.autograd.grad(y.sum(), [tx]))
    for cuda_value, cpu_value in zip(results["cuda"], results["cpu"]):
        np.testing.assert_array_equal(cuda_value.numpy(), cpu_value.numpy())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_the_cpu(reduction):
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((257, 13)) * 30
    target = rng.integers(0, 13, 257)
    target[::5] = -100
    weight = rng.random(13) + 0.5
    results = {}
    for device in ("cpu", "cuda"):
        (tl,) = _on(device, logits)
        loss = F.cross_entropy(tl, gg.tensor(target, device=device),
                               weight=gg.tensor(weight, device=device), ignore_index=-100,
                               label_smoothing=0.1, reduction=reduction)
        results[device] = (loss, *gg.autograd.grad(loss.sum(), [tl]))
    for cuda_value, cpu_value in zip(results["cuda"], results["cpu"]):
        _assert_close(cuda_value, cpu_value)


def test_cross_entropy_rejects_a_bad_label_on_the_gpu():
    logits = gg.zeros(4, 3, device="cuda")
    with pytest.raises((ValueError, IndexError), match="3"):
        F.cross_entropy(logits, gg.tensor([0, 1, 3, 2], device="cuda"))


def test_lenet_training_steps_match_the_cpu():
    from gpugrad.models import LeNet

    rng = np.random.default_rng(6)
    images = rng.standard_normal((32, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, 32)
    losses = {}
    for device in ("cpu", "cuda"):
        gg.manual_seed(0)
        model = LeNet().to(device)
        opt = gg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        x, y = gg.tensor(images, device=device), gg.tensor(labels, device=device)
        losses[device] = []
        for _ in range(5):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses[device].append(loss.item())
    # float32 on two devices: the same steps, not the same rounding.
    np.testing.assert_allclose(losses["cuda"], losses["cpu"], rtol=2e-4, atol=2e-5)


INTEGER_OPS = [
    lambda a, b: a & b, lambda a, b: a | b, lambda a, b: a ^ b, lambda a, b: ~a,
    lambda a, b: a // b, lambda a, b: a % b, lambda a, b: gg.div(a, b, rounding_mode="trunc"),
    lambda a, b: a / b, lambda a, b: a ** gg.tensor([2, -1, 0, 3], device=a.device),
    lambda a, b: a.sum(), lambda a, b: a + 300,
]


@pytest.mark.parametrize("op", INTEGER_OPS)
def test_integer_ops_match_the_cpu(op):
    a, b = np.array([7, -7, 1, 12], np.int32), np.array([2, 3, -4, 5], np.int32)
    cpu, cuda = op(*_on("cpu", a, b, requires_grad=False)), op(*_on("cuda", a, b,
                                                                     requires_grad=False))
    assert cuda.device.type == "cuda" and cuda.dtype == cpu.dtype
    np.testing.assert_array_equal(cuda.numpy(), cpu.numpy())


@pytest.mark.parametrize("p", [2, 1, 3, 0.5, float("inf"), 0])
def test_norm_and_remainder_gradients_match_the_cpu(p):
    x = np.random.default_rng(2).standard_normal((3, 4))
    x[1] = 0.0  # a zero row: a zero gradient, not NaN
    results = {}
    for device in ("cpu", "cuda"):
        (t,) = _on(device, x)
        y = t.norm(p=p, dim=1).sum() + (t % 0.7).sum()
        results[device] = (y, *gg.autograd.grad(y, [t]))
    for cuda_value, cpu_value in zip(results["cuda"], results["cpu"]):
        _assert_close(cuda_value, cpu_value)
