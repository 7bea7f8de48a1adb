"""max_pool2d / avg_pool2d / adaptive_avg_pool2d: gradcheck, gradgradcheck, PyTorch, errors."""

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.autograd import gradcheck, gradgradcheck
from gpugrad.ops.pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d

# (input shape, kernel_size, stride, padding, dilation, ceil_mode)
MAX_CASES = [
    ((2, 2, 6, 6), 2, None, 0, 1, False),
    ((1, 2, 7, 5), 3, 2, 1, 1, False),
    ((2, 1, 7, 8), (2, 3), (1, 2), (1, 1), (2, 1), False),
    ((1, 2, 8, 8), 3, 2, 1, 1, True),  # ceil_mode adds a window past the padding
    ((2, 5, 5), 2, 1, 0, 1, False),  # unbatched
]
# (input shape, kernel_size, stride, padding, options)
AVG_CASES = [
    ((2, 2, 6, 6), 2, None, 0, {}),
    ((1, 2, 7, 5), 3, 2, 1, {}),
    ((1, 2, 7, 5), 3, 2, 1, dict(count_include_pad=False)),
    ((2, 1, 6, 7), (2, 3), (1, 2), (1, 1), dict(count_include_pad=False)),
    # ceil_mode with a last window hanging past the padding (one extra output each)
    ((1, 2, 8, 8), 3, 2, 1, dict(ceil_mode=True)),
    ((1, 2, 6, 6), 3, 2, 1, dict(ceil_mode=True, count_include_pad=False)),
    ((1, 2, 8, 7), (3, 2), (2, 3), 0, dict(ceil_mode=True)),
    ((1, 2, 6, 6), 3, 2, 1, dict(divisor_override=5)),
    ((2, 5, 5), 2, 1, 0, {}),
]


def distinct_values(shape, seed):
    """Values at least 0.1 apart: no tie within a window flips under gradcheck's eps."""
    rng = np.random.default_rng(seed)
    return rng.permutation(int(np.prod(shape))).reshape(shape) / 10.0 - 1.0


@pytest.mark.parametrize("shape, k, s, p, d, ceil", MAX_CASES)
def test_max_pool2d_gradcheck_and_gradgradcheck(shape, k, s, p, d, ceil):
    x = gg.tensor(distinct_values(shape, 0), requires_grad=True)

    def fn(a):
        return max_pool2d(a, k, s, p, d, ceil_mode=ceil)

    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (x,))


@pytest.mark.parametrize("shape, k, s, p, options", AVG_CASES)
def test_avg_pool2d_gradcheck_and_gradgradcheck(shape, k, s, p, options):
    x = gg.tensor(distinct_values(shape, 1), requires_grad=True)

    def fn(a):
        return avg_pool2d(a, k, s, p, **options)

    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (x,))


@pytest.mark.parametrize("out_size", [1, (3, 2), (2, 4)])
def test_adaptive_avg_pool2d_gradcheck(out_size):
    x = gg.tensor(distinct_values((2, 2, 6, 7), 2), requires_grad=True)
    assert gradcheck(lambda a: adaptive_avg_pool2d(a, out_size), (x,))


@pytest.mark.parametrize("shape, k, s, p, d, ceil", MAX_CASES)
def test_max_pool2d_matches_torch_to_second_order(shape, k, s, p, d, ceil):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(3)
    x_np = distinct_values(shape, 3)
    x = gg.tensor(x_np, requires_grad=True)
    xt = torch.tensor(x_np, requires_grad=True)
    y, idx = max_pool2d(x, k, s, p, d, ceil_mode=ceil, return_indices=True)
    yt, it = F.max_pool2d(xt, k, s, p, d, ceil_mode=ceil, return_indices=True)
    np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
    np.testing.assert_array_equal(idx.numpy(), it.numpy())
    assert idx.dtype == gg.int64 and not idx.requires_grad
    w = rng.standard_normal(tuple(yt.shape))
    (gx,) = gg.autograd.grad(y, [x], gg.tensor(w), create_graph=True)
    (gxt,) = torch.autograd.grad(yt, [xt], torch.tensor(w), create_graph=True)
    np.testing.assert_allclose(gx.numpy(), gxt.detach().numpy(), rtol=1e-13)
    # Second order through gy: d<gx, v>/dw is a gather of v at the argmax.
    v = rng.standard_normal(shape)
    wg = gg.tensor(w, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    (gx,) = gg.autograd.grad(max_pool2d(x, k, s, p, d, ceil_mode=ceil), [x], wg, create_graph=True)
    (gxt,) = torch.autograd.grad(F.max_pool2d(xt, k, s, p, d, ceil_mode=ceil), [xt], wt,
                                 create_graph=True)
    (ggw,) = gg.autograd.grad((gx * gg.tensor(v)).sum(), [wg])
    (ggwt,) = torch.autograd.grad((gxt * torch.tensor(v)).sum(), [wt])
    np.testing.assert_allclose(ggw.numpy(), ggwt.numpy(), rtol=1e-13)


@pytest.mark.parametrize("shape, k, s, p, options", AVG_CASES)
def test_avg_pool2d_matches_torch(shape, k, s, p, options):
    torch = pytest.importorskip("torch")
    x_np = distinct_values(shape, 4)
    x = gg.tensor(x_np, requires_grad=True)
    xt = torch.tensor(x_np, requires_grad=True)
    y = avg_pool2d(x, k, s, p, **options)
    yt = torch.nn.functional.avg_pool2d(xt, k, s, p, **options)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-13)
    w = np.random.default_rng(5).standard_normal(tuple(yt.shape))
    y.backward(gg.tensor(w))
    yt.backward(torch.tensor(w))
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-13)


