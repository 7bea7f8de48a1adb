"""erf and expm1 (gpugrad.ops.special) and backend.erf: values and gradients against PyTorch,
gradcheck and gradgradcheck in float64, dtypes, and errors."""

import math

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import backend
from gpugrad.autograd import gradcheck, gradgradcheck
from gpugrad.ops.special import erf, expm1

SHAPES = [(3, 4), (1, 5), (2, 1, 3), ()]


def _values(shape, seed=0):
    # Both tails (erf saturates past |x| ~ 4 in float32, ~6 in float64) and the middle.
    return np.random.default_rng(seed).uniform(-7.0, 7.0, shape)


def test_backend_erf_is_math_erf_in_the_arrays_dtype():
    x = np.array([-np.inf, -30.0, -3.0, -0.5, -1e-300, 0.0, 1e-8, 0.5, 2.0, 30.0, np.inf, np.nan])
    y = backend.erf(x)
    assert y.dtype == np.float64 and y.shape == x.shape
    np.testing.assert_array_equal(y[:-1], [math.erf(v) for v in x[:-1]])
    assert np.isnan(y[-1])
    for dt in (np.float32, np.float16):
        y = backend.erf(x[:-1].astype(dt))
        assert y.dtype == dt
        np.testing.assert_allclose(y, [math.erf(v) for v in x[:-1].astype(dt)],
                                   rtol=1e-6 if dt == np.float32 else 1e-3)


def test_backend_erf_takes_0d_strided_and_empty_arrays():
    zero_d = backend.erf(np.array(0.5))
    assert isinstance(zero_d, np.ndarray) and zero_d.shape == ()
    assert zero_d == math.erf(0.5)
    x = np.arange(24.0).reshape(4, 6)[:, ::-2] / 10 - 1  # not contiguous
    np.testing.assert_array_equal(backend.erf(x), np.vectorize(math.erf)(x))
    assert backend.erf(np.zeros((0, 3), np.float32)).shape == (0, 3)


def test_backend_erf_refuses_integer_arrays():
    with pytest.raises(TypeError, match="erf: expected a floating-point array, got int64"):
        backend.erf(np.arange(3))


@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-6), ("float64", 1e-12)])
@pytest.mark.parametrize("shape", SHAPES)
def test_erf_and_its_gradient_match_torch(shape, dtype, rtol):
    torch = pytest.importorskip("torch")
    x = _values(shape).astype(dtype)
    gx = gg.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    y, ty = erf(gx), torch.erf(tx)
    assert y.dtype == np.dtype(dtype) and y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=rtol, atol=1e-7)
    w = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    y.backward(gg.tensor(w))
    ty.backward(torch.tensor(w))
    np.testing.assert_allclose(gx.grad.numpy(), tx.grad.numpy(), rtol=rtol, atol=1e-30)


@pytest.mark.parametrize("shape", SHAPES)
def test_expm1_and_its_gradient_match_torch(shape):
    torch = pytest.importorskip("torch")
    x = _values(shape, seed=2)
    gx, tx = gg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = expm1(gx), torch.expm1(tx)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-14)
    y.sum().backward()
    ty.sum().backward()
    # PyTorch's gradient is the output + 1, gpugrad's exp(x) (exact also where expm1 is -1).
    np.testing.assert_allclose(gx.grad.numpy(), tx.grad.numpy(), rtol=1e-13)


def test_expm1_keeps_the_digits_that_exp_minus_one_loses():
    x = np.array([-1e-6, 1e-9, 3e-5], np.float32)
    y = expm1(gg.tensor(x)).numpy()
    exact = np.array([math.expm1(v) for v in x.astype(np.float64)])
    np.testing.assert_allclose(y, exact, rtol=1e-6)
    # The naive form is off by far more than that in float32, so the test above means something.
    assert np.max(np.abs((np.exp(x) - 1) / exact - 1)) > 1e-3


@pytest.mark.parametrize("fn", [erf, expm1], ids=["erf", "expm1"])
@pytest.mark.parametrize("shape", [(3, 2), (1, 4), ()])
def test_gradcheck_and_gradgradcheck(fn, shape):
    x = gg.tensor(np.random.default_rng(3).uniform(-2.5, 2.5, shape), requires_grad=True)
    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (x,))


def test_erf_third_derivative_is_exact():
    # erf''' (x) = 2/sqrt(pi) * (4 x^2 - 2) * exp(-x^2): the backward is itself differentiable.
    x = gg.tensor([0.0, 0.7, -1.3], dtype=gg.float64, requires_grad=True)
    (g1,) = gg.autograd.grad(erf(x).sum(), [x], create_graph=True)
    (g2,) = gg.autograd.grad(g1.sum(), [x], create_graph=True)
    (g3,) = gg.autograd.grad(g2.sum(), [x])
    v = x.numpy()
    np.testing.assert_allclose(g3.numpy(), 2 / np.sqrt(np.pi) * (4 * v**2 - 2) * np.exp(-v**2),
                               rtol=1e-12)


def test_extreme_inputs_give_finite_values_and_gradients_in_float32():
    x = gg.tensor([-1e4, -50.0, 50.0, 1e4], dtype=gg.float32, requires_grad=True)
    y = erf(x)
    y.sum().backward()
    np.testing.assert_array_equal(y.numpy(), [-1.0, -1.0, 1.0, 1.0])
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0, 0.0])


def test_integer_and_bool_inputs_become_the_default_float_as_torch():
    torch = pytest.importorskip("torch")
    for values in ([-2, 0, 3], [True, False]):
        y = erf(gg.tensor(values))
        ty = torch.erf(torch.tensor(values))
        assert y.dtype == gg.float32
        np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=1e-6)


@pytest.mark.parametrize("fn, name", [(erf, "erf"), (expm1, "expm1")])
def test_a_non_tensor_input_names_the_op(fn, name):
    with pytest.raises(TypeError, match=f"{name}: expected a Tensor, got list"):
        fn([0.5])


@pytest.mark.gpu
def test_erf_on_cuda_matches_the_cpu():
    x = np.random.default_rng(4).uniform(-5, 5, (64, 33))
    for dtype in (np.float32, np.float64):
        cpu = gg.tensor(x.astype(dtype), requires_grad=True)
        cuda = gg.tensor(x.astype(dtype), device="cuda", requires_grad=True)
        y_cpu, y_cuda = erf(cpu), erf(cuda)
        assert y_cuda.device.type == "cuda" and y_cuda.dtype == dtype
        np.testing.assert_allclose(y_cuda.numpy(), y_cpu.numpy(), rtol=1e-6, atol=1e-7)
        y_cpu.sum().backward()
        y_cuda.sum().backward()
        np.testing.assert_allclose(cuda.grad.numpy(), cpu.grad.numpy(), rtol=1e-6, atol=1e-7)
