"""Run only under NUMBA_ENABLE_CUDASIM=1 (test_simulated_cuda_training.py starts it): the whole
CUDA path — tensors on "cuda", dispatch to the Numba CUDA kernels, autograd, an optimizer step —
against the same model on the CPU."""

import os

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F

pytestmark = pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") != "1",
                                reason="needs NUMBA_ENABLE_CUDASIM=1 (run by a wrapper test)")


def _model():
    gg.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * 4 * 4, 3),
    )


def test_cuda_device_is_simulated():
    assert gg.cuda.is_available() and gg.cuda.is_simulated()
    assert gg.zeros(2, device="cuda").device == "cuda:0"


def test_training_step_on_simulated_cuda_matches_cpu():
    rng = np.random.default_rng(0)
    images = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
    labels = np.array([0, 2])
    cpu, gpu = _model(), _model().to("cuda")
    for p in gpu.parameters():
        assert p.device == "cuda:0"
    results = []
    for model, device in ((cpu, "cpu"), (gpu, "cuda")):
        opt = gg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        x = gg.tensor(images, device=device)
        y = gg.tensor(labels, device=device)
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        grads = [p.grad.numpy().copy() for p in model.parameters()]
        opt.step()
        assert loss.device == device
        results.append((loss.item(), grads, [p.numpy().copy() for p in model.parameters()]))
    (l_cpu, g_cpu, w_cpu), (l_gpu, g_gpu, w_gpu) = results
    np.testing.assert_allclose(l_gpu, l_cpu, rtol=1e-5)
    for a, b in zip(g_gpu, g_cpu):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for a, b in zip(w_gpu, w_cpu):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_conv2d_on_cuda_builds_its_columns_again_for_the_weight_gradient():
    """On CUDA the im2col forward does not keep its columns (memory: conv_gemm.KEEP_COLUMNS);
    the backward builds them again and gives the CPU's gradients."""
    rng = np.random.default_rng(5)
    xa, wa = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((2, 3, 3, 3))
    gya = rng.standard_normal((2, 2, 3, 2))
    grads = []
    for device in ("cpu", "cuda"):
        with gg.kernels.conv_algorithm_mode("im2col"):
            x = gg.tensor(xa, device=device, requires_grad=True)
            w = gg.tensor(wa, device=device, requires_grad=True)
            y = F.conv2d(x, w, stride=(1, 2))
            assert (y.grad_fn.saved is None) == (device == "cuda")
            y.backward(gg.tensor(gya, device=device))
        grads.append((x.grad.numpy(), w.grad.numpy()))
    for on_cuda, on_cpu in zip(grads[1], grads[0]):
        np.testing.assert_allclose(on_cuda, on_cpu, rtol=1e-12, atol=1e-12)


def test_conv_transpose2d_on_cuda_matches_the_cpu():
    """conv_transpose2d is ConvInputGrad: col2im's CUDA kernel forward, im2col's backward."""
    rng = np.random.default_rng(6)
    xa, wa, ba = rng.standard_normal((2, 3, 3, 4)), rng.standard_normal((3, 2, 3, 3)), \
        rng.standard_normal(2)
    gya = rng.standard_normal((2, 2, 6, 8))
    results = []
    for device in ("cpu", "cuda"):
        x, w, b = (gg.tensor(a, device=device, requires_grad=True) for a in (xa, wa, ba))
        y = F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)
        y.backward(gg.tensor(gya, device=device))
        results.append([t.numpy() for t in (y.detach(), x.grad, w.grad, b.grad)])
    for on_cuda, on_cpu in zip(results[1], results[0]):
        np.testing.assert_allclose(on_cuda, on_cpu, rtol=1e-12, atol=1e-12)


def test_bad_label_on_cuda_raises_before_the_kernel():
    logits = gg.zeros(2, 3, device="cuda", requires_grad=True)
    with pytest.raises(ValueError, match="7"):
        F.cross_entropy(logits, gg.tensor([0, 7], device="cuda"))


def test_mixing_cpu_and_cuda_raises_naming_both():
    with pytest.raises(RuntimeError, match="cpu.*cuda:0|cuda:0.*cpu"):
        gg.ones(2) + gg.ones(2, device="cuda")
