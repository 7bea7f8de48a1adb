"""ReLU forward/backward: CPU twin against the reference, PyTorch, kinks."""

import numpy as np
import pytest

from gpugrad.kernels import relu_backward, relu_backward_reference, relu_forward, relu_reference

# Odd sizes: the parallel loop's chunks never split evenly.
SHAPES = [(7,), (3, 5, 11), (32781,), (2, 3, 97, 61)]


def with_kinks(x):
    """Plant exact zeros, signed zeros, NaN and infinities among the values."""
    flat = x.reshape(-1)
    flat[:6] = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-30]
    return x


@pytest.fixture
def rng():
    return np.random.default_rng(3)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_matches_reference(rng, twin_threads, shape, dtype):
    x = with_kinks(rng.standard_normal(shape).astype(dtype))
    gy = rng.standard_normal(shape).astype(dtype)
    y = relu_forward(x)
    assert y.shape == shape and y.dtype == dtype
    np.testing.assert_array_equal(y, relu_reference(x))
    gx = relu_backward(y, gy)
    assert gx.shape == shape and gx.dtype == dtype
    np.testing.assert_array_equal(gx, relu_backward_reference(y, gy))


@pytest.mark.parametrize("size", [5, 40001])
def test_relu_kinks_follow_pytorch(twin_threads, size):
    x = np.zeros(size, np.float32)
    x[:4] = [0.0, -0.0, np.nan, 2.0]
    y = relu_forward(x)
    assert y[0] == 0 and y[1] == 0 and not np.signbit(y[1]) and np.isnan(y[2]) and y[3] == 2
    gx = relu_backward(y, np.ones(size, np.float32))
    # relu'(0) = 0; a NaN output passes its gradient (PyTorch's threshold_backward).
    np.testing.assert_array_equal(gx[:4], [0.0, 0.0, 1.0, 1.0])


def test_relu_accepts_non_contiguous_input(rng):
    x = rng.standard_normal((300, 400)).astype(np.float32).T
    np.testing.assert_array_equal(relu_forward(x), relu_reference(x))


def test_relu_backward_rejects_mismatch(rng):
    y = rng.standard_normal((4, 5)).astype(np.float32)
    with pytest.raises(ValueError, match=r"relu_backward: gy must have shape \(4, 5\)"):
        relu_backward(y, y[:, :4].copy())
    with pytest.raises(TypeError, match="relu_backward: gy must be float32 like the input"):
        relu_backward(y, y.astype(np.float64))
    with pytest.raises(TypeError, match="relu: x must be float32 or float64, got int32"):
        relu_forward(np.ones(3, np.int32))


@pytest.mark.parametrize("size", [9, 40009])
def test_relu_matches_torch(rng, size):
    torch = pytest.importorskip("torch")
    x = with_kinks(rng.standard_normal(size))
    gy = rng.standard_normal(size)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.relu(xt)
    yt.backward(torch.from_numpy(gy))
    y = relu_forward(x)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(relu_backward(y, gy), xt.grad.numpy())
