"""interpolate and the Upsample modules against PyTorch: values and gradients of every mode
(float32 and float64; integer and fractional scale factors, up and down; explicit sizes;
align_corners both ways; recompute_scale_factor; non-square and size-1 dims), gradcheck and
gradgradcheck, the modules' reprs, and errors."""

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.autograd import gradcheck, gradgradcheck
from gpugrad.nn.functional_interpolate import interpolate
from gpugrad.nn.upsampling import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d

TOL = {np.float64: {"rtol": 1e-12, "atol": 1e-12}, np.float32: {"rtol": 1e-5, "atol": 1e-6}}

MODES_4D = [("nearest", None), ("nearest-exact", None), ("bilinear", False), ("bilinear", True)]
MODES_3D = [("nearest", None), ("nearest-exact", None), ("linear", False), ("linear", True)]

# (input shape, keyword arguments): sizes, scale factors up and down, integer and fractional,
# per dim, recompute_scale_factor, size-1 dims on either side, output == input with a scale
# factor that is not 1 (PyTorch copies), output == 2 * input with one that is not 2.
CASES_4D = [
    ((2, 3, 4, 5), dict(scale_factor=2)),
    ((2, 3, 4, 5), dict(scale_factor=3.0)),
    ((1, 2, 5, 7), dict(scale_factor=0.5)),
    ((1, 2, 6, 7), dict(scale_factor=(1.7, 0.6))),
    ((1, 2, 6, 7), dict(scale_factor=(1.7, 0.6), recompute_scale_factor=True)),
    ((1, 2, 6, 7), dict(scale_factor=(2.3, 1.3), recompute_scale_factor=False)),
    ((1, 2, 5, 3), dict(scale_factor=(1.1, 2.3))),
    ((2, 1, 4, 6), dict(size=(7, 3))),
    ((2, 1, 4, 6), dict(size=5)),
    ((1, 2, 1, 4), dict(size=(3, 9))),
    ((1, 2, 4, 1), dict(size=(2, 3))),
    ((1, 1, 1, 1), dict(size=(3, 2))),
    ((1, 2, 5, 6), dict(size=(1, 1))),
    ((1, 2, 9, 8), dict(scale_factor=1 / 3)),
    ((1, 1, 6, 6), dict(scale_factor=(2.0, 1.0))),
]
CASES_3D = [
    ((2, 3, 5), dict(scale_factor=2)),
    ((2, 3, 7), dict(scale_factor=0.6)),
    ((1, 2, 7), dict(scale_factor=1.3, recompute_scale_factor=True)),
    ((1, 2, 4), dict(size=9)),
    ((1, 2, 1), dict(size=(4,))),
    ((1, 2, 6), dict(size=1)),
]


