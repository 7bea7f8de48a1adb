"""A table of op specs drives three checks for every op:

1. gradcheck: autograd against central differences in float64;
2. PyTorch (where installed): value and gradient in float64, rtol 1e-6;
3. gradgradcheck for the twice-differentiable ops.

Each spec: (name, function of (module, *tensors), input shapes, input domain, twice-diff).
The same lambda runs on gpugrad and on torch because the API mirrors PyTorch's.
"""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.autograd import gradcheck, gradgradcheck

BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((1,), (2, 3)),
                 ((), (2, 3)), ((2, 3), (1, 1))]
UNARY_SHAPES = [(3, 4), (5,), (), (2, 1, 3)]
REDUCE_SHAPES = [(3, 4), (2, 3, 4), (1, 5), (4, 1, 2)]

SPECS = [
    # element-wise binary
    ("add", lambda m, a, b: a + b, BINARY_SHAPES, "any", True),
    ("sub", lambda m, a, b: a - b, BINARY_SHAPES, "any", True),
    ("mul", lambda m, a, b: a * b, BINARY_SHAPES, "any", True),
    ("div", lambda m, a, b: a / b, BINARY_SHAPES, "away0", True),
    ("pow", lambda m, a, b: a ** b, BINARY_SHAPES, "positive", True),
    ("maximum", lambda m, a, b: m.maximum(a, b), BINARY_SHAPES, "any", True),
    ("minimum", lambda m, a, b: m.minimum(a, b), BINARY_SHAPES, "any", True),
    ("where", lambda m, a, b: m.where(a > 0, a, b), BINARY_SHAPES, "any", True),
    ("remainder", lambda m, a, b: a % b, BINARY_SHAPES, "away0", True),
    # scalar and reflected operands
    ("radd", lambda m, a: 2.5 + a, UNARY_SHAPES, "any", True),
    ("rsub", lambda m, a: 2.5 - a, UNARY_SHAPES, "any", True),
    ("rmul", lambda m, a: 3 * a, UNARY_SHAPES, "any", True),
    ("rdiv", lambda m, a: 2.0 / a, UNARY_SHAPES, "away0", True),
    ("pow_scalar", lambda m, a: a ** 3, UNARY_SHAPES, "any", True),
    ("pow_frac", lambda m, a: a ** 0.5, UNARY_SHAPES, "positive", True),
    ("rpow", lambda m, a: 2.0 ** a, UNARY_SHAPES, "any", True),
    # unary
    ("neg", lambda m, a: -a, UNARY_SHAPES, "any", True),
    ("abs", lambda m, a: a.abs(), UNARY_SHAPES, "away0", True),
    ("exp", lambda m, a: a.exp(), UNARY_SHAPES, "any", True),
    ("log", lambda m, a: a.log(), UNARY_SHAPES, "positive", True),
    ("sqrt", lambda m, a: a.sqrt(), UNARY_SHAPES, "positive", True),
    ("sin", lambda m, a: a.sin(), UNARY_SHAPES, "any", True),
    ("cos", lambda m, a: a.cos(), UNARY_SHAPES, "any", True),
    ("tanh", lambda m, a: a.tanh(), UNARY_SHAPES, "any", True),
    ("sigmoid", lambda m, a: a.sigmoid(), UNARY_SHAPES, "any", True),
    ("relu", lambda m, a: a.relu(), UNARY_SHAPES, "away0", True),
    ("clamp", lambda m, a: a.clamp(-0.5, 0.7), UNARY_SHAPES, "any", True),
    ("clamp_min", lambda m, a: a.clamp(min=0.1), UNARY_SHAPES, "any", True),
    # reductions
    ("sum", lambda m, a: a.sum(), REDUCE_SHAPES, "any", True),
    ("sum_dim", lambda m, a: a.sum(dim=1, keepdim=True), REDUCE_SHAPES, "any", True),
    ("sum_dims", lambda m, a: a.sum(dim=(0, -1)), REDUCE_SHAPES, "any", True),
    ("sum_no_dims", lambda m, a: a.sum(dim=()), REDUCE_SHAPES, "any", True),
    ("mean_no_dims", lambda m, a: a.mean(dim=[]), REDUCE_SHAPES, "any", True),
    ("mean", lambda m, a: a.mean(dim=-1), REDUCE_SHAPES, "any", True),
    ("var", lambda m, a: a.var(dim=0), [(3, 4), (2, 3, 4), (4, 1, 2)], "any", True),
    ("var_biased", lambda m, a: a.var(unbiased=False), REDUCE_SHAPES, "any", True),
    ("std", lambda m, a: a.std(dim=1), [(3, 4), (2, 3, 4)], "any", True),
    ("amax", lambda m, a: a.amax(dim=1), REDUCE_SHAPES, "any", True),
    ("amin", lambda m, a: a.amin(dim=(0, 1), keepdim=True), REDUCE_SHAPES, "any", True),
    ("max_full", lambda m, a: a.max(), REDUCE_SHAPES, "any", True),
    ("max_dim", lambda m, a: a.max(dim=1).values, REDUCE_SHAPES, "any", True),
    ("min_dim", lambda m, a: a.min(dim=0, keepdim=True)[0], REDUCE_SHAPES, "any", True),
    ("prod", lambda m, a: a.prod(dim=1), REDUCE_SHAPES, "away0", True),
    ("prod_full", lambda m, a: a.prod(), [(2, 3), (4,)], "away0", True),
    ("logsumexp", lambda m, a: a.logsumexp(dim=1), REDUCE_SHAPES, "any", True),
    # shape
    ("reshape", lambda m, a: a.reshape(4, -1), [(2, 6), (4, 3)], "any", True),
    ("view", lambda m, a: a.view(-1), [(2, 6), (3,)], "any", True),
    ("flatten", lambda m, a: a.flatten(1), [(2, 3, 4), (2, 1)], "any", True),
    ("transpose", lambda m, a: a.transpose(0, -1), [(2, 3, 4), (3, 5)], "any", True),
    ("permute", lambda m, a: a.permute(2, 0, 1), [(2, 3, 4), (1, 3, 1)], "any", True),
    ("T", lambda m, a: a.T, [(3, 5), (4,)], "any", True),
    ("squeeze", lambda m, a: a.squeeze(), [(1, 3, 1), (2, 1)], "any", True),
    ("squeeze_dim", lambda m, a: a.squeeze(1), [(2, 1, 3), (3, 1)], "any", True),
    ("unsqueeze", lambda m, a: a.unsqueeze(-1), [(2, 3), ()], "any", True),
    ("expand", lambda m, a: a.expand(2, 3, 4), [(3, 1), (1, 4), (4,)], "any", True),
    ("broadcast_to", lambda m, a: m.broadcast_to(a, (2, 3, 4)), [(3, 1), (4,)], "any", True),
    # indexing
    ("getitem_slice", lambda m, a: a[1:, ::2], [(4, 5), (3, 4, 2)], "any", True),
    ("getitem_int", lambda m, a: a[1, -1], [(4, 5), (3, 4, 2)], "any", True),
    ("getitem_none_ellipsis", lambda m, a: a[None, ..., 0], [(4, 5), (3, 4, 2)], "any", True),
    ("getitem_array", lambda m, a: a[[0, 2, 0, 1]], [(4, 5), (3, 2)], "any", True),
    ("getitem_array2", lambda m, a: a[[0, 1, 1], [1, 0, 1]], [(4, 5), (3, 4, 2)], "any", True),
    ("getitem_mask", lambda m, a: a[a > 0], [(4, 5), (7,)], "any", True),
    # joining and splitting
    ("cat", lambda m, a, b: m.cat([a, b, a], dim=1), [((2, 3), (2, 2)), ((2, 1, 3), (2, 4, 3))],
     "any", True),
    ("stack", lambda m, a, b: m.stack([a, b], dim=-1), [((2, 3), (2, 3)), ((4,), (4,))], "any",
     True),
    ("split", lambda m, a: a.split(2, dim=1)[1] * a.split(2, dim=1)[0], [(3, 4), (2, 5)], "any",
     True),
    ("chunk", lambda m, a: a.chunk(3, dim=0)[-1], [(6, 2), (7, 3)], "any", True),
    # matmul: 1-D, 2-D, batched, broadcast batched
    ("matmul", lambda m, a, b: a @ b,
     [((3, 4), (4, 5)), ((4,), (4,)), ((4,), (4, 3)), ((3, 4), (4,)), ((2, 3, 4), (4, 5)),
      ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,))], "any", True),
    # softmax
    ("softmax", lambda m, a: a.softmax(dim=-1), [(3, 4), (2, 3, 5), (1, 1)], "any", True),
    ("log_softmax", lambda m, a: a.log_softmax(dim=0), [(3, 4), (2, 3, 5)], "any", True),
]


