"""gelu, silu, mish, leaky_relu, elu, softplus, hardtanh, relu6, hardsigmoid, hardswish and
their modules, against PyTorch: values and gradients in float32 and float64 (at the kinks
too), gradcheck and gradgradcheck, extreme inputs, inplace, reprs and errors."""

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn.functional_activations as FA
from gpugrad.autograd import gradcheck, gradgradcheck
from gpugrad.nn import activation as nn_act

torch = pytest.importorskip("torch")
TF = torch.nn.functional

# name: (call on a functional namespace (FA or torch's F) and an input, kinks). The same
# lambda runs on both because the names and arguments are PyTorch's.
CASES = {
    "gelu": (lambda f, x: f.gelu(x), []),
    "gelu_tanh": (lambda f, x: f.gelu(x, approximate="tanh"), []),
    "silu": (lambda f, x: f.silu(x), []),
    "mish": (lambda f, x: f.mish(x), []),
    "leaky_relu": (lambda f, x: f.leaky_relu(x), [0.0]),
    "leaky_relu_slope": (lambda f, x: f.leaky_relu(x, 0.2), [0.0]),
    "leaky_relu_negative_slope": (lambda f, x: f.leaky_relu(x, negative_slope=-1.5), [0.0]),
    "elu": (lambda f, x: f.elu(x), [0.0]),
    "elu_alpha": (lambda f, x: f.elu(x, alpha=0.4), [0.0]),
    "softplus": (lambda f, x: f.softplus(x), []),
    "softplus_beta_threshold": (lambda f, x: f.softplus(x, beta=2.0, threshold=3.0), [1.5]),
    "softplus_negative_beta": (lambda f, x: f.softplus(x, beta=-0.5, threshold=1.0), [-2.0]),
    "hardtanh": (lambda f, x: f.hardtanh(x), [-1.0, 1.0]),
    "hardtanh_bounds": (lambda f, x: f.hardtanh(x, min_val=-2.5, max_val=0.5), [-2.5, 0.5]),
    "relu6": (lambda f, x: f.relu6(x), [0.0, 6.0]),
    "hardsigmoid": (lambda f, x: f.hardsigmoid(x), [-3.0, 3.0]),
    "hardswish": (lambda f, x: f.hardswish(x), [-3.0, 3.0]),
}
NAMES = list(CASES)
SHAPES = [(3, 4), (1, 5), (2, 1, 3), (4, 1), ()]
TOL = {"float32": {"rtol": 2e-6, "atol": 1e-6}, "float64": {"rtol": 1e-12, "atol": 1e-14}}
# PyTorch's hardsigmoid backward multiplies by float32's 1/6 in float64 too (3e-8 off);
# gpugrad's gradient is the float64 1/6 (checked exactly below).
GRAD_RTOL_FLOAT64 = {"hardsigmoid": 5e-8}


def _compare(name, x, w=None, tol=None):
    """Run case `name` on x in gpugrad and in PyTorch; assert equal values, dtypes and
    gradients (for the weights w)."""
    fn = CASES[name][0]
    tol = tol or TOL[str(x.dtype)]
    gx, tx = gg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = fn(FA, gx), fn(TF, tx)
    assert y.dtype == x.dtype and y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tol)
    w = np.random.default_rng(7).standard_normal(x.shape).astype(x.dtype) if w is None else w
    y.backward(gg.tensor(w))
    ty.backward(torch.tensor(w))
    assert gx.grad.dtype == x.dtype
    if x.dtype == np.float64 and name in GRAD_RTOL_FLOAT64:
        tol = dict(tol, rtol=GRAD_RTOL_FLOAT64[name])
    np.testing.assert_allclose(gx.grad.numpy(), tx.grad.numpy(), **tol)
    return y, gx.grad


