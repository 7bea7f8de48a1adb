"""nn.functional (the parts that are not conv/pool/cross-entropy): forward and gradients
against PyTorch in float32 and float64, gradcheck in float64, and input validation."""

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn.functional as F
from gpugrad.autograd import gradcheck, gradgradcheck
from gpugrad.ops.dropout import dropout_with_mask

torch = pytest.importorskip("torch")
TF = torch.nn.functional

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


def pair(a, requires_grad=True):
    """The same values as a gpugrad and a torch tensor (both leaves)."""
    a = np.asarray(a)
    g = gg.tensor(a, requires_grad=requires_grad and a.dtype.kind == "f")
    t = torch.tensor(a, requires_grad=requires_grad and a.dtype.kind == "f")
    return g, t


def check_same(g, t, dtype=np.float64):
    np.testing.assert_allclose(g.numpy(), t.detach().numpy(), **TOL[dtype])


def run_both(fn_g, fn_t, arrays, dtype, grad_idx=None):
    """Forward both, backward a fixed random cotangent, compare outputs and the grads of the
    inputs listed in grad_idx (all when None; the others are passed as constants)."""
    gs, ts = zip(*(pair(a, grad_idx is None or i in grad_idx) for i, a in enumerate(arrays)))
    yg, yt = fn_g(*gs), fn_t(*ts)
    check_same(yg, yt, dtype)
    w = np.random.default_rng(0).standard_normal(yg.shape).astype(dtype)
    yg.backward(gg.tensor(w))
    yt.backward(torch.tensor(w))
    for g, t in zip(gs, ts):
        if not t.requires_grad:
            continue
        if t.grad is None:
            assert g.grad is None or not g.grad.numpy().any()
            continue
        check_same(g.grad, t.grad, dtype)