def _compare(shape, kwargs, mode, align_corners, dtype, seed=0):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape).astype(dtype)
    x, tx = gg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y = interpolate(x, mode=mode, align_corners=align_corners, **kwargs)
    ty = torch.nn.functional.interpolate(tx, mode=mode, align_corners=align_corners, **kwargs)
    assert y.shape == tuple(ty.shape) and y.dtype == dtype
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **TOL[dtype])
    gy = rng.standard_normal(ty.shape).astype(dtype)
    y.backward(gg.tensor(gy))
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode, align_corners", MODES_4D)
@pytest.mark.parametrize("shape, kwargs", CASES_4D)
def test_4d_matches_torch(shape, kwargs, mode, align_corners, dtype):
    _compare(shape, kwargs, mode, align_corners, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode, align_corners", MODES_3D)
@pytest.mark.parametrize("shape, kwargs", CASES_3D)
def test_3d_matches_torch(shape, kwargs, mode, align_corners, dtype):
    _compare(shape, kwargs, mode, align_corners, dtype)


@pytest.mark.parametrize("mode, align_corners", MODES_4D)
def test_many_sizes_and_scales_match_torch(mode, align_corners):
    # A sweep of source-index rules: every output width 1..17 from widths 1..9 by size, and
    # scale factors whose 1 / s differs from in / out (the scale factor is what PyTorch uses).
    for w in range(1, 10):
        for out in range(1, 18):
            _compare((1, 1, 2, w), dict(size=(3, out)), mode, align_corners, np.float64, w)
        for s in (0.7, 1.2, 1.3, 1.5, 2.3, 2.5, 1.999):
            if int(w * s) >= 1:
                for r in (None, True):
                    _compare((1, 1, 1, w), dict(scale_factor=(1.0, s), recompute_scale_factor=r),
                             mode, align_corners, np.float32, w)


def test_known_values():
    # The docstring example of nn.Upsample: 2x2 -> 4x4.
    x = gg.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    np.testing.assert_allclose(interpolate(x, scale_factor=2).numpy()[0, 0],
                               [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
    np.testing.assert_allclose(
        interpolate(x, scale_factor=2, mode="bilinear").numpy()[0, 0],
        [[1.0, 1.25, 1.75, 2.0], [1.5, 1.75, 2.25, 2.5], [2.5, 2.75, 3.25, 3.5],
         [3.0, 3.25, 3.75, 4.0]])
    np.testing.assert_allclose(
        interpolate(x, scale_factor=2, mode="bilinear", align_corners=True).numpy()[0, 0],
        np.array([[3, 4, 5, 6], [5, 6, 7, 8], [7, 8, 9, 10], [9, 10, 11, 12]]) / 3, rtol=1e-6)
    # nearest vs nearest-exact: 3 -> 2 takes sources 0, 1 against 0, 2.
    r = gg.tensor([[[0.0, 1.0, 2.0]]])
    np.testing.assert_array_equal(interpolate(r, size=2).numpy(), [[[0, 1]]])
    np.testing.assert_array_equal(interpolate(r, size=2, mode="nearest-exact").numpy(),
                                  [[[0, 2]]])
    # Repeated sources add up in the gradient.
    r.requires_grad = True
    interpolate(r, size=7).sum().backward()
    np.testing.assert_array_equal(r.grad.numpy(), [[[3, 2, 2]]])


def test_scale_factor_not_recomputed_changes_the_source():
    # 5 * 1.3 = 6.5 -> 6 outputs; scale 1 / 1.3 (default) vs 5 / 6 (recomputed) differ.
    x = gg.tensor(np.arange(5.0).reshape(1, 1, 5))
    kept = interpolate(x, scale_factor=1.3, mode="linear").numpy()
    recomputed = interpolate(x, scale_factor=1.3, mode="linear",
                             recompute_scale_factor=True).numpy()
    sized = interpolate(x, size=6, mode="linear").numpy()
    np.testing.assert_array_equal(recomputed, sized)
    assert not np.allclose(kept, sized)


@pytest.mark.parametrize("mode, align_corners", MODES_4D)
def test_gradcheck_and_gradgradcheck(mode, align_corners):
    rng = np.random.default_rng(3)
    x = gg.tensor(rng.standard_normal((1, 2, 3, 4)), requires_grad=True)
    for kwargs in (dict(size=(5, 3)), dict(scale_factor=(0.7, 1.6))):
        def fn(x):
            return interpolate(x, mode=mode, align_corners=align_corners, **kwargs)
        assert gradcheck(fn, (x,))
        assert gradgradcheck(fn, (x,))


def test_linear_1d_gradgradcheck():
    x = gg.tensor(np.random.default_rng(4).standard_normal((2, 1, 4)), requires_grad=True)
    assert gradcheck(lambda x: interpolate(x, size=7, mode="linear"), (x,))
    assert gradgradcheck(lambda x: interpolate(x, size=3, mode="linear", align_corners=True),
                         (x,))


def test_float16_and_empty_batch_and_integers():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(5).standard_normal((1, 2, 3, 4)).astype(np.float16)
    y = interpolate(gg.tensor(a), size=(5, 6), mode="bilinear")
    ty = torch.nn.functional.interpolate(torch.tensor(a), size=(5, 6), mode="bilinear")
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=2e-3, atol=2e-3)
    assert interpolate(gg.zeros(0, 3, 2, 2), scale_factor=2).shape == (0, 3, 4, 4)
    u = gg.tensor(np.arange(6, dtype=np.uint8).reshape(1, 1, 2, 3))
    np.testing.assert_array_equal(
        interpolate(u, size=(3, 5)).numpy(),
        torch.nn.functional.interpolate(torch.tensor(u.numpy()), size=(3, 5)).numpy())


# ----------------------------------------------------------------------------- modules


MODULES = [
    (lambda m: m.Upsample(scale_factor=2), (1, 2, 3, 4)),
    (lambda m: m.Upsample(scale_factor=(2, 1.5), mode="bilinear"), (1, 2, 3, 4)),
    (lambda m: m.Upsample(size=(5, 2), mode="bilinear", align_corners=True), (1, 2, 3, 4)),
    (lambda m: m.Upsample(size=7, mode="nearest-exact"), (1, 2, 3, 4)),
    (lambda m: m.Upsample(scale_factor=1.3, mode="linear", recompute_scale_factor=True),
     (2, 2, 5)),
    (lambda m: m.UpsamplingNearest2d(scale_factor=3), (1, 1, 2, 3)),
    (lambda m: m.UpsamplingNearest2d(size=(4, 5)), (1, 1, 2, 3)),
    (lambda m: m.UpsamplingBilinear2d(scale_factor=2), (1, 1, 2, 3)),
    (lambda m: m.UpsamplingBilinear2d(size=(3, 7)), (1, 1, 2, 3)),
]


class _Ours:
    Upsample, UpsamplingNearest2d, UpsamplingBilinear2d = (
        Upsample, UpsamplingNearest2d, UpsamplingBilinear2d)


@pytest.mark.parametrize("make, shape", MODULES)
def test_modules_match_torch(make, shape):
    torch = pytest.importorskip("torch")
    module, tmodule = make(_Ours), make(torch.nn)
    assert repr(module) == repr(tmodule)
    for attr in ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor",
                 "name"):
        assert getattr(module, attr) == getattr(tmodule, attr), attr
    a = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(module(gg.tensor(a)).numpy(),
                               tmodule(torch.tensor(a)).numpy(), **TOL[np.float32])
    assert list(module.parameters()) == [] and module.state_dict() == {}


def test_module_reprs():
    assert repr(Upsample(scale_factor=2)) == "Upsample(scale_factor=2.0, mode='nearest')"
    assert repr(UpsamplingBilinear2d(size=(3, 4))) == \
        "UpsamplingBilinear2d(size=(3, 4), mode='bilinear')"
    assert UpsamplingBilinear2d(size=3).align_corners is True


# ----------------------------------------------------------------------------- errors


X = gg.zeros(1, 2, 4, 4)


@pytest.mark.parametrize("call, exc, parts", [
    (lambda: interpolate(X, size=2, scale_factor=2), ValueError,
     ["interpolate: only one of size or scale_factor", "size=2", "scale_factor=2"]),
    (lambda: interpolate(X), ValueError, ["interpolate: either size or scale_factor"]),
    (lambda: interpolate(X, size=(2, 2, 2)), ValueError,
     ["interpolate: input and output must have the same number of spatial dimensions",
      "[4, 4]", "(2, 2, 2)"]),
    (lambda: interpolate(X, scale_factor=(2,)), ValueError,
     ["interpolate: input and scale_factor must have the same number", "[4, 4]", "(2,)"]),
    (lambda: interpolate(X, size=5.0), TypeError, ["interpolate: size must be an int", "5.0"]),
    (lambda: interpolate(X, size=(2, 2.5)), TypeError, ["interpolate: size must be", "2.5"]),
    (lambda: interpolate(X, scale_factor="2"), TypeError,
     ["interpolate: scale_factor must be a float", "'2'"]),
    (lambda: interpolate(X, size=(0, 4)), RuntimeError,
     ["interpolate: input and output sizes should be greater than 0",
      "input (H: 4, W: 4) output (H: 0, W: 4)"]),
    (lambda: interpolate(X, size=(4, -1)), RuntimeError, ["output (H: 4, W: -1)"]),
    (lambda: interpolate(X, scale_factor=0.2), RuntimeError, ["output (H: 0, W: 0)"]),
    (lambda: interpolate(X, scale_factor=-1.0), RuntimeError, ["output (H: -4, W: -4)"]),
    (lambda: interpolate(gg.zeros(1, 1, 0, 3), size=2), RuntimeError,
     ["input (H: 0, W: 3)"]),
    (lambda: interpolate(gg.zeros(1, 1, 0), size=2), RuntimeError, ["input (W: 0)"]),
    (lambda: interpolate(X, size=2, recompute_scale_factor=True), ValueError,
     ["interpolate: recompute_scale_factor is not meaningful with an explicit size"]),
    (lambda: interpolate(X, size=2, align_corners=True), ValueError,
     ["interpolate: align_corners option can only be set", "mode='nearest'"]),
    (lambda: interpolate(X, size=2, mode="nearest-exact", align_corners=False), ValueError,
     ["align_corners option can only be set", "nearest-exact"]),
    (lambda: interpolate(X, size=2, mode="bicubic"), NotImplementedError,
     ["interpolate: mode='bicubic' is not implemented"]),
    (lambda: interpolate(X, size=2, mode="area"), NotImplementedError, ["mode='area'"]),
    (lambda: interpolate(gg.zeros(1, 1, 2, 2, 2), size=2, mode="trilinear"),
     NotImplementedError, ["interpolate: only 3-D (N, C, W) and 4-D", "5-D input"]),
    (lambda: interpolate(X, size=2, mode="trilinear"), NotImplementedError,
     ["got 4D input, but trilinear mode needs 5D input"]),
    (lambda: interpolate(X, size=2, mode="bilinear", antialias=True), NotImplementedError,
     ["interpolate: antialias=True is not implemented"]),
    (lambda: interpolate(X, size=2, antialias=True), ValueError,
     ["interpolate: the antialias option is restricted", "mode='nearest'"]),
    (lambda: interpolate(X, size=2, mode="linear"), NotImplementedError,
     ["interpolate: got 4D input, but linear mode needs 3D input"]),
    (lambda: interpolate(gg.zeros(1, 2, 3), size=2, mode="bilinear"), NotImplementedError,
     ["got 3D input, but bilinear mode needs 4D input"]),
    (lambda: interpolate(X, size=2, mode="cubic"), NotImplementedError,
     ["interpolate: unknown mode 'cubic'"]),
    (lambda: interpolate(gg.zeros(2, 3), size=2), NotImplementedError, ["2-D input"]),
    (lambda: interpolate(np.zeros((1, 1, 2, 2)), size=2), TypeError,
     ["interpolate: input must be a gpugrad Tensor"]),
    (lambda: interpolate(gg.zeros(1, 1, 2, 2, dtype=gg.int64), size=3, mode="bilinear"),
     RuntimeError, ["interpolate: mode='bilinear' expects a floating-point input, got int64"]),
    (lambda: Upsample(size=(2, 2, 2))(X), ValueError, ["same number of spatial dimensions"]),
])
def test_bad_arguments_raise_naming_interpolate(call, exc, parts):
    with pytest.raises(exc) as info:
        call()
    for part in parts:
        assert part in str(info.value), (part, str(info.value))


@pytest.mark.parametrize("kwargs", [
    dict(size=2, scale_factor=2), dict(), dict(size=(0, 4)), dict(size=2, align_corners=True),
    dict(size=(2, 2, 2)), dict(scale_factor=(2,)), dict(size=2, recompute_scale_factor=True),
    dict(size=2, antialias=True),
])
def test_errors_are_the_same_kind_as_torch(kwargs):
    torch = pytest.importorskip("torch")
    with pytest.raises(Exception) as theirs:
        torch.nn.functional.interpolate(torch.zeros(1, 2, 4, 4), **kwargs)
    with pytest.raises(theirs.type):
        interpolate(X, **kwargs)