def _sample(rng, shape, domain):
    x = rng.standard_normal(shape)
    if domain == "positive":
        x = np.abs(x) + 0.5
    elif domain == "away0":
        x = np.sign(x) * (np.abs(x) + 0.3)
        x = np.where(x == 0, 0.5, x)
    return np.asarray(x, dtype=np.float64)


def _cases():
    for name, fn, shapes, domain, twice in SPECS:
        for k, shape in enumerate(shapes):
            shapes_k = shape if isinstance(shape, tuple) and shape and isinstance(shape[0], tuple) \
                else (shape,)
            yield pytest.param(name, fn, shapes_k, domain, twice, id=f"{name}-{k}")


def _inputs(shapes, domain, seed):
    rng = np.random.default_rng(seed)
    return [_sample(rng, s, domain) for s in shapes]


def _gg_inputs(arrays):
    return [gg.tensor(a, requires_grad=True) for a in arrays]


@pytest.mark.parametrize("name,fn,shapes,domain,twice", list(_cases()))
def test_gradcheck(name, fn, shapes, domain, twice):
    xs = _gg_inputs(_inputs(shapes, domain, 1))
    assert gradcheck(lambda *a: fn(gg, *a), xs)


@pytest.mark.parametrize("name,fn,shapes,domain,twice", list(_cases()))
def test_gradgradcheck(name, fn, shapes, domain, twice):
    if not twice:
        pytest.skip("first-order only")
    xs = _gg_inputs(_inputs(shapes, domain, 2))
    assert gradgradcheck(lambda *a: fn(gg, *a), xs)


