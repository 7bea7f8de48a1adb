"""Edge cases of the reductions, softmax, batch_norm and adaptive_avg_pool2d, as PyTorch has them.

norm's orders inf, -inf and 0 and its subgradient at a zero vector; reductions of empty tensors
over non-empty dims (and a clear error, naming the op called, over empty ones); integer and bool
inputs; the op named in every error.
"""

import re

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.autograd import gradcheck, gradgradcheck
from gpugrad.nn import functional as F

INF = float("inf")

# A zero row in the middle: its gradient must be 0 (PyTorch's subgradient), the others exact.
ROWS = np.array([[3.0, -4.0, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0], [1.0, -1.0, 1.0, 0.0]])


def _torch():
    return pytest.importorskip("torch")


def _escaped(shape):
    return re.escape(str(tuple(shape)))


def _grad_of(x, fn, w):
    """The gradient of <fn(x), w> for a gpugrad or torch tensor x (zeros where it is None)."""
    y = fn(x)
    (y * (gg.tensor(w) if isinstance(x, gg.Tensor) else _torch().tensor(w))).sum().backward()
    if x.grad is None:
        return np.zeros(x.shape)
    return x.grad.numpy() if isinstance(x, gg.Tensor) else x.grad.detach().numpy()


# ----------------------------------------------------------------------------- norm values


@pytest.mark.parametrize("p", [INF, -INF, 0, 2, 1, 3, 0.5, -1, "fro"])
@pytest.mark.parametrize("dim, keepdim", [(None, False), (1, False), (1, True), ((0, 1), True),
                                          (0, False)])
def test_norm_orders_match_torch(p, dim, keepdim):
    torch = _torch()
    if p == "fro" and dim is not None and not isinstance(dim, tuple):
        pytest.skip("torch's 'fro' wants two dims or none")
    y = gg.tensor(ROWS).norm(p=p, dim=dim, keepdim=keepdim)
    ty = torch.tensor(ROWS).norm(p=p, dim=dim, keepdim=keepdim)
    assert y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=1e-12)


def test_norm_inf_is_the_largest_magnitude():
    x = gg.tensor([3.0, -4.0, 0.5])
    assert x.norm(p=INF).item() == 4.0
    assert x.norm(p=-INF).item() == 0.5
    assert x.norm(p=0).item() == 3.0


@pytest.mark.parametrize("p", ["nuc", "abc", None])
def test_norm_rejects_an_unsupported_order(p):
    with pytest.raises(ValueError, match=r"^norm: expected p to be a number or 'fro', got"):
        gg.randn(3, 4).norm(p=p)


def test_norm_of_an_empty_tensor_over_a_non_empty_dim_is_empty():
    torch = _torch()
    for p in (INF, -INF, 2, 0):
        y = gg.zeros(0, 3).norm(p=p, dim=1)
        assert y.shape == tuple(torch.zeros(0, 3).norm(p=p, dim=1).shape) == (0,)


@pytest.mark.parametrize("p", [INF, -INF, -1])
def test_norm_without_an_identity_rejects_an_empty_dim(p):
    with pytest.raises(RuntimeError, match=r"^norm: .*empty.*\(0, 3\)"):
        gg.zeros(0, 3).norm(p=p, dim=0)


def test_norm_of_an_integer_tensor_names_norm():
    with pytest.raises(RuntimeError, match=r"^norm: expected a floating-point input, got int64"):
        gg.tensor([1, 2]).norm()


# ----------------------------------------------------------------------------- norm gradients


@pytest.mark.parametrize("p", [2, "fro", 1, 3, 0.5, 1.5, -1, INF, -INF, 0])
def test_norm_gradient_with_a_zero_row_matches_torch(p):
    torch = _torch()
    w = np.array([0.7, -1.3, 2.0])
    x = gg.tensor(ROWS, requires_grad=True)
    tx = torch.tensor(ROWS, requires_grad=True)
    norm = (lambda t: t.norm(p=p, dim=(1,))) if p == "fro" else (lambda t: t.norm(p=p, dim=1))
    g = _grad_of(x, norm, w)
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, _grad_of(tx, norm, w), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(g[1], 0.0)


@pytest.mark.parametrize("p", [2, 1, 3, 0.5, INF, -INF, 0])
def test_norm_gradient_at_a_zero_vector_is_zero(p):
    a = gg.zeros(3, requires_grad=True)
    a.norm(p=p).backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.zeros(3, np.float32))


@pytest.mark.parametrize("p", [2, 1, 3, 1.5, 0.5, -1, INF, -INF])
@pytest.mark.parametrize("dim", [None, 1, (0, 2)])
def test_norm_gradcheck(p, dim):
    # Away from 0 and without ties, where the norm is smooth.
    rng = np.random.default_rng(0)
    data = rng.permutation(np.arange(1, 25)) * rng.choice([-0.1, 0.1], 24)
    x = gg.tensor(data.reshape(2, 3, 4), requires_grad=True)
    assert gradcheck(lambda t: t.norm(p=p, dim=dim), [x])


@pytest.mark.parametrize("p", [2, 1, 3, 1.5, INF])
def test_norm_gradgradcheck(p):
    rng = np.random.default_rng(1)
    data = rng.permutation(np.arange(1, 13)) * rng.choice([-0.1, 0.1], 12)
    x = gg.tensor(data.reshape(3, 4), requires_grad=True)
    assert gradgradcheck(lambda t: t.norm(p=p, dim=1), [x])


def test_norm_second_derivative_matches_torch():
    torch = _torch()
    x = gg.tensor(ROWS[[0, 2]], requires_grad=True)
    tx = torch.tensor(ROWS[[0, 2]], requires_grad=True)
    (g,) = gg.autograd.grad(x.norm(dim=1).sum(), [x], create_graph=True)
    (g * g).sum().backward()
    (tg,) = torch.autograd.grad(tx.norm(dim=1).sum(), [tx], create_graph=True)
    (tg * tg).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------- empty tensors