def _away_from_kinks(x, kinks, gap=0.05):
    """x with every value within `gap` of a kink pushed out to `gap` (for finite differences)."""
    for k in kinks:
        near = np.abs(x - k) < gap
        x = np.where(near, k + np.where(x >= k, gap, -gap), x)
    return x


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_values_and_gradients_match_torch(name, shape, dtype):
    # Uniform on [-8, 8]: both sides of every kink (0, +-1, +-3, 6, softplus' thresholds).
    x = np.random.default_rng(sum(map(ord, name))).uniform(-8, 8, shape).astype(dtype)
    _compare(name, x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_kinks_take_torchs_gradient(name, dtype):
    kinks = CASES[name][1] or [0.0]
    x = np.array([v + d for v in kinks for d in (-1e-3, 0.0, 1e-3)] + [0.0], dtype)
    _compare(name, x, w=np.ones_like(x))


@pytest.mark.parametrize("name, x, grad", [
    # The gradients at the kinks written out, so a change of both libraries would show.
    ("leaky_relu", [0.0], [0.01]),
    ("elu_alpha", [0.0], [0.4]),
    ("hardtanh", [-1.0, 1.0], [0.0, 0.0]),
    ("relu6", [0.0, 6.0], [0.0, 0.0]),
    ("hardsigmoid", [-3.0, 0.0, 3.0], [0.0, 1 / 6, 0.0]),
    ("hardswish", [-3.0, 3.0], [0.0, 1.0]),
    ("softplus_beta_threshold", [1.5, 1.5000001], [1 / (1 + np.exp(-3.0)), 1.0]),
])
def test_kink_gradients_are_pytorchs_definitions(name, x, grad):
    gx = gg.tensor(x, dtype=gg.float64, requires_grad=True)
    CASES[name][0](FA, gx).sum().backward()
    np.testing.assert_allclose(gx.grad.numpy(), grad, rtol=1e-12)


@pytest.mark.parametrize("shape", [(3, 2), (1, 4), ()], ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_and_gradgradcheck_in_float64(name, shape):
    fn, kinks = CASES[name]
    x = np.random.default_rng(5).uniform(-7, 7, shape)
    gx = gg.tensor(_away_from_kinks(x, kinks), requires_grad=True)
    assert gradcheck(lambda t: fn(FA, t), (gx,))
    assert gradgradcheck(lambda t: fn(FA, t), (gx,))


@pytest.mark.parametrize("name", NAMES)
def test_second_derivative_matches_torch(name):
    # Double backward against PyTorch's own formulas (not only finite differences).
    fn, kinks = CASES[name]
    x = _away_from_kinks(np.linspace(-7, 7, 15), kinks)
    gx, tx = gg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (g,) = gg.autograd.grad(fn(FA, gx).sum(), [gx], create_graph=True)
    (tg,) = torch.autograd.grad(fn(TF, tx).sum(), [tx], create_graph=True)
    # A piecewise-linear gradient may be a constant with no graph (None: zero), in either.
    got = want = np.zeros_like(x)
    if g.requires_grad:
        (gg2,) = gg.autograd.grad((g * g).sum(), [gx], allow_unused=True)
        got = got if gg2 is None else gg2.numpy()
    if tg.requires_grad and name != "hardsigmoid":  # PyTorch: "not implemented" (it is 0)
        (tg2,) = torch.autograd.grad((tg * tg).sum(), [tx], allow_unused=True)
        want = want if tg2 is None else tg2.numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_extreme_float32_inputs_are_finite_and_match_torch(name):
    x = np.array([-1e4, -50.0, -20.0, -0.0, 20.0, 50.0, 1e4], np.float32)
    y, g = _compare(name, x, w=np.ones_like(x), tol={"rtol": 2e-6, "atol": 1e-30})
    assert np.isfinite(y.numpy()).all() and np.isfinite(g.numpy()).all()


@pytest.mark.parametrize("name", NAMES)
def test_float16_keeps_its_dtype_and_torchs_values(name):
    # gpugrad computes in half precision, PyTorch's CPU kernels in float: a few half ulps.
    x = np.linspace(-7, 7, 29).astype(np.float16)
    _compare(name, x, w=np.ones_like(x), tol={"rtol": 2e-3, "atol": 4e-3})


def test_numpy_scalar_arguments_keep_the_inputs_dtype():
    x = gg.tensor([-2.0, -0.3, 0.4, 3.0], dtype=gg.float32)
    f64 = np.float64
    for y in (FA.leaky_relu(x, f64(0.2)), FA.elu(x, f64(0.5)),
              FA.softplus(x, f64(2.0), f64(3.0)), FA.hardtanh(x, f64(-0.5), f64(1.5))):
        assert y.dtype == gg.float32


def test_elu_is_exact_near_zero_as_torchs_expm1():
    # exp(x) - 1 would be off by ~1e-3 relative here in float32; expm1 is not.
    x = np.array([-1e-6, -3e-5, -2e-4], np.float32)
    _compare("elu", x, tol={"rtol": 1e-6, "atol": 0.0})


def test_softplus_stays_finite_where_torchs_overflows():
    # A large threshold: PyTorch's log1p(exp(x)) is inf (NaN gradient) for float32 x > 88.7.
    gx = gg.tensor([95.0, 1e4], dtype=gg.float32, requires_grad=True)
    y = FA.softplus(gx, threshold=1e30)
    y.sum().backward()
    np.testing.assert_array_equal(y.numpy(), [95.0, 1e4])
    np.testing.assert_array_equal(gx.grad.numpy(), [1.0, 1.0])


@pytest.mark.parametrize("name", ["gelu", "silu", "mish", "elu", "softplus", "hardtanh",
                                  "hardsigmoid", "hardswish", "leaky_relu"])
def test_nan_propagates_as_in_torch(name):
    x = np.array([np.nan, 1.0], np.float64)
    y = CASES[name][0](FA, gg.tensor(x)).numpy()
    ty = CASES[name][0](TF, torch.tensor(x)).numpy()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ty))


