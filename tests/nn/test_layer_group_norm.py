"""layer_norm / group_norm and nn.LayerNorm / nn.GroupNorm against PyTorch: values, gradients
of input, weight and bias, grad-of-grad, the modules' parameters and state dicts, and errors."""

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.autograd import gradcheck, gradgradcheck
from gpugrad.nn.functional_norm import group_norm, layer_norm
from gpugrad.nn.normalization import GroupNorm, LayerNorm

# float64 agrees with PyTorch to rounding; float32 to a few ulps of the normalised values.
TOL = {np.float64: {"rtol": 1e-10, "atol": 1e-11}, np.float32: {"rtol": 1e-4, "atol": 2e-5}}

# Which of weight / bias are given.
AFFINE = [(True, True), (True, False), (False, True), (False, False)]

# (input shape, normalized_shape); size-1 dims inside and outside the normalised ones.
LN_CASES = [
    ((4, 5), (5,)),
    ((2, 3, 4), (3, 4)),
    ((2, 3, 4), (2, 3, 4)),
    ((5,), 5),
    ((2, 3, 1), (1,)),
    ((3, 1, 4), (1, 4)),
    ((1, 2, 1, 3), 3),
]

# (input shape, num_groups): one group, one channel per group and in between.
GN_CASES = [
    ((2, 6, 5), 1),
    ((2, 6, 5), 2),
    ((2, 6, 5), 3),
    ((2, 6, 5), 6),
    ((3, 4), 2),
    ((2, 4, 3, 2), 2),
    ((2, 3, 1, 1), 3),
    ((2, 6, 1, 1), 2),
]


def _pair(a, torch, requires_grad=True):
    return (gg.tensor(a, requires_grad=requires_grad),
            torch.tensor(a, requires_grad=requires_grad))


def _affine(rng, shape, dtype, use_w, use_b, torch):
    """(gpugrad weight, bias), (torch weight, bias): random values, None where not used."""
    w = _pair((rng.standard_normal(shape) + 1).astype(dtype), torch) if use_w else (None, None)
    b = _pair(rng.standard_normal(shape).astype(dtype), torch) if use_b else (None, None)
    return (w[0], b[0]), (w[1], b[1])