def test_max_pool2d_float32_and_the_returned_indices_survive_backward():
    x = gg.tensor(distinct_values((2, 3, 8, 8), 6).astype(np.float32), requires_grad=True)
    y, idx = max_pool2d(x, 2, return_indices=True)
    assert y.dtype == gg.float32 and y.shape == (2, 3, 4, 4)
    y.sum().backward()
    # Each 2x2 window sends a 1 to its max: four windows per plane row, and only those.
    grad = x.grad.numpy().reshape(6, 64)
    np.testing.assert_array_equal(grad.sum(axis=1), 16)
    np.testing.assert_array_equal(np.take_along_axis(grad, idx.numpy().reshape(6, 16), 1), 1)


def test_pool_rejects_bad_arguments():
    x = gg.tensor(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="max_pool2d: padding should be at most half"):
        max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 3-D or 4-D input .* \(4, 4\)"):
        max_pool2d(gg.tensor(np.zeros((4, 4))), 2)
    with pytest.raises(TypeError, match="max_pool2d: input must be a Tensor"):
        max_pool2d(np.zeros((1, 1, 4, 4)), 2)
    with pytest.raises(ValueError, match="max_pool2d: kernel_size must be >= 1"):
        max_pool2d(x, 0)
    with pytest.raises(ValueError, match="larger than the padded input"):
        max_pool2d(x, 5)
    with pytest.raises(ValueError, match="avg_pool2d: divisor_override must be a nonzero int"):
        avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(ValueError, match="avg_pool2d: padding should be at most half"):
        avg_pool2d(x, 3, padding=2)


def test_max_pool2d_with_huge_padding_inside_the_limit():
    # Every window spans the whole column (the kernel's walk out of the padding took 2**30
    # steps per window before); gradients go to each column's max, once per window.
    p = 2**30 - 1
    x_np = distinct_values((1, 2, 4, 3), 7)
    x = gg.tensor(x_np, requires_grad=True)
    y = max_pool2d(x, (2 * p + 1, 1), 1, (p, 0))
    column_max = x_np.max(axis=2, keepdims=True)
    np.testing.assert_array_equal(y.numpy(), np.broadcast_to(column_max, (1, 2, 4, 3)))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), (x_np == column_max) * 4.0)


@pytest.mark.parametrize("kernel, stride, padding, name, value", [
    # the review's hang (k = 2**41 + 1, p = 2**40); PyTorch refuses it too
    ((2**41 + 1, 1), 1, (2**40, 0), "kernel_size", 2**41 + 1),
    (2, (1, 2**31), 0, "stride", 2**31),
    (2, 2**63, 0, "stride", 2**63),
    (2, 1, 1, None, None),
])
def test_max_pool2d_refuses_geometry_past_int32(kernel, stride, padding, name, value):
    x = gg.tensor(np.zeros((1, 1, 4, 4)))
    if name is None:  # the control: a fine geometry runs
        assert max_pool2d(x, kernel, stride, padding).shape == (1, 1, 5, 5)
        return
    with pytest.raises(ValueError, match=rf"max_pool2d: {name} .*\b{value}\b"):
        max_pool2d(x, kernel, stride, padding)


def test_max_pool2d_backward_does_not_recheck_its_own_argmax(monkeypatch):
    # The dispatcher checks argmax by default (a device-to-host read on CUDA); autograd's
    # argmax comes from its own forward, so its backward turns the check off, to any order.
    from gpugrad.kernels import pool as pool_kernels

    def fail(*args):
        raise AssertionError("autograd's backward checked its argmax")

    monkeypatch.setattr(pool_kernels, "_check_argmax", fail)
    rng = np.random.default_rng(9)
    x = gg.tensor(distinct_values((2, 2, 6, 6), 8), requires_grad=True)
    y = max_pool2d(x, 3, 2, 1)
    gy = gg.tensor(rng.standard_normal(y.shape), requires_grad=True)
    v = gg.tensor(rng.standard_normal(x.shape), requires_grad=True)
    (gx,) = gg.autograd.grad(y, [x], gy, create_graph=True)  # MaxPool2dBackward
    (ggy,) = gg.autograd.grad((gx * v).sum(), [gy], create_graph=True)  # GatherAtArgmax
    (ggy * ggy).sum().backward()  # MaxPool2dBackward again, into v
    assert v.grad is not None and gy.grad is None
    with pytest.raises(AssertionError, match="checked its argmax"):
        y, idx = max_pool2d(x, 3, 2, 1, return_indices=True)
        pool_kernels.max_pool2d_backward(y.data, idx.data, 6, 6, 3, 2, 1, 1)