# ----------------------------------------------------------------------------- inplace

INPLACE = ["silu", "mish", "leaky_relu", "elu", "hardtanh", "relu6", "hardsigmoid", "hardswish"]


@pytest.mark.parametrize("name", INPLACE)
def test_inplace_writes_into_a_tensor_outside_the_graph(name):
    fn = getattr(FA, name)
    x = gg.tensor([-4.0, -0.5, 0.5, 7.0])
    expected = fn(x).numpy().copy()
    assert fn(x, inplace=True) is x
    np.testing.assert_array_equal(x.numpy(), expected)
    leaf = gg.tensor([-4.0, -0.5, 0.5, 7.0], requires_grad=True)
    with gg.no_grad():  # nothing is recorded: written in place, as in PyTorch
        assert fn(leaf, inplace=True) is leaf
    np.testing.assert_array_equal(leaf.detach().numpy(), expected)


@pytest.mark.parametrize("name", INPLACE)
def test_inplace_refuses_a_leaf_that_requires_grad(name):
    x = gg.tensor([1.0, -1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=f"{name}\\(inplace=True\\): a leaf tensor that "
                                           "requires grad"):
        getattr(FA, name)(x, inplace=True)
    np.testing.assert_array_equal(x.detach().numpy(), [1.0, -1.0])  # untouched


@pytest.mark.parametrize("name", INPLACE)
def test_inplace_on_a_recorded_tensor_keeps_gradients_right(name):
    # As F.relu: a recorded non-leaf gets a new tensor, and its own values stay intact for
    # the ops that saved them (here the product below reads gh again).
    x = np.array([-4.0, -0.5, 0.5, 2.0, 7.0])
    gx, tx = gg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    gh = gx * 1.5
    y = getattr(FA, name)(gh, inplace=True)
    np.testing.assert_array_equal(gh.numpy(), x * 1.5)
    (y * gh).sum().backward()
    th = tx * 1.5
    (getattr(TF, name)(th) * th).sum().backward()
    np.testing.assert_allclose(y.numpy(), getattr(TF, name)(torch.tensor(x * 1.5)).numpy(),
                               rtol=1e-12)
    np.testing.assert_allclose(gx.grad.numpy(), tx.grad.numpy(),
                               rtol=GRAD_RTOL_FLOAT64.get(name, 1e-12))


# ----------------------------------------------------------------------------- integer inputs


@pytest.mark.parametrize("name", ["gelu", "silu", "mish", "leaky_relu", "elu", "softplus",
                                  "hardsigmoid", "hardswish"])
@pytest.mark.parametrize("dtype", [gg.int64, gg.uint8, gg.bool])
def test_integer_inputs_are_refused_as_in_torch(name, dtype):
    with pytest.raises(RuntimeError, match=f"{name}: expected a floating-point input, "
                                           f"got {dtype}"):
        getattr(FA, name)(gg.tensor([1, 0], dtype=dtype))


@pytest.mark.parametrize("name, args", [("hardtanh", ()), ("hardtanh", (-1.5, 2.7)),
                                        ("hardtanh", (-0.5, 2.7)), ("relu6", ())])
@pytest.mark.parametrize("dtype", ["int64", "int32", "int8"])
def test_hardtanh_and_relu6_clamp_integers_as_torch(name, args, dtype):
    x = np.array([-9, -2, -1, 0, 1, 2, 3, 7], dtype)
    y = getattr(FA, name)(gg.tensor(x), *args)
    ty = getattr(TF, name)(torch.tensor(x), *args)
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(y.numpy(), ty.numpy())


def test_relu6_on_uint8_and_hardtanh_refusals_follow_torch():
    x = np.array([0, 3, 200], np.uint8)
    np.testing.assert_array_equal(FA.relu6(gg.tensor(x)).numpy(), [0, 3, 6])
    with pytest.raises(RuntimeError, match="hardtanh: cannot do hardtanh on an unsigned type "
                                           "with negative limits"):
        FA.hardtanh(gg.tensor(x))
    for name in ("hardtanh", "relu6"):
        with pytest.raises(RuntimeError, match=f"{name}: Bool inputs not supported"):
            getattr(FA, name)(gg.tensor([True, False]))


# ----------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("name", ["gelu", "silu", "mish", "leaky_relu", "elu", "softplus",
                                  "hardtanh", "relu6", "hardsigmoid", "hardswish"])