@pytest.mark.parametrize("name,fn,shapes,domain,twice", list(_cases()))
def test_matches_torch(name, fn, shapes, domain, twice):
    torch = pytest.importorskip("torch")
    arrays = _inputs(shapes, domain, 3)
    xs = _gg_inputs(arrays)
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = fn(gg, *xs)
    ty = fn(torch, *ts)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-6, atol=1e-12)
    w = np.random.default_rng(4).standard_normal(ty.shape)
    y.backward(gg.tensor(w))
    ty.backward(torch.tensor(w))
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-6, atol=1e-12)
    if twice:
        _second_order_matches(fn, arrays, torch)


def _second_order_matches(fn, arrays, torch):
    """grad of <grad(<f, w>), v> against PyTorch: the full second-order path."""
    rng = np.random.default_rng(5)
    xs = _gg_inputs(arrays)
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, ty = fn(gg, *xs), fn(torch, *ts)
    w = rng.standard_normal(ty.shape)
    gs = gg.autograd.grad(y, xs, gg.tensor(w), create_graph=True, allow_unused=True)
    tgs = torch.autograd.grad(ty, ts, torch.tensor(w), create_graph=True, allow_unused=True)
    total = sum((g * gg.tensor(rng.standard_normal(g.shape))).sum() for g in gs
                if g is not None and g.requires_grad)
    rng = np.random.default_rng(5)
    rng.standard_normal(ty.shape)
    ttotal = sum((g * torch.tensor(rng.standard_normal(tuple(g.shape)))).sum() for g in tgs
                 if g is not None and g.requires_grad)
    if not isinstance(total, gg.Tensor) or not isinstance(ttotal, torch.Tensor):
        return  # the gradient is constant in the inputs (a linear op)
    hs = gg.autograd.grad(total, xs, allow_unused=True)
    ths = torch.autograd.grad(ttotal, ts, allow_unused=True)
    for h, th in zip(hs, ths):
        if th is None or h is None:  # "no path" and "zero" are the same derivative
            other = th if h is None else h
            assert other is None or np.allclose(other.numpy(), 0)
        else:
            np.testing.assert_allclose(h.numpy(), th.numpy(), rtol=1e-6, atol=1e-10)