def rnd(*shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def gc(*arrays):
    return [gg.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in arrays]


# ----------------------------------------------------------------------------- linear


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape", [(5, 3), (2, 4, 3), (3,)])
def test_linear_matches_torch(dtype, x_shape):
    run_both(F.linear, TF.linear, [rnd(*x_shape, dtype=dtype), rnd(4, 3, dtype=dtype, seed=1),
                                   rnd(4, dtype=dtype, seed=2)], dtype)
    run_both(F.linear, TF.linear, [rnd(*x_shape, dtype=dtype), rnd(4, 3, dtype=dtype, seed=1)],
             dtype)


def test_linear_gradcheck_and_errors():
    assert gradcheck(F.linear, gc(rnd(3, 2), rnd(4, 2, seed=1), rnd(4, seed=2)))
    assert gradgradcheck(F.linear, gc(rnd(2, 2), rnd(3, 2, seed=1), rnd(3, seed=2)))
    with pytest.raises(RuntimeError, match=r"input has 5 features .* expects 3"):
        F.linear(gg.zeros(2, 5), gg.zeros(4, 3))


# ----------------------------------------------------------------------------- batch norm


def _bn_both(x, dtype, training, momentum, affine, seed=0):
    c = x.shape[1]
    rng = np.random.default_rng(seed)
    rm = rng.standard_normal(c).astype(dtype)
    rv = rng.uniform(0.5, 2, c).astype(dtype)
    w = rng.standard_normal(c).astype(dtype) if affine else None
    b = rng.standard_normal(c).astype(dtype) if affine else None
    g_rm, g_rv = gg.tensor(rm), gg.tensor(rv)
    t_rm, t_rv = torch.tensor(rm), torch.tensor(rv)
    arrays = [x] + ([w, b] if affine else [])

    def fn_g(x, *wb):
        return F.batch_norm(x, g_rm, g_rv, *wb, training=training, momentum=momentum, eps=1e-3)

    def fn_t(x, *wb):
        return TF.batch_norm(x, t_rm, t_rv, *wb, training=training, momentum=momentum,
                             eps=1e-3)

    run_both(fn_g, fn_t, arrays, dtype)
    check_same(g_rm, t_rm, dtype)
    check_same(g_rv, t_rv, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 2, 4, 5)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_matches_torch(dtype, shape, training, affine):
    x = rnd(*shape, dtype=dtype) * 3 + 1
    _bn_both(x, dtype, training, 0.3, affine)


def test_batch_norm_gradcheck_and_gradgradcheck():
    rm, rv = gg.zeros(3, dtype=gg.float64), gg.ones(3, dtype=gg.float64)
    for training in (True, False):
        def fn(x, w, b, training=training):
            return F.batch_norm(x, rm, rv, w, b, training=training, eps=1e-2)

        args = gc(rnd(4, 3, 2) * 2, rnd(3, seed=1), rnd(3, seed=2))
        assert gradcheck(fn, args)
        assert gradgradcheck(fn, args)


def test_batch_norm_without_running_stats_and_errors():
    x = gg.tensor(rnd(5, 3))
    y = F.batch_norm(x, None, None, training=True)
    ref = TF.batch_norm(torch.tensor(x.numpy()), None, None, training=True)
    check_same(y, ref)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(gg.zeros(1, 3), None, None, training=True)
    with pytest.raises(RuntimeError, match="must be defined in evaluation"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(RuntimeError, match="running_mean should contain 3 elements .* not 4"):
        F.batch_norm(x, gg.zeros(4, dtype=gg.float64), gg.ones(4, dtype=gg.float64))


def test_batch_norm_eval_backward_is_not_affected_by_later_running_stat_updates():
    rm, rv = gg.zeros(2, dtype=gg.float64), gg.ones(2, dtype=gg.float64)
    x = gg.tensor(rnd(4, 2), requires_grad=True)
    y = F.batch_norm(x, rm, rv, training=False)
    F.batch_norm(gg.tensor(rnd(4, 2, seed=3) + 5), rm, rv, training=True, momentum=1.0)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full((4, 2), 1 / np.sqrt(1 + 1e-5)))


# ----------------------------------------------------------------------------- pad


PADS = [(1, 2), (0, 0, 2, 1), (1, 1, 1, 1), (-1, 2), (2, -1, -1, 1), (1, 0, 0, 1, 1, 1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pad", PADS)
def test_pad_constant_matches_torch(dtype, pad):
    x = rnd(2, 3, 4, 5, dtype=dtype)
    run_both(lambda a: F.pad(a, pad, value=0.5), lambda a: TF.pad(a, pad, value=0.5), [x],
             dtype)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("pad,shape", [((2, 1), (2, 3, 5)), ((1, 2, 2, 0), (2, 2, 4, 5)),
                                       ((1, 1, 0, 2), (3, 4, 4)), ((3, 3), (1, 4))])
def test_pad_modes_match_torch(mode, pad, shape):
    run_both(lambda a: F.pad(a, pad, mode=mode), lambda a: TF.pad(a, pad, mode=mode),
             [rnd(*shape)], np.float64)


def test_pad_gradcheck():
    assert gradcheck(lambda a: F.pad(a, (1, -1, 2, 0), value=3.0), gc(rnd(2, 3, 3)))
    assert gradgradcheck(lambda a: F.pad(a, (1, 2)), gc(rnd(2, 3)))
    assert gradcheck(lambda a: F.pad(a, (2, 1, 1, 2), mode="reflect"), gc(rnd(1, 3, 4)))
    assert gradcheck(lambda a: F.pad(a, (2, 1), mode="replicate"), gc(rnd(2, 3)))
    assert gradcheck(lambda a: F.pad(a, (2, 1), mode="circular"), gc(rnd(1, 2, 3)))


def test_pad_errors():
    x = gg.zeros(2, 3)
    with pytest.raises(ValueError, match="divisible by 2"):
        F.pad(x, (1, 2, 3))
    with pytest.raises(ValueError, match="too large"):
        F.pad(x, (1, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="negative output size"):
        F.pad(x, (-2, -2))
    with pytest.raises(ValueError, match="less than the corresponding input dimension"):
        F.pad(gg.zeros(1, 2, 3), (3, 0), mode="reflect")
    with pytest.raises(NotImplementedError, match="mode must be one of"):
        F.pad(x, (1, 1), mode="wrap")
    with pytest.raises(TypeError, match="ints"):
        F.pad(x, (1.5, 1))
    assert F.pad(x, (0, 0)) is x


# ----------------------------------------------------------------------------- dropout


def test_dropout_statistics_and_scaling():
    gg.manual_seed(0)
    x = gg.ones(200, 500)
    y = F.dropout(x, p=0.3).numpy()
    kept = y != 0
    assert kept.mean() == pytest.approx(0.7, abs=0.005)
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert y.dtype == np.float32


def test_dropout_modes_and_edge_cases():
    x = gg.randn(4, 5)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert not F.dropout(x, 1.0).numpy().any()
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1, but got"):
            F.dropout(x, p)
    gg.manual_seed(7)
    a = F.dropout(x, 0.5).numpy()
    gg.manual_seed(7)
    b = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    y = x.clone()
    out = F.dropout(y, 0.5, inplace=True)
    assert out is y


def test_dropout_gradient_uses_the_same_mask():
    gg.manual_seed(3)
    x = gg.randn(6, 7, dtype=gg.float64, requires_grad=True)
    y = F.dropout(x, 0.4)
    y.backward(gg.ones(6, 7, dtype=gg.float64))
    keep = y.numpy() != 0
    np.testing.assert_allclose(x.grad.numpy(), keep / 0.6)


def test_dropout_gradcheck_with_fixed_mask():
    def fn(a):
        gg.manual_seed(11)  # the same mask on every evaluation
        return F.dropout(a, 0.5)

    assert gradcheck(fn, gc(rnd(3, 4)))
    mask = gg.tensor(np.random.default_rng(0).random((3, 4)) > 0.5)
    assert gradgradcheck(lambda a: dropout_with_mask(a, mask, 2.0), gc(rnd(3, 4)))


# ----------------------------------------------------------------------------- activations


@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_match_torch(dtype):
    x = rnd(3, 4, dtype=dtype) * 3
    run_both(F.sigmoid, torch.sigmoid, [x], dtype)
    run_both(F.tanh, torch.tanh, [x], dtype)
    run_both(lambda a: F.softmax(a, dim=1), lambda a: TF.softmax(a, dim=1), [x], dtype)
    run_both(lambda a: F.log_softmax(a, dim=0), lambda a: TF.log_softmax(a, dim=0), [x], dtype)


def test_relu_matches_torch():
    x = rnd(3, 4)
    x[0, 0] = 0.0
    run_both(F.relu, TF.relu, [x], np.float64)


def test_softmax_implicit_dim_warns_like_torch():
    x = rnd(2, 3)
    with pytest.warns(UserWarning, match="Implicit dimension choice"):
        y = F.softmax(gg.tensor(x))
    np.testing.assert_allclose(y.numpy(), TF.softmax(torch.tensor(x), dim=1).numpy())


def test_one_hot():
    t = gg.tensor([0, 2, 1, 2])
    np.testing.assert_array_equal(F.one_hot(t).numpy(),
                                  TF.one_hot(torch.tensor([0, 2, 1, 2])).numpy())
    assert F.one_hot(t, 5).shape == (4, 5) and F.one_hot(t).dtype == gg.int64
    with pytest.raises(RuntimeError, match="smaller than num_classes=2"):
        F.one_hot(t, 2)


# ----------------------------------------------------------------------------- losses


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_torch(dtype, reduction):
    run_both(lambda a, b: F.mse_loss(a, b, reduction=reduction),
             lambda a, b: TF.mse_loss(a, b, reduction=reduction),
             [rnd(3, 4, dtype=dtype), rnd(3, 4, dtype=dtype, seed=1)], dtype)


def test_mse_loss_gradcheck_and_errors():
    assert gradcheck(lambda a, b: F.mse_loss(a, b), gc(rnd(2, 3), rnd(2, 3, seed=1)))
    assert gradgradcheck(lambda a, b: F.mse_loss(a, b, reduction="sum"),
                         gc(rnd(2, 3), rnd(2, 3, seed=1)))
    with pytest.raises(ValueError, match="elementwise is not a valid value for reduction"):
        F.mse_loss(gg.zeros(2), gg.zeros(2), reduction="elementwise")
    with pytest.warns(UserWarning, match="different to the input size"):
        F.mse_loss(gg.zeros(2, 3), gg.zeros(3))
    # PyTorch's legacy flags
    a, b = gg.tensor(rnd(2, 3)), gg.tensor(rnd(2, 3, seed=1))
    assert F.mse_loss(a, b, size_average=False).item() == pytest.approx(
        F.mse_loss(a, b, reduction="sum").item())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize("with_pos_weight", [False, True])
def test_bce_with_logits_matches_torch(dtype, reduction, with_weight, with_pos_weight):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4, 3)) * 4).astype(dtype)
    x[0, 0] = 0.0  # the kink of a naive formulation
    t = rng.random((4, 3)).astype(dtype)
    arrays = [x, t]
    if with_weight:
        arrays.append(rng.random((4, 3)).astype(dtype))
    if with_pos_weight:
        arrays.append(rng.uniform(0.5, 3, 3).astype(dtype))

    def make(f):
        def fn(x, t, *rest):
            rest = list(rest)
            w = rest.pop(0) if with_weight else None
            pw = rest.pop(0) if with_pos_weight else None
            return f(x, t, weight=w, pos_weight=pw, reduction=reduction)
        return fn

    # PyTorch does not differentiate w.r.t. weight and pos_weight (gradcheck covers ours).
    run_both(make(F.binary_cross_entropy_with_logits),
             make(TF.binary_cross_entropy_with_logits), arrays, dtype, grad_idx=[0, 1])


def test_bce_with_logits_is_stable_for_large_logits():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    t = np.array([1.0, 0.0, 0.5, 1.0, 0.0])
    run_both(lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction="none"),
             lambda a, b: TF.binary_cross_entropy_with_logits(a, b, reduction="none"),
             [x, t], np.float64)
    for dt in (gg.float32, gg.float64):
        xg = gg.tensor(x, dtype=dt, requires_grad=True)
        loss = F.binary_cross_entropy_with_logits(xg, gg.tensor(t, dtype=dt))
        loss.backward()
        assert np.isfinite(loss.item()) and np.isfinite(xg.grad.numpy()).all()