def test_a_non_tensor_input_names_the_op(name):
    with pytest.raises(TypeError, match=f"{name}: input must be a gpugrad Tensor, got list"):
        getattr(FA, name)([1.0, 2.0])
    with pytest.raises(TypeError, match=f"{name}: input must be a gpugrad Tensor, got ndarray"):
        getattr(FA, name)(np.ones(2))


def test_bad_arguments_name_the_op_and_argument():
    x = gg.tensor([1.0, -1.0])
    with pytest.raises(ValueError, match="gelu: approximate argument must be either none or "
                                         "tanh, got 'Tanh'"):
        FA.gelu(x, approximate="Tanh")
    with pytest.raises(ValueError, match="gelu: approximate.*got None"):
        FA.gelu(x, approximate=None)
    with pytest.raises(ValueError, match="hardtanh: min_val cannot be greater than max_val"):
        FA.hardtanh(x, 1.0, -1.0)
    with pytest.raises(TypeError, match="leaky_relu: negative_slope must be a number, got str"):
        FA.leaky_relu(x, "0.1")
    with pytest.raises(TypeError, match="elu: alpha must be a number, got NoneType"):
        FA.elu(x, None)
    with pytest.raises(TypeError, match="softplus: threshold must be a number, got list"):
        FA.softplus(x, 1.0, [20])
    with pytest.raises(TypeError, match="hardtanh: max_val must be a number, got str"):
        FA.hardtanh(x, -1.0, "1")
    # min_val == max_val is allowed, as in PyTorch: everything becomes that value.
    np.testing.assert_array_equal(FA.hardtanh(x, 0.5, 0.5).numpy(), [0.5, 0.5])


# ----------------------------------------------------------------------------- modules

MODULES = [
    ("GELU", (), {}), ("GELU", ("tanh",), {}), ("GELU", (), {"approximate": "none"}),
    ("SiLU", (), {}), ("SiLU", (True,), {}), ("Mish", (), {}), ("Mish", (), {"inplace": True}),
    ("LeakyReLU", (), {}), ("LeakyReLU", (0.2, True), {}), ("LeakyReLU", (-1,), {}),
    ("ELU", (), {}), ("ELU", (0.5,), {"inplace": True}),
    ("Softplus", (), {}), ("Softplus", (2, 10), {}), ("Softplus", (), {"beta": 0.5}),
    ("Hardtanh", (), {}), ("Hardtanh", (-2, 3, True), {}), ("Hardtanh", (-0.5,), {}),
    ("ReLU6", (), {}), ("ReLU6", (True,), {}),
    ("Hardsigmoid", (), {}), ("Hardsigmoid", (True,), {}),
    ("Hardswish", (), {}), ("Hardswish", (), {"inplace": True}),
]


