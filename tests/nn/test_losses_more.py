"""l1_loss, smooth_l1_loss, huber_loss, kl_div and binary_cross_entropy (and their modules):
values and gradients against PyTorch in float32 and float64 for every reduction, gradcheck
and gradgradcheck in float64, the edge values (kl_div's zero targets, BCE at 0 and 1, the
smooth_l1/huber boundary), broadcasting, dtypes, legacy flags and errors."""

import warnings

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.autograd import grad, gradcheck, gradgradcheck
from gpugrad.nn import functional_losses as FL
from gpugrad.nn import loss as L

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
# Fixed shapes with size-1 and 0-d cases, and a few drawn at random (seeded).
_rng = np.random.default_rng(123)
SHAPES = [(3, 4), (1,), (), (2, 1, 3), (4, 1)] + [
    tuple(int(s) for s in _rng.integers(1, 5, size=_rng.integers(1, 4))) for _ in range(3)
]

# (id, function name, keyword arguments, kind of data)
CASES = [
    ("l1", "l1_loss", {}, "reg"),
    ("smooth_l1", "smooth_l1_loss", {}, "reg"),
    ("smooth_l1_beta0.5", "smooth_l1_loss", {"beta": 0.5}, "reg"),
    ("smooth_l1_beta0", "smooth_l1_loss", {"beta": 0.0}, "reg"),
    ("huber", "huber_loss", {}, "reg"),
    ("huber_delta2.5", "huber_loss", {"delta": 2.5}, "reg"),
    ("kl", "kl_div", {}, "kl"),
    ("kl_log_target", "kl_div", {"log_target": True}, "kl_log"),
    ("bce", "binary_cross_entropy", {}, "bce"),
]


def data(kind, shape, dtype, seed=0):
    """(input, target) arrays for a loss: regression values spread over both sides of
    beta/delta; log-probabilities and probabilities with exact zeros for kl_div; BCE
    probabilities with targets of exactly 0 and 1 among others."""
    rng = np.random.default_rng(seed)
    if kind == "reg":
        x, t = 2 * rng.standard_normal(shape), 2 * rng.standard_normal(shape)
    elif kind == "kl":
        x = np.log(rng.uniform(0.05, 1, shape))
        t = rng.uniform(0, 1, shape)
        t = np.where(rng.random(shape) < 0.3, 0.0, t)
    elif kind == "kl_log":
        x, t = np.log(rng.uniform(0.05, 1, shape)), np.log(rng.uniform(0.05, 1, shape))
    else:
        x = rng.uniform(0.02, 0.98, shape)
        t = rng.uniform(0, 1, shape)
        t = np.where(rng.random(shape) < 0.3, np.round(t), t)
    return np.asarray(x, dtype=dtype), np.asarray(t, dtype=dtype)