def test_bce_with_logits_gradcheck_and_errors():
    x = rnd(3, 2)
    x[0, 0] = 0.0
    args = gc(x, np.random.default_rng(1).random((3, 2)), np.random.default_rng(2).random((3, 2)),
              [2.0, 0.5])

    def fn(a, t, w, pw):
        return F.binary_cross_entropy_with_logits(a, t, weight=w, pos_weight=pw)

    assert gradcheck(fn, args)
    assert gradgradcheck(lambda a, t: F.binary_cross_entropy_with_logits(a, t),
                         gc(rnd(2, 2), [[0.0, 1.0], [1.0, 0.3]]))
    with pytest.raises(ValueError, match=r"target size \(\(3,\)\) must be the same as input"):
        F.binary_cross_entropy_with_logits(gg.zeros(2), gg.zeros(3))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("margin", [1.0, 0.3])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("with_weight", [False, True])
def test_multi_margin_loss_matches_torch(dtype, p, margin, reduction, with_weight):
    rng = np.random.default_rng(p)
    x = rng.standard_normal((5, 4)).astype(dtype)
    target = np.array([0, 3, 1, 1, 2])
    w = rng.uniform(0.5, 2, 4).astype(dtype)
    tg, tt = gg.tensor(target), torch.tensor(target)

    def fn_g(a, *ww):
        return F.multi_margin_loss(a, tg, p=p, margin=margin, weight=ww[0] if ww else None,
                                   reduction=reduction)

    def fn_t(a, *ww):
        return TF.multi_margin_loss(a, tt, p=p, margin=margin, weight=ww[0] if ww else None,
                                    reduction=reduction)

    run_both(fn_g, fn_t, [x, w] if with_weight else [x], dtype, grad_idx=[0])