@pytest.mark.parametrize("cls, args, kwargs", MODULES)
def test_modules_match_torch_repr_attributes_and_output(cls, args, kwargs):
    m = getattr(nn_act, cls)(*args, **kwargs)
    tm = getattr(torch.nn, cls)(*args, **kwargs)
    assert repr(m) == repr(tm)
    assert list(m.parameters()) == [] and m.state_dict() == {}
    for attr in ("approximate", "inplace", "negative_slope", "alpha", "beta", "threshold",
                 "min_val", "max_val"):
        assert getattr(m, attr, None) == getattr(tm, attr, None), attr
    x = np.linspace(-7, 7, 12).reshape(3, 4)
    gx = gg.tensor(x, requires_grad=True) * 1.0  # a non-leaf, so inplace=True may record
    tx = torch.tensor(x, requires_grad=True) * 1.0
    np.testing.assert_allclose(m(gx).numpy(), tm(tx).detach().numpy(), rtol=1e-12, atol=1e-15)


def test_module_inplace_flag_reaches_the_function():
    x = gg.tensor([-2.0, 0.5])
    assert nn_act.LeakyReLU(0.5, inplace=True)(x) is x
    np.testing.assert_array_equal(x.numpy(), [-1.0, 0.5])
    y = gg.tensor([-2.0, 0.5])
    out = nn_act.LeakyReLU(0.5)(y)
    assert out is not y and y.numpy().tolist() == [-2.0, 0.5]


def test_hardtanh_accepts_torchs_deprecated_argument_names():
    with pytest.warns(FutureWarning, match="min_value` is deprecated"):
        m = nn_act.Hardtanh(min_value=-2.0)
    with pytest.warns(FutureWarning, match="max_value` is deprecated"):
        m2 = nn_act.Hardtanh(max_value=4.0)
    assert (m.min_val, m.max_val, m2.min_val, m2.max_val) == (-2.0, 1.0, -1.0, 4.0)


@pytest.mark.parametrize("make, error, match", [
    (lambda: nn_act.GELU("exact"), ValueError,
     "GELU: approximate must be either 'none' or 'tanh', got 'exact'"),
    (lambda: nn_act.LeakyReLU("a"), TypeError, "LeakyReLU: negative_slope must be a number"),
    (lambda: nn_act.ELU(alpha=None), TypeError, "ELU: alpha must be a number, got NoneType"),
    (lambda: nn_act.Softplus(threshold="20"), TypeError, "Softplus: threshold must be a number"),
    (lambda: nn_act.Hardtanh(1.0, 1.0), ValueError,
     r"Hardtanh: max_val \(1.0\) must be greater than min_val \(1.0\)"),
    (lambda: nn_act.Hardtanh(2, 1), ValueError, "Hardtanh: max_val"),
])
def test_module_constructors_name_the_module_and_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_modules_run_in_a_sequential_and_train():
    from gpugrad.nn import Linear, Sequential

    gg.manual_seed(0)
    model = Sequential(Linear(3, 4), nn_act.GELU(), Linear(4, 4), nn_act.Mish(),
                       Linear(4, 4), nn_act.Hardswish(), Linear(4, 1), nn_act.Softplus())
    x = gg.randn(5, 3)
    model(x).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)


def test_tanh_gelu_in_float16_has_finite_gradients_where_x_cubed_overflows():
    torch = pytest.importorskip("torch")
    xa = np.array([-300.0, -100.0, -2.0, 0.5, 100.0, 300.0], dtype=np.float16)
    x = gg.tensor(xa, requires_grad=True)
    tx = torch.tensor(xa, requires_grad=True)
    y = FA.gelu(x, approximate="tanh")
    ty = torch.nn.functional.gelu(tx, approximate="tanh")
    assert y.dtype == gg.float16
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-3)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-2, atol=1e-3)