def quiet(fn, *args, **kwargs):
    # kl_div's 'mean' and the size-mismatch warnings are tested on their own.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def both(name, x, t, grads=(True, True), **kwargs):
    """The loss on gpugrad and torch leaves; returns (ours, theirs, leaves, torch leaves)."""
    torch = pytest.importorskip("torch")
    gx = gg.tensor(x, requires_grad=grads[0])
    gt = gg.tensor(t, requires_grad=grads[1])
    tx = torch.tensor(x, requires_grad=grads[0])
    tt = torch.tensor(t, requires_grad=grads[1])
    kw_g = {k: (gg.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    kw_t = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    ours = quiet(getattr(FL, name), gx, gt, **kw_g)
    theirs = quiet(getattr(torch.nn.functional, name), tx, tt, **kw_t)
    return ours, theirs, (gx, gt), (tx, tt)


def backward_both(ours, theirs, seed=7):
    torch = pytest.importorskip("torch")
    w = np.random.default_rng(seed).standard_normal(ours.shape).astype(ours.dtype)
    ours.backward(gg.tensor(w))
    theirs.backward(torch.tensor(w))


def assert_close(g, t, dtype):
    np.testing.assert_allclose(np.asarray(g), np.asarray(t), **TOL[dtype])


# ----------------------------------------------------------------------------- against torch


def _reductions(name):
    return ["none", "mean", "sum"] + (["batchmean"] if name == "kl_div" else [])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_value_and_gradients_match_torch(case, dtype):
    _, name, kwargs, kind = case
    for reduction in _reductions(name):
        for k, shape in enumerate(SHAPES):
            x, t = data(kind, shape, dtype, seed=k)
            ours, theirs, (gx, gt), (tx, tt) = both(name, x, t, reduction=reduction, **kwargs)
            assert ours.shape == tuple(theirs.shape), (reduction, shape)
            assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
            assert_close(ours.numpy(), theirs.detach().numpy(), dtype)
            backward_both(ours, theirs)
            assert_close(gx.grad.numpy(), tx.grad.numpy(), dtype)
            tgrad = tt.grad.numpy()
            if kind == "kl":
                # PyTorch's xlogy gives NaN for d/dtarget at target 0 (test_kl_div_zero_target
                # checks ours there); everywhere else the two agree.
                assert np.isfinite(gt.grad.numpy()).all()
                keep = t != 0
                assert_close(gt.grad.numpy()[keep], tgrad[keep], dtype)
            else:
                assert_close(gt.grad.numpy(), tgrad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_weight_broadcasts_and_takes_the_input_dtype_as_torch(dtype, reduction):
    x, t = data("bce", (2, 3, 4), dtype)
    for w in (np.random.default_rng(1).uniform(0, 2, 4),          # float64: cast to input's
              np.random.default_rng(2).uniform(0, 2, (3, 1)).astype(dtype),
              np.random.default_rng(3).uniform(0, 2, (2, 3, 4)).astype(dtype)):
        ours, theirs, (gx, gt), (tx, tt) = both("binary_cross_entropy", x, t, weight=w,
                                                reduction=reduction)
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
        assert_close(ours.numpy(), theirs.detach().numpy(), dtype)
        backward_both(ours, theirs)
        assert_close(gx.grad.numpy(), tx.grad.numpy(), dtype)
        assert_close(gt.grad.numpy(), tt.grad.numpy(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["l1_loss", "huber_loss"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_weighted_l1_and_huber_match_torch(name, reduction, dtype):
    # PyTorch 2.13's weight: the input's shape; l1's 'mean' is sum(w |d|) / sum(w).
    x, t = data("reg", (3, 4), dtype)
    w = np.random.default_rng(4).uniform(0.1, 2, (3, 4)).astype(dtype)
    ours, theirs, (gx, gt), (tx, tt) = both(name, x, t, weight=w, reduction=reduction)
    assert_close(ours.numpy(), theirs.detach().numpy(), dtype)
    backward_both(ours, theirs)
    assert_close(gx.grad.numpy(), tx.grad.numpy(), dtype)
    assert_close(gt.grad.numpy(), tt.grad.numpy(), dtype)


@pytest.mark.parametrize("name,kwargs", [("l1_loss", {}), ("smooth_l1_loss", {"beta": 0.7}),
                                         ("huber_loss", {"delta": 0.7})])
@pytest.mark.parametrize("shapes", [((3, 4), (4,)), ((2, 1, 3), (4, 3)), ((1,), (2, 2)),
                                    ((), (3,))])
def test_regression_losses_broadcast_with_a_warning_as_torch(name, kwargs, shapes):
    x = data("reg", shapes[0], np.float64)[0]
    t = data("reg", shapes[1], np.float64, seed=1)[1]
    with pytest.warns(UserWarning, match="different to the input size"):
        getattr(FL, name)(gg.tensor(x), gg.tensor(t), **kwargs)
    for reduction in ("none", "sum"):
        ours, theirs, (gx, gt), (tx, tt) = both(name, x, t, reduction=reduction, **kwargs)
        assert ours.shape == tuple(theirs.shape)
        assert_close(ours.numpy(), theirs.detach().numpy(), np.float64)
        backward_both(ours, theirs)
        assert_close(gx.grad.numpy(), tx.grad.numpy(), np.float64)
        assert_close(gt.grad.numpy(), tt.grad.numpy(), np.float64)


@pytest.mark.parametrize("shapes", [((2, 3), (3,)), ((3,), (2, 3)), ((4, 1), (1, 5))])
@pytest.mark.parametrize("reduction", ["none", "batchmean", "sum"])
def test_kl_div_broadcasts_silently_and_batchmean_uses_the_input_batch(shapes, reduction):
    x = data("kl", shapes[0], np.float64)[0]
    t = data("kl", shapes[1], np.float64, seed=1)[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no size warning, as in PyTorch
        FL.kl_div(gg.tensor(x), gg.tensor(t), reduction=reduction)
    ours, theirs, (gx, _), (tx, _) = both("kl_div", x, t, reduction=reduction)
    assert ours.shape == tuple(theirs.shape)
    assert_close(ours.numpy(), theirs.detach().numpy(), np.float64)
    backward_both(ours, theirs)
    assert_close(gx.grad.numpy(), tx.grad.numpy(), np.float64)


@pytest.mark.parametrize("name,a,b", [
    ("l1_loss", np.float32, np.float64), ("l1_loss", np.float64, np.int64),
    ("l1_loss", np.int64, np.float32), ("l1_loss", np.float32, np.int32),
    ("smooth_l1_loss", np.float32, np.float64), ("smooth_l1_loss", np.float32, np.bool_),
    ("smooth_l1_loss", np.int64, np.float64),
    ("huber_loss", np.float32, np.float64), ("huber_loss", np.float64, np.int64),
    ("huber_loss", np.float32, np.bool_),
    ("kl_div", np.float32, np.float64), ("kl_div", np.float64, np.float32),
])
def test_mixed_dtypes_promote_as_torch(name, a, b):
    torch = pytest.importorskip("torch")
    x = np.array([0.2, 1.0, 0.0, 0.7])
    t = np.array([0.5, 0.0, 1.0, 0.7])
    ours = quiet(getattr(FL, name), gg.tensor(x.astype(a)), gg.tensor(t.astype(b)))
    theirs = quiet(getattr(torch.nn.functional, name), torch.tensor(x.astype(a)),
                   torch.tensor(t.astype(b)))
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-6)


@pytest.mark.parametrize("name,kind", [("l1_loss", "reg"), ("smooth_l1_loss", "reg"),
                                       ("kl_div", "kl"), ("binary_cross_entropy", "bce")])
@pytest.mark.parametrize("flags", [dict(size_average=False), dict(reduce=False),
                                   dict(size_average=True, reduce=True),
                                   dict(size_average=False, reduce=True)])
def test_legacy_size_average_and_reduce_as_torch(name, kind, flags):
    x, t = data(kind, (3, 4), np.float64)
    ours, theirs, (gx, _), (tx, _) = both(name, x, t, grads=(True, False), **flags)
    assert ours.shape == tuple(theirs.shape)
    assert_close(ours.numpy(), theirs.detach().numpy(), np.float64)
    backward_both(ours, theirs)
    assert_close(gx.grad.numpy(), tx.grad.numpy(), np.float64)


# ----------------------------------------------------------------------------- gradcheck


def _leaves(*arrays):
    return [gg.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in arrays]


# The data avoid the kinks (|d| = 0 and |d| = beta) by far more than gradcheck's step.
GRAD_CASES = [c for c in CASES if c[0] != "kl"] + [
    ("kl_positive_target", "kl_div", {}, "kl_pos"),
]


def _smooth_data(kind, shape):
    if kind == "kl_pos":
        rng = np.random.default_rng(3)
        return np.log(rng.uniform(0.05, 1, shape)), rng.uniform(0.1, 1, shape)
    x, t = data(kind, shape, np.float64, seed=3)
    if kind == "bce":
        t = np.random.default_rng(4).uniform(0.05, 0.95, shape)
    return x, t


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_gradcheck_and_gradgradcheck(case):
    _, name, kwargs, kind = case
    fn = getattr(FL, name)
    x, t = _smooth_data(kind, (2, 3))
    for reduction in _reductions(name):
        def f(a, b, reduction=reduction):
            return quiet(fn, a, b, reduction=reduction, **kwargs)

        assert gradcheck(f, _leaves(x, t))
        assert gradgradcheck(f, _leaves(x, t))


def test_kl_div_gradcheck_in_the_input_with_zero_targets():
    x, t = data("kl", (3, 4), np.float64)
    assert (t == 0).any()
    target = gg.tensor(t)
    for reduction in ("none", "batchmean"):
        def f(a, reduction=reduction):
            return FL.kl_div(a, target, reduction=reduction)

        assert gradcheck(f, _leaves(x))
        assert gradgradcheck(f, _leaves(x))


def test_bce_weight_gradcheck():
    x, t = _smooth_data("bce", (2, 3))
    w = gg.tensor(np.array([0.5, 2.0, 1.5]))

    def f(a, b):
        return FL.binary_cross_entropy(a, b, weight=w)

    assert gradcheck(f, _leaves(x, t))
    assert gradgradcheck(f, _leaves(x, t))


# ----------------------------------------------------------------------------- edge values


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_div_zero_target_gives_zero_terms_and_no_nan(dtype):
    x = np.array([-1.0, -2.0, -0.5, -3.0, -0.1], dtype=dtype)
    t = np.array([0.0, 0.3, 0.0, 0.7, 0.0], dtype=dtype)
    ours, theirs, (gx, gt), (tx, tt) = both("kl_div", x, t, reduction="none")
    value = ours.numpy()
    assert (value[t == 0] == 0).all()
    assert_close(value, theirs.detach().numpy(), dtype)
    ours.sum().backward()
    theirs.sum().backward()
    assert np.isfinite(gx.grad.numpy()).all() and np.isfinite(gt.grad.numpy()).all()
    assert_close(gx.grad.numpy(), tx.grad.numpy(), dtype)  # -target: 0 where it is 0
    # d/dtarget = log(t) + 1 - x where t > 0 (as PyTorch); where t == 0 the t log t term
    # contributes nothing, leaving -x (PyTorch: NaN).
    keep = t != 0
    assert_close(gt.grad.numpy()[keep], tt.grad.numpy()[keep], dtype)
    assert_close(gt.grad.numpy()[~keep], -x[~keep], dtype)


def test_kl_div_negative_target_is_nan_as_torch():
    out = quiet(FL.kl_div, gg.tensor([-1.0, -1.0]), gg.tensor([-0.5, 0.5]), reduction="none")
    assert np.isnan(out.numpy()[0]) and np.isfinite(out.numpy()[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_at_zero_and_one_is_finite_as_torch(dtype):
    x = np.array([0.0, 1.0, 0.0, 1.0, 0.5, 0.0], dtype=dtype)
    t = np.array([0.0, 1.0, 1.0, 0.0, 0.5, 0.25], dtype=dtype)
    ours, theirs, (gx, gt), (tx, tt) = both("binary_cross_entropy", x, t, reduction="none")
    np.testing.assert_allclose(ours.numpy()[:4], [0, 0, 100, 100])  # each log clamped at -100
    assert_close(ours.numpy(), theirs.detach().numpy(), dtype)
    ours.sum().backward()
    theirs.sum().backward()
    # d/dx = (x - t) / max(x (1 - x), 1e-12): finite, +-1e12 at the saturated ends.
    assert np.isfinite(gx.grad.numpy()).all()
    assert_close(gx.grad.numpy(), tx.grad.numpy(), dtype)
    # d/dt = log(1 - x) - log(x), unclamped in PyTorch: +-inf at x = 0 / 1.
    assert_close(gt.grad.numpy(), tt.grad.numpy(), dtype)


def test_bce_clamps_each_log_at_minus_100_as_torch():
    x = np.array([1e-60, 1 - 1e-17, 1e-30])  # log(1e-60) = -138 -> -100; 1 - 1e-17 == 1.0
    t = np.array([1.0, 0.0, 1.0])
    ours, theirs, (gx, _), (tx, _) = both("binary_cross_entropy", x, t, grads=(True, False),
                                          reduction="sum")
    assert_close(ours.numpy(), theirs.detach().numpy(), np.float64)
    ours.backward()
    theirs.backward()
    assert_close(gx.grad.numpy(), tx.grad.numpy(), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,param", [("smooth_l1_loss", "beta"), ("huber_loss", "delta")])
@pytest.mark.parametrize("b", [1.0, 0.5, 2.0])
def test_boundary_abs_d_equal_to_beta_as_torch(name, param, b, dtype):
    """|d| == beta exactly: value, gradient and second derivative as PyTorch's (the linear
    branch: slope +-1 (smooth_l1) or +-delta (huber), curvature 0)."""
    torch = pytest.importorskip("torch")
    t = np.array([0.0, 0.0, 1.0, -3.0, 0.25], dtype=dtype)
    x = t + np.array([b, -b, b, -b, 0.0], dtype=dtype)
    assert (np.abs(x - t)[:4] == b).all()
    kwargs = {param: b}
    ours, theirs, (gx, _), (tx, _) = both(name, x, t, grads=(True, False), reduction="none",
                                          **kwargs)
    assert_close(ours.numpy(), theirs.detach().numpy(), dtype)
    (g,) = grad([ours.sum()], [gx], create_graph=True)
    (tg,) = torch.autograd.grad(theirs.sum(), tx, create_graph=True)
    assert_close(g.numpy(), tg.detach().numpy(), dtype)
    slope = 1.0 if name == "smooth_l1_loss" else b
    np.testing.assert_array_equal(g.numpy()[:4], [slope, -slope, slope, -slope])
    (gg_,) = grad([g.sum()], [gx])
    (tgg,) = torch.autograd.grad(tg.sum(), tx)
    assert_close(gg_.numpy(), tgg.numpy(), dtype)
    assert (gg_.numpy()[:4] == 0).all()


def test_l1_gradient_is_zero_where_input_equals_target():
    x = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    FL.l1_loss(x, gg.tensor([1.0, 0.0, 5.0]), reduction="sum").backward()
    assert x.grad.tolist() == [0.0, 1.0, -1.0]


def test_kl_div_warns_for_mean_only():
    x, t = gg.tensor([-1.0, -2.0]), gg.tensor([0.5, 0.5])
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        FL.kl_div(x, t)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for reduction in ("batchmean", "sum", "none"):
            FL.kl_div(x, t, reduction=reduction)
        FL.kl_div(x, t, size_average=True)  # legacy flags: no 'mean' warning
        L.KLDivLoss()  # warns when called, not when built
    assert FL.kl_div(gg.tensor(-1.0), gg.tensor(0.5), reduction="batchmean").item() == \
        pytest.approx(0.5 * (np.log(0.5) + 1.0))  # 0-d: batchmean is the sum


# ----------------------------------------------------------------------------- errors


def _tag_cuda(t):
    # Device checks compare only the tag, so a CPU tensor tagged cuda:0 tests them anywhere.
    t.device = gg.device("cuda", 0)
    return t


def test_errors():
    z, o = gg.zeros(2), gg.ones(2)
    for name in ("l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "binary_cross_entropy"):
        fn = getattr(FL, name)
        with pytest.raises(ValueError, match=f"{name}: bogus is not a valid value"):
            fn(z, z, reduction="bogus")
        with pytest.raises(TypeError, match=f"{name}: input must be a gpugrad Tensor"):
            quiet(fn, [0.5, 0.5], z)
        with pytest.raises(TypeError, match=f"{name}: target must be a gpugrad Tensor"):
            quiet(fn, z, np.zeros(2))
        with pytest.raises(RuntimeError, match="cpu.*cuda:0"):
            quiet(fn, gg.zeros(2), _tag_cuda(gg.zeros(2)))
    with pytest.raises(ValueError, match="expected one of none, batchmean, sum, mean"):
        FL.kl_div(z, z, reduction="elementwise")
    with pytest.raises(RuntimeError, match="negative values for beta, got -1"):
        FL.smooth_l1_loss(z, z, beta=-1.0)
    for delta in (0.0, -2.0):
        with pytest.raises(RuntimeError, match="non-positive values for delta"):
            FL.huber_loss(z, z, delta=delta)
    # dtypes, as PyTorch refuses them
    i = gg.tensor([0, 1])
    with pytest.raises(RuntimeError, match="bool"):
        FL.l1_loss(z, gg.tensor([True, False]))
    with pytest.raises(RuntimeError, match="floating point"):
        FL.smooth_l1_loss(i, i)
    with pytest.raises(RuntimeError, match="floating point input, got int64"):
        FL.huber_loss(i, z)
    with pytest.raises(RuntimeError, match="integral inputs not supported"):
        FL.kl_div(z, i, reduction="sum")
    with pytest.raises(RuntimeError, match="floating point input, got int64"):
        FL.binary_cross_entropy(i, i)
    with pytest.raises(RuntimeError, match="target of the input's dtype float32, got float64"):
        FL.binary_cross_entropy(z, gg.zeros(2, dtype=gg.float64))
    # weights
    with pytest.raises(ValueError, match=r"same size, got weight of shape \(3,\)"):
        FL.l1_loss(z, z, weight=gg.ones(3))
    with pytest.raises(ValueError, match="same size"):
        FL.huber_loss(gg.zeros(2, 3), gg.zeros(2, 3), weight=gg.ones(3))
    with pytest.raises(RuntimeError, match=r"weight of shape \(4, 2\) does not broadcast"):
        FL.binary_cross_entropy(o * 0.5, o, weight=gg.ones(4, 2))
    # BCE: same shapes, values in [0, 1] (NaN too is refused, as PyTorch)
    with pytest.raises(ValueError, match=r"target size \(2,\) that is different to the input "
                                         r"size \(1, 2\)"):
        FL.binary_cross_entropy(gg.zeros(1, 2), z)
    for bad in (1.5, -0.25, float("nan")):
        with pytest.raises(RuntimeError, match=f"elements of input should be between 0 and 1, "
                                               f"got {bad}"):
            FL.binary_cross_entropy(gg.tensor([0.5, bad]), o)
        with pytest.raises(RuntimeError, match="elements of target should be between 0 and 1"):
            FL.binary_cross_entropy(o * 0.5, gg.tensor([bad, 0.5]))


# ----------------------------------------------------------------------------- modules


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("module,kind,kwargs", [
    ("L1Loss", "reg", {}),
    ("L1Loss", "reg", {"reduction": "sum"}),
    ("L1Loss", "reg", {"size_average": False}),
    ("SmoothL1Loss", "reg", {"beta": 0.5, "reduction": "none"}),
    ("HuberLoss", "reg", {"delta": 2.0}),
    ("KLDivLoss", "kl", {"reduction": "batchmean"}),
    ("KLDivLoss", "kl_log", {"reduction": "sum", "log_target": True}),
    ("KLDivLoss", "kl", {"reduce": False}),
    ("BCELoss", "bce", {}),
    ("BCELoss", "bce", {"weight": "w", "reduction": "sum"}),
])
def test_modules_match_torch(module, kind, kwargs, dtype):
    torch = pytest.importorskip("torch")
    x, t = data(kind, (3, 4), dtype)
    w = np.random.default_rng(9).uniform(0.5, 2, 4).astype(dtype)
    kw_g = {k: (gg.tensor(w) if v == "w" else v) for k, v in kwargs.items()}
    kw_t = {k: (torch.tensor(w) if v == "w" else v) for k, v in kwargs.items()}
    ours = getattr(L, module)(**kw_g)
    theirs = quiet(getattr(torch.nn, module), **kw_t)
    assert ours.reduction == theirs.reduction
    gx, tx = gg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yg, yt = quiet(ours, gx, gg.tensor(t)), quiet(theirs, tx, torch.tensor(t))
    assert_close(yg.numpy(), yt.detach().numpy(), dtype)
    backward_both(yg, yt)
    assert_close(gx.grad.numpy(), tx.grad.numpy(), dtype)
    if "weight" in kwargs:
        assert set(ours.state_dict()) == {"weight"}


def test_module_arguments():
    assert L.SmoothL1Loss(beta=0.3).beta == 0.3 and L.HuberLoss(delta=3.0).delta == 3.0
    assert L.KLDivLoss(log_target=True).log_target is True
    assert L.KLDivLoss(size_average=False).reduction == "sum"
    assert L.HuberLoss(reduction="none").reduction == "none"
    for module in (L.L1Loss, L.SmoothL1Loss, L.HuberLoss, L.BCELoss):
        with pytest.raises(ValueError, match="batchmean is not a valid value for reduction"):
            module(reduction="batchmean")
    with pytest.raises(ValueError, match="kl_div: sums is not a valid value"):
        L.KLDivLoss(reduction="sums")


def test_a_weight_that_is_not_a_tensor_is_a_type_error_naming_the_op():
    z = gg.zeros(4)
    for name in ("l1_loss", "huber_loss", "binary_cross_entropy"):
        with pytest.raises(TypeError, match=f"{name}: weight must be a gpugrad Tensor"):
            getattr(FL, name)(z, z, weight=[1.0] * 4)