@pytest.mark.parametrize("op", ["amax", "amin", "argmax", "argmin", "logsumexp"])
def test_empty_tensor_over_a_non_empty_dim_matches_torch(op):
    torch = _torch()
    y = getattr(gg.zeros(0, 3), op)(dim=1)
    ty = getattr(torch.zeros(0, 3), op)(dim=1)
    assert y.shape == tuple(ty.shape) == (0,)
    assert y.dtype == (np.int64 if op.startswith("arg") else np.float32)


def test_amax_of_an_empty_tensor_has_an_empty_gradient():
    x = gg.zeros(0, 3, requires_grad=True)
    x.amax(dim=1).sum().backward()
    assert x.grad.shape == (0, 3)


def test_logsumexp_over_an_empty_dim_is_minus_inf():
    torch = _torch()
    y = gg.zeros(0, 3).logsumexp(dim=0)
    np.testing.assert_array_equal(y.numpy(), torch.zeros(0, 3).logsumexp(dim=0).numpy())
    assert y.shape == (3,) and np.isneginf(y.numpy()).all()
    assert gg.zeros(0, 3).logsumexp(dim=(0, 1), keepdim=True).shape == (1, 1)


@pytest.mark.parametrize("op", ["amax", "amin", "argmax", "argmin", "max", "min"])
def test_reducing_an_empty_dim_names_the_op(op):
    with pytest.raises(IndexError, match=rf"^{op}: expected a non-empty dimension to reduce, "
                                         rf"got dimension 0 of size 0 in shape \(0, 3\)"):
        getattr(gg.zeros(0, 3), op)(dim=0)


@pytest.mark.parametrize("op", ["amax", "amin", "argmax", "argmin", "max", "min"])
def test_reducing_all_of_an_empty_tensor_names_the_op(op):
    with pytest.raises(RuntimeError, match=rf"^{op}: expected a non-empty tensor.*\(0, 3\)"):
        getattr(gg.zeros(0, 3), op)()


# ----------------------------------------------------------------------------- op names, dtypes


@pytest.mark.parametrize("op", ["var", "std"])
def test_var_and_std_of_an_integer_tensor_name_themselves(op):
    with pytest.raises(RuntimeError, match=rf"^{op}: expected a floating-point input, got int64"):
        getattr(gg.tensor([1, 2]), op)()


@pytest.mark.parametrize("op, call", [
    ("logsumexp", lambda x: x.logsumexp(dim=5)),
    ("norm", lambda x: x.norm(dim=3)),
    ("std", lambda x: x.std(dim=4)),
    ("var", lambda x: x.var(dim=(0, 7))),
])
def test_a_bad_dim_names_the_op_called(op, call):
    with pytest.raises(IndexError, match=rf"^{op}: dimension out of range"):
        call(gg.randn(2, 3))


@pytest.mark.parametrize("data", [[True, False, True], [1, 2, 3]])
def test_logsumexp_promotes_bool_and_integer_input(data):
    torch = _torch()
    y = gg.tensor(data).logsumexp(dim=0)
    ty = torch.tensor(data).logsumexp(dim=0)
    assert y.dtype == np.float32 and ty.dtype == torch.float32
    np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=1e-6)


# ----------------------------------------------------------------------------- softmax, layers


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
@pytest.mark.parametrize("shape, dim", [((2, 0), 1), ((0, 3), 0), ((2, 0, 3), -1)])
def test_softmax_of_an_empty_tensor_is_empty(fn, shape, dim):
    x = gg.zeros(*shape, requires_grad=True)
    y = fn(x, dim=dim)
    assert y.shape == shape
    y.sum().backward()
    assert x.grad.shape == shape


def test_batch_norm_rejects_a_negative_eps():
    x, rm, rv = gg.randn(4, 3), gg.zeros(3), gg.ones(3)
    with pytest.raises(ValueError, match=r"^batch_norm: expected a non-negative eps \(positive "
                                         r"when training\), got -1e-05"):
        F.batch_norm(x, rm, rv, eps=-1e-5)
    with pytest.raises(ValueError, match=r"^batch_norm: .*eps"):
        F.batch_norm(x, rm, rv, training=True, eps=-1.0)
    assert F.batch_norm(x, rm, rv, eps=0.0).shape == (4, 3)  # eval: PyTorch allows 0 too
    # Training with eps 0 divides by zero on a constant channel (PyTorch raises as well).
    with pytest.raises(ValueError, match=r"^batch_norm: .*positive when training.*got 0.0"):
        F.batch_norm(gg.ones(4, 3), rm, rv, training=True, eps=0.0)


@pytest.mark.parametrize("shape", [(2, 3, 0, 7), (1, 1, 0, 4), (1, 1, 5, 0), (3, 4, 0)])
def test_adaptive_avg_pool2d_rejects_an_empty_spatial_dim(shape):
    with pytest.raises(ValueError, match=r"^adaptive_avg_pool2d: expected input to have non-zero "
                                         rf"size for non-batch dimensions, got shape "
                                         rf"{_escaped(shape)}"):
        F.adaptive_avg_pool2d(gg.zeros(*shape), 2)


def test_adaptive_avg_pool2d_of_empty_channels_is_empty():
    # PyTorch only asks for non-empty spatial dims: no channels give an empty output.
    torch = _torch()
    y = F.adaptive_avg_pool2d(gg.zeros(1, 0, 3, 4), 2)
    assert y.shape == tuple(torch.nn.functional.adaptive_avg_pool2d(
        torch.zeros(1, 0, 3, 4), 2).shape) == (1, 0, 2, 2)