def test_multi_margin_loss_unbatched_and_hinge_edge():
    # z == 0 exactly at the hinge: PyTorch's gradient there is 0
    x = np.array([2.0, 1.0, 0.5, 3.0])
    run_both(lambda a: F.multi_margin_loss(a, gg.tensor(0)),
             lambda a: TF.multi_margin_loss(a, torch.tensor(0)), [x], np.float64)
    run_both(lambda a: F.multi_margin_loss(a.reshape(1, 4), gg.tensor([3]), p=2),
             lambda a: TF.multi_margin_loss(a.reshape(1, 4), torch.tensor([3]), p=2),
             [x], np.float64)


def test_multi_margin_loss_gradcheck_and_errors():
    target = gg.tensor([1, 0, 2])
    x = rnd(3, 3) * 0.3  # margins mostly active, away from the kink
    for p in (1, 2):
        assert gradcheck(lambda a, w: F.multi_margin_loss(a, target, p=p, weight=w),
                         gc(x, [0.5, 1.0, 2.0]))
    with pytest.raises(ValueError, match="only p == 1 and p == 2"):
        F.multi_margin_loss(gg.zeros(2, 3), gg.tensor([0, 1]), p=3)
    with pytest.raises(IndexError, match=r"target values must be in \[0, 2\] .* got values in "
                                         r"\[0, 3\]"):
        F.multi_margin_loss(gg.zeros(2, 3), gg.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"expected a target of shape \(2,\)"):
        F.multi_margin_loss(gg.zeros(2, 3), gg.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="one per class"):
        F.multi_margin_loss(gg.zeros(2, 3), gg.tensor([0, 1]), weight=gg.ones(2))
    with pytest.raises(RuntimeError, match="integer class-index"):
        F.multi_margin_loss(gg.zeros(2, 3), gg.zeros(2))