def _check_against_torch(ours, theirs, leaves, tleaves, dtype, seed, singleton=False):
    """Same output, and the same gradients of every leaf for a random upstream gradient.

    `singleton`: each normalised group has one value, so the normalised values are 0 and the
    output depends on neither the input nor the weight (leaves[0], leaves[1]). Ours gives
    their gradients as exactly 0 (and the values as the bias, see
    test_size_one_groups_give_the_bias_and_no_gradient_to_the_input); PyTorch's float32 kernel
    leaves rounding noise scaled by 1/sqrt(eps) (~316) there, so it is only bounded.
    """
    import torch

    tol = TOL[dtype]
    out_tol = {**tol, "atol": 1e-3} if singleton and dtype == np.float32 else tol
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), **out_tol)
    gy = np.random.default_rng(seed).standard_normal(theirs.shape).astype(dtype)
    ours.backward(gg.tensor(gy))
    theirs.backward(torch.tensor(gy))
    for i, (leaf, tleaf) in enumerate(zip(leaves, tleaves)):
        if leaf is None:
            continue
        if singleton and i < 2:
            np.testing.assert_array_equal(leaf.grad.numpy(), 0)
            np.testing.assert_allclose(tleaf.grad.numpy(), 0, atol=1e-3)
            continue
        np.testing.assert_allclose(leaf.grad.numpy(), tleaf.grad.numpy(), **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("use_w, use_b", AFFINE)
@pytest.mark.parametrize("shape, normalized_shape", LN_CASES)
def test_layer_norm_matches_torch(shape, normalized_shape, use_w, use_b, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, tx = _pair((3 * rng.standard_normal(shape) + 2).astype(dtype), torch)
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
    (w, b), (tw, tb) = _affine(rng, ns, dtype, use_w, use_b, torch)
    y = layer_norm(x, normalized_shape, w, b)
    ty = torch.nn.functional.layer_norm(tx, ns, tw, tb)
    assert y.dtype == dtype and y.shape == tuple(ty.shape)
    _check_against_torch(y, ty, (x, w, b), (tx, tw, tb), dtype, 1,
                         singleton=int(np.prod(ns)) == 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("use_w, use_b", AFFINE)
@pytest.mark.parametrize("shape, groups", GN_CASES)
def test_group_norm_matches_torch(shape, groups, use_w, use_b, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, tx = _pair((3 * rng.standard_normal(shape) - 1).astype(dtype), torch)
    (w, b), (tw, tb) = _affine(rng, (shape[1],), dtype, use_w, use_b, torch)
    y = group_norm(x, groups, w, b)
    if tw is None and tb is not None:
        # torch 2.13's CPU backward of group_norm with a bias but no weight raises "tensor
        # does not have a device": add the bias outside it.
        ty = torch.nn.functional.group_norm(tx, groups)
        ty = ty + tb.reshape((-1,) + (1,) * (len(shape) - 2))
    else:
        ty = torch.nn.functional.group_norm(tx, groups, tw, tb)
    assert y.dtype == dtype and y.shape == tuple(ty.shape)
    _check_against_torch(y, ty, (x, w, b), (tx, tw, tb), dtype, 2,
                         singleton=shape[1] // groups * int(np.prod(shape[2:])) == 1)


def test_size_one_groups_give_the_bias_and_no_gradient_to_the_input():
    # One value per group: it is its own mean, so the output is the bias and x's gradient 0.
    # PyTorch refuses a batch of one such sample ("Expected more than 1 value per channel
    # when training", a check carried over from batch norm); the result is well defined.
    x = gg.tensor(np.random.default_rng(0).standard_normal((1, 3, 1)), requires_grad=True)
    b = gg.tensor([1.0, 2.0, 3.0], dtype=gg.float64)
    y = group_norm(x, 3, bias=b)
    np.testing.assert_array_equal(y.numpy(), [[[1.0], [2.0], [3.0]]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 0)
    x.grad = None
    z = layer_norm(x, (1,))
    np.testing.assert_array_equal(z.numpy(), 0)
    (z * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 0)


@pytest.mark.parametrize("fn", [
    lambda x, w, b: layer_norm(x, (3, 4), w, b),
    lambda x, w, b: layer_norm(x, 4, w[0], b[0]),
])
def test_layer_norm_gradcheck_and_gradgradcheck(fn):
    rng = np.random.default_rng(3)
    x = gg.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    w = gg.tensor(rng.standard_normal((3, 4)) + 1, requires_grad=True)
    b = gg.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    assert gradcheck(fn, (x, w, b))
    assert gradgradcheck(fn, (x, w, b))


@pytest.mark.parametrize("shape, groups", [((2, 6, 3), 3), ((2, 4, 2, 2), 1), ((3, 4), 4)])
def test_group_norm_gradcheck_and_gradgradcheck(shape, groups):
    rng = np.random.default_rng(4)
    x = gg.tensor(rng.standard_normal(shape), requires_grad=True)
    w = gg.tensor(rng.standard_normal(shape[1]) + 1, requires_grad=True)
    b = gg.tensor(rng.standard_normal(shape[1]), requires_grad=True)

    def fn(x, w, b):
        return group_norm(x, groups, w, b)

    assert gradcheck(fn, (x, w, b))
    assert gradgradcheck(fn, (x, w, b))


def test_second_order_gradients_match_torch():
    """The gradient of <d<y, gy>/dx, v> in x and in the weight (create_graph), as PyTorch."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal((2, 4, 3)), rng.standard_normal(4) + 1,
              rng.standard_normal(4)]
    gy, v = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 3))
    for f, tf in ((lambda x, w, b: group_norm(x, 2, w, b),
                   lambda x, w, b: torch.nn.functional.group_norm(x, 2, w, b)),
                  (lambda x, w, b: layer_norm(x, (4, 3),
                                              w[:, None] * gg.ones(4, 3, dtype=gg.float64)),
                   lambda x, w, b: torch.nn.functional.layer_norm(
                       x, (4, 3), w[:, None] * torch.ones(4, 3, dtype=torch.float64)))):
        xs = [gg.tensor(a, requires_grad=True) for a in arrays]
        ts = [torch.tensor(a, requires_grad=True) for a in arrays]
        (gx,) = gg.autograd.grad(f(*xs), xs[:1], gg.tensor(gy), create_graph=True)
        (tgx,) = torch.autograd.grad(tf(*ts), ts[:1], torch.tensor(gy), create_graph=True)
        hs = gg.autograd.grad((gx * gg.tensor(v)).sum(), xs[:2])
        ths = torch.autograd.grad((tgx * torch.tensor(v)).sum(), ts[:2])
        for h, th in zip(hs, ths):
            np.testing.assert_allclose(h.numpy(), th.numpy(), rtol=1e-9, atol=1e-11)


def test_float32_variance_is_computed_from_centred_values():
    # Values around 1e4 with unit spread: E[x^2] - E[x]^2 would lose the variance entirely in
    # float32 (E[x^2] ~ 1e8, one ulp ~ 8). Compare with float64 on the same float32 values.
    torch = pytest.importorskip("torch")
    x = (1e4 + np.random.default_rng(6).standard_normal((4, 8, 16))).astype(np.float32)
    ref = torch.nn.functional.group_norm(torch.tensor(x, dtype=torch.float64), 2).numpy()
    np.testing.assert_allclose(group_norm(gg.tensor(x), 2).numpy(), ref, atol=5e-3)
    ref = torch.nn.functional.layer_norm(torch.tensor(x, dtype=torch.float64), (16,)).numpy()
    np.testing.assert_allclose(layer_norm(gg.tensor(x), 16).numpy(), ref, atol=5e-3)


def test_eps_zero_is_accepted_as_in_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(7).standard_normal((2, 4, 3))
    np.testing.assert_allclose(
        layer_norm(gg.tensor(x), (4, 3), eps=0.0).numpy(),
        torch.nn.functional.layer_norm(torch.tensor(x), (4, 3), eps=0.0).numpy(), rtol=1e-10)
    np.testing.assert_allclose(
        group_norm(gg.tensor(x), 2, eps=0).numpy(),
        torch.nn.functional.group_norm(torch.tensor(x), 2, eps=0.0).numpy(), rtol=1e-10)


def test_eps_is_added_to_the_variance():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(8).standard_normal((3, 5))
    np.testing.assert_allclose(
        layer_norm(gg.tensor(x), 5, eps=0.5).numpy(),
        torch.nn.functional.layer_norm(torch.tensor(x), (5,), eps=0.5).numpy(), rtol=1e-10)
    np.testing.assert_allclose(
        group_norm(gg.tensor(x), 1, eps=0.5).numpy(),
        torch.nn.functional.group_norm(torch.tensor(x), 1, eps=0.5).numpy(), rtol=1e-10)


def test_empty_inputs_give_empty_outputs_as_torch():
    assert layer_norm(gg.zeros(0, 3), 3).shape == (0, 3)
    assert layer_norm(gg.zeros(2, 0), (0,)).shape == (2, 0)
    assert group_norm(gg.zeros(0, 6, 2), 2).shape == (0, 6, 2)
    assert group_norm(gg.zeros(2, 6, 0), 3).shape == (2, 6, 0)


# ----------------------------------------------------------------------------- modules


def _copy_params(module, tmodule, rng):
    """Random values into both modules' parameters (they start as ones / zeros)."""
    import torch

    for (name, p), (tname, tp) in zip(module.named_parameters(), tmodule.named_parameters()):
        assert name == tname and p.shape == tuple(tp.shape)
        value = rng.standard_normal(p.shape).astype(np.float32)
        p.data[...] = value
        with torch.no_grad():
            tp.copy_(torch.tensor(value))


MODULE_CASES = [
    (lambda m: m.LayerNorm((3, 4)), (2, 5, 3, 4)),
    (lambda m: m.LayerNorm(4, eps=1e-3), (2, 3, 4)),
    (lambda m: m.LayerNorm(4, elementwise_affine=False), (2, 3, 4)),
    (lambda m: m.LayerNorm([3, 4], bias=False), (2, 3, 4)),
    (lambda m: m.GroupNorm(2, 6), (2, 6, 3, 2)),
    (lambda m: m.GroupNorm(6, 6, eps=1e-3), (3, 6, 4)),
    (lambda m: m.GroupNorm(1, 4, affine=False), (3, 4)),
    (lambda m: m.GroupNorm(2, 4, bias=False), (2, 4, 5)),
]


class _Ours:
    LayerNorm, GroupNorm = LayerNorm, GroupNorm


@pytest.mark.parametrize("make, shape", MODULE_CASES)
def test_modules_match_torch(make, shape):
    torch = pytest.importorskip("torch")
    module, tmodule = make(_Ours), make(torch.nn)
    assert repr(module) == repr(tmodule)
    # Fresh parameters are PyTorch's ones and zeros, with the same names and state dict keys.
    sd, tsd = module.state_dict(), tmodule.state_dict()
    assert list(sd) == list(tsd)
    for key in sd:
        np.testing.assert_array_equal(sd[key].numpy(), tsd[key].numpy())
        assert sd[key].dtype == np.float32
    rng = np.random.default_rng(9)
    _copy_params(module, tmodule, rng)
    x, tx = _pair(rng.standard_normal(shape).astype(np.float32), torch)
    y, ty = module(x), tmodule(tx)
    params = [p for _, p in module.named_parameters()]
    tparams = [p for _, p in tmodule.named_parameters()]
    _check_against_torch(y, ty, [x] + params, [tx] + tparams, np.float32, 10)
    # eval mode normalises with the input's own statistics too (no running buffers).
    module.eval()
    tmodule.eval()
    np.testing.assert_allclose(module(x).numpy(), tmodule(tx).detach().numpy(),
                               **TOL[np.float32])


@pytest.mark.parametrize("make, shape", MODULE_CASES)
def test_module_state_dict_round_trips_and_reset_parameters(make, shape):
    torch = pytest.importorskip("torch")
    module, tmodule = make(_Ours), make(torch.nn)
    _copy_params(module, tmodule, np.random.default_rng(11))
    # A PyTorch state dict loads into the gpugrad module and gives the same output.
    fresh = make(_Ours)
    fresh.load_state_dict({k: gg.tensor(v.numpy()) for k, v in tmodule.state_dict().items()})
    x = np.random.default_rng(12).standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(fresh(gg.tensor(x)).numpy(),
                               tmodule(torch.tensor(x)).detach().numpy(), **TOL[np.float32])
    module.reset_parameters()
    tmodule.reset_parameters()
    for (k, v), (tk, tv) in zip(module.state_dict().items(), tmodule.state_dict().items()):
        assert k == tk
        np.testing.assert_array_equal(v.numpy(), tv.numpy())


def test_module_attributes_and_parameters_as_torch():
    ln = LayerNorm(5)
    assert ln.normalized_shape == (5,) and ln.eps == 1e-5 and ln.elementwise_affine
    assert [n for n, _ in ln.named_parameters()] == ["weight", "bias"]
    assert ln.weight.requires_grad and ln.weight.shape == (5,)
    assert LayerNorm(np.int64(3)).normalized_shape == (3,)
    off = LayerNorm((2, 3), elementwise_affine=False)
    assert off.weight is None and off.bias is None and list(off.parameters()) == []
    nob = LayerNorm(3, bias=False)
    assert nob.bias is None and [n for n, _ in nob.named_parameters()] == ["weight"]
    gn = GroupNorm(3, 6, dtype=gg.float64)
    assert (gn.num_groups, gn.num_channels, gn.eps, gn.affine) == (3, 6, 1e-5, True)
    assert gn.weight.dtype == np.float64 and gn.bias.shape == (6,)
    assert list(GroupNorm(2, 4, affine=False).parameters()) == []
    assert [n for n, _ in GroupNorm(2, 4, bias=False).named_parameters()] == ["weight"]


# ----------------------------------------------------------------------------- errors


def _tag_cuda(t):
    # Device checks compare only the tag, so a CPU tensor tagged cuda:0 tests them anywhere.
    t.device = gg.device("cuda", 0)
    return t


X = gg.zeros(2, 6, 3)


@pytest.mark.parametrize("call, exc, parts", [
    (lambda: layer_norm(np.zeros((2, 3)), 3), TypeError,
     ["layer_norm: input must be a gpugrad Tensor", "ndarray"]),
    (lambda: layer_norm(X, (4,)), RuntimeError,
     ["layer_norm: given normalized_shape=(4,)", "(*, 4)", "input of shape (2, 6, 3)"]),
    (lambda: layer_norm(X, (1, 2, 6, 3)), RuntimeError,
     ["layer_norm: given normalized_shape=(1, 2, 6, 3)", "(2, 6, 3)"]),
    (lambda: layer_norm(X, (6, 4)), RuntimeError, ["(*, 6, 4)"]),
    (lambda: layer_norm(X, ()), RuntimeError, ["layer_norm: expected normalized_shape", "empty"]),
    (lambda: layer_norm(X, (3.0,)), TypeError,
     ["layer_norm: normalized_shape must be an int or a tuple of ints", "(3.0,)"]),
    (lambda: layer_norm(X, 3.0), TypeError, ["normalized_shape must be", "float 3.0"]),
    (lambda: layer_norm(X, 3, weight=gg.ones(4)), RuntimeError,
     ["layer_norm: expected weight of shape (3,)", "got weight of shape (4,)"]),
    (lambda: layer_norm(X, 3, bias=gg.ones(1, 3)), RuntimeError,
     ["layer_norm: expected bias of shape (3,)", "got bias of shape (1, 3)"]),
    (lambda: layer_norm(X, 3, weight=gg.ones(3, dtype=gg.float64)), RuntimeError,
     ["layer_norm: expected weight of the input's dtype float32, got float64"]),
    (lambda: layer_norm(X, 3, weight=[1.0, 1.0, 1.0]), TypeError,
     ["layer_norm: weight must be a Tensor or None, got list"]),
    (lambda: layer_norm(X, 3, bias=_tag_cuda(gg.zeros(3))), RuntimeError,
     ["layer_norm: expected all tensors on the same device", "cpu", "bias on cuda:0"]),
    (lambda: layer_norm(gg.zeros(2, 3, dtype=gg.int64), 3), RuntimeError,
     ["layer_norm: expected a floating-point input, got int64"]),
    (lambda: layer_norm(X, 3, eps=-1.0), ValueError, ["layer_norm: expected eps >= 0, got -1.0"]),
    (lambda: layer_norm(X, 3, eps=float("nan")), ValueError, ["layer_norm: expected eps >= 0"]),
    (lambda: layer_norm(X, 3, eps="1e-5"), TypeError, ["layer_norm: eps must be a float"]),
    (lambda: group_norm([1.0], 1), TypeError,
     ["group_norm: input must be a gpugrad Tensor, got list"]),
    (lambda: group_norm(X, 4), RuntimeError,
     ["group_norm: expected the number of channels to be divisible by num_groups",
      "(2, 6, 3) (6 channels)", "num_groups=4"]),
    (lambda: group_norm(X, 0), RuntimeError,
     ["group_norm: expected num_groups to be greater than 0, got 0"]),
    (lambda: group_norm(X, -2), RuntimeError, ["greater than 0, got -2"]),
    (lambda: group_norm(X, 2.0), TypeError, ["group_norm: num_groups must be an int, got float"]),
    (lambda: group_norm(gg.zeros(6), 2), RuntimeError,
     ["group_norm: expected an input of at least 2 dims (N, C, *), got shape (6,)"]),
    (lambda: group_norm(X, 2, weight=gg.ones(3)), RuntimeError,
     ["group_norm: expected weight of shape (6,)", "got weight of shape (3,)"]),
    (lambda: group_norm(X, 2, weight=gg.ones(6, 1)), RuntimeError,
     ["expected weight of shape (6,)", "(6, 1)"]),
    (lambda: group_norm(X, 2, bias=gg.zeros(6, dtype=gg.float64)), RuntimeError,
     ["group_norm: expected bias of the input's dtype float32, got float64"]),
    (lambda: group_norm(X, 2, weight=_tag_cuda(gg.ones(6))), RuntimeError,
     ["group_norm: expected all tensors on the same device", "weight on cuda:0"]),
    (lambda: group_norm(gg.zeros(2, 6, dtype=gg.bool), 2), RuntimeError,
     ["group_norm: expected a floating-point input, got bool"]),
    (lambda: group_norm(X, 2, eps=-1e-5), ValueError, ["group_norm: expected eps >= 0"]),
    (lambda: GroupNorm(4, 6), ValueError,
     ["GroupNorm: num_channels (6) must be divisible by num_groups (4)"]),
    (lambda: GroupNorm(0, 6), ValueError, ["GroupNorm: num_groups must be >= 1, got 0"]),
    (lambda: GroupNorm(2.0, 6), TypeError, ["GroupNorm: num_groups must be an int"]),
    (lambda: LayerNorm(3.0), TypeError, ["LayerNorm: normalized_shape must be an int or a tuple"]),
    (lambda: LayerNorm(4)(X), RuntimeError, ["layer_norm: given normalized_shape=(4,)"]),
    (lambda: GroupNorm(2, 4)(X), RuntimeError,
     ["group_norm: expected weight of shape (6,)", "(4,)"]),
])
def test_bad_arguments_raise_naming_the_op(call, exc, parts):
    with pytest.raises(exc) as info:
        call()
    for part in parts:
        assert part in str(info.value), (part, str(info.value))


# ----------------------------------------------------------------------------- on a GPU


@pytest.mark.gpu
@pytest.mark.parametrize("fn", [
    lambda x, w, b: layer_norm(x, (4, 5), w.reshape(4, 5), b.reshape(4, 5)),
    lambda x, w, b: group_norm(x.reshape(3, 20, 1), 4, w, b),
])
def test_on_cuda_matches_the_cpu_with_double_backward(fn):
    rng = np.random.default_rng(13)
    arrays = [rng.standard_normal((3, 4, 5)), rng.standard_normal(20) + 1,
              rng.standard_normal(20)]
    outs = {}
    for dev in ("cpu", "cuda"):
        xs = [gg.tensor(a, device=dev, requires_grad=True) for a in arrays]
        y = fn(*xs)
        assert y.device == xs[0].device
        gs = gg.autograd.grad((y * y).sum(), xs, create_graph=True)
        hs = gg.autograd.grad(sum((g * g).sum() for g in gs), xs)
        outs[dev] = [t.numpy() for t in (y, *gs, *hs)]
    for a, b in zip(outs["cuda"], outs["cpu"]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def test_float16_is_normalised_in_float32_as_pytorch_does():
    """The squares of a float16 input with a spread of ~300 overflow float16: the statistics
    are taken in float32 and the result cast back (a float16 computation gave all zeros)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    xa = (rng.standard_normal((2, 4, 3)) * 300 + 1e4).astype(np.float16)
    wa = rng.standard_normal(3).astype(np.float16)
    x = gg.tensor(xa, requires_grad=True)
    w = gg.tensor(wa, requires_grad=True)
    tx = torch.tensor(xa, requires_grad=True)
    tw = torch.tensor(wa, requires_grad=True)
    y = layer_norm(x, 3, w)
    ty = torch.nn.functional.layer_norm(tx, (3,), tw)
    assert y.dtype == gg.float16
    np.testing.assert_allclose(y.numpy().astype(np.float32), ty.detach().numpy(), atol=2e-2)
    g = group_norm(x, 2)
    tg = torch.nn.functional.group_norm(tx.float(), 2).half()
    np.testing.assert_allclose(g.numpy().astype(np.float32), tg.detach().numpy(), atol=2e-2)
    y.sum().backward()
    ty.sum().backward()
    assert x.grad.dtype == gg.float16 and np.isfinite(x.grad.numpy()).all()
    # The weight's gradient against float64 arithmetic on the same float16 input: PyTorch
    # 2.13's CPU kernel sums it in half precision and is 0.1 off here, gpugrad is not.
    x64 = xa.astype(np.float64)
    xhat = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(w.grad.numpy().astype(np.float64), xhat.sum((0, 1)), atol=5e-3)