def test_batch_norm_empty_batch_keeps_running_stats():
    rm, rv = gg.zeros(3), gg.ones(3)
    x = gg.randn(0, 3, 2, 2, requires_grad=True)
    w, b = gg.ones(3, requires_grad=True), gg.zeros(3, requires_grad=True)
    y = F.batch_norm(x, rm, rv, w, b, training=True)
    assert y.shape == (0, 3, 2, 2)
    assert rm.tolist() == [0.0] * 3 and rv.tolist() == [1.0] * 3
    y.sum().backward()
    assert w.grad.tolist() == [0.0] * 3 and b.grad.tolist() == [0.0] * 3


def _tag_cuda(t):
    # Device checks compare only the tag, so a CPU tensor tagged cuda:0 tests them anywhere.
    t.device = gg.device("cuda", 0)
    return t


@pytest.mark.parametrize("call", [
    lambda: F.linear(gg.randn(2, 3), _tag_cuda(gg.randn(4, 3))),
    lambda: F.mse_loss(gg.randn(4), _tag_cuda(gg.randn(4))),
    lambda: F.binary_cross_entropy_with_logits(gg.randn(4), _tag_cuda(gg.ones(4))),
    lambda: F.binary_cross_entropy_with_logits(gg.randn(4), gg.ones(4),
                                               pos_weight=_tag_cuda(gg.ones(4))),
    lambda: F.multi_margin_loss(gg.randn(2, 3), _tag_cuda(gg.tensor([0, 1]))),
    lambda: F.batch_norm(gg.randn(2, 3), _tag_cuda(gg.zeros(3)), gg.ones(3)),
])
def test_mixed_devices_are_refused_naming_both(call):
    with pytest.raises(RuntimeError, match=r"(cpu.*cuda:0|cuda:0.*cpu)"):
        call()


def test_batch_norm_of_float16_takes_its_statistics_in_float32():
    """Values of 1e4 with a spread of 300 in float16: their squares overflow float16 (the
    output was NaN); the statistics run in float32, the output and the gradient stay float16,
    the running stats keep their dtype, all against float64 arithmetic on the same values."""
    rng = np.random.default_rng(5)
    xa = (rng.standard_normal((6, 2, 3)) * 300 + 1e4).astype(np.float16)
    x = gg.tensor(xa, requires_grad=True)
    rm, rv = gg.zeros(2, dtype=gg.float16), gg.ones(2, dtype=gg.float16)
    y = F.batch_norm(x, rm, rv, training=True)
    x64 = xa.astype(np.float64)
    mean, var = x64.mean((0, 2), keepdims=True), x64.var((0, 2), keepdims=True)
    assert y.dtype == gg.float16 and rm.dtype == gg.float16
    np.testing.assert_allclose(y.detach().numpy().astype(np.float64),
                               (x64 - mean) / np.sqrt(var + 1e-5), atol=5e-3)
    np.testing.assert_allclose(rm.numpy().astype(np.float64), 0.1 * mean.ravel(), rtol=1e-3)
    y.backward(gg.ones_like(y))
    assert x.grad.dtype == gg.float16 and np.isfinite(x.grad.numpy()).all()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_weight_as_pytorch_2_13(reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    xa, ta, wa = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), rng.random((3, 4))
    x = gg.tensor(xa, requires_grad=True)
    w = gg.tensor(wa, requires_grad=True)
    tx = torch.tensor(xa, requires_grad=True)
    tw = torch.tensor(wa, requires_grad=True)
    y = F.mse_loss(x, gg.tensor(ta), reduction=reduction, weight=w)
    ty = torch.nn.functional.mse_loss(tx, torch.tensor(ta), reduction=reduction, weight=tw)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-12)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="mse_loss: weights and input must have the same size"):
        F.mse_loss(x, gg.tensor(ta), weight=gg.ones(4))
    with pytest.raises(TypeError, match="mse_loss: weight must be a gpugrad Tensor"):
        F.mse_loss(x, gg.tensor(ta), weight=[1.0])


@pytest.mark.parametrize("x_shape", [(5, 3), (3,), (2, 4, 3), (1, 1, 3), (0, 3)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_is_one_node_with_pytorchs_values_and_gradients(x_shape, with_bias):
    """F.linear as one Linear node: values and the three gradients against PyTorch, gradcheck
    and gradgradcheck, and the weight's gradient in the weight's own layout."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    xa, wa, ba = rng.standard_normal(x_shape), rng.standard_normal((4, 3)), rng.standard_normal(4)
    x, w = gg.tensor(xa, requires_grad=True), gg.tensor(wa, requires_grad=True)
    b = gg.tensor(ba, requires_grad=True) if with_bias else None
    tx, tw = torch.tensor(xa, requires_grad=True), torch.tensor(wa, requires_grad=True)
    tb = torch.tensor(ba, requires_grad=True) if with_bias else None
    y = F.linear(x, w, b)
    ty = torch.nn.functional.linear(tx, tw, tb)
    assert type(y.grad_fn).__name__ == "Linear"
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    gya = rng.standard_normal(ty.shape)
    y.backward(gg.tensor(gya))
    ty.backward(torch.tensor(gya))
    for mine, theirs in [(x, tx), (w, tw)] + ([(b, tb)] if with_bias else []):
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-12,
                                   atol=1e-12)
    assert w.grad.data.flags.c_contiguous
    args = [x, w] + ([b] if with_bias else [])
    if xa.size:
        assert gradcheck(lambda *a: F.linear(*a), args)
        assert gradgradcheck(lambda *a: F.linear(*a), args)


def test_linear_with_mixed_dtypes_names_them():
    with pytest.raises(RuntimeError, match="linear: expected input, weight and bias of one dtype"):
        F.linear(gg.ones(2, 3), gg.ones(4, 3, dtype=gg.float64))


@pytest.mark.parametrize("x_shape, w_shape", [((4, 0), (5, 0)), ((0, 0), (5, 0)),
                                              ((4, 3), (0, 3)), ((2, 1, 0), (2, 0))])
def test_linear_with_no_features_in_or_out_matches_torch(x_shape, w_shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    xa, wa, ba = rng.standard_normal(x_shape), rng.standard_normal(w_shape), \
        rng.standard_normal(w_shape[0])
    x, w, b = (gg.tensor(a, requires_grad=True) for a in (xa, wa, ba))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (xa, wa, ba))
    y = F.linear(x, w, b)
    ty = torch.nn.functional.linear(tx, tw, tb)
    assert y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy())
    y.sum().backward()
    ty.sum().backward()
    for mine, theirs in ((x, tx), (w, tw), (b, tb)):
        assert mine.grad.shape == tuple(theirs.grad.shape)
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy())
