"""conv2d (gpugrad.ops.conv) under both algorithms: gradcheck, gradgradcheck, PyTorch, and
which algorithm runs when."""

import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import kernels
from gpugrad.autograd import gradcheck, gradgradcheck
from gpugrad.ops import conv as conv_op
from gpugrad.ops import conv_gemm, conv_winograd

# (input shape, weight shape, bias?, stride, padding, dilation, groups)
CASES = [
    ((2, 3, 5, 6), (4, 3, 3, 3), True, 1, 1, 1, 1),
    ((1, 2, 4, 4), (3, 2, 3, 3), False, 1, 0, 1, 1),
    ((2, 4, 5, 3), (4, 2, 3, 3), True, 1, (2, 1), 1, 2),  # groups, asymmetric padding
    ((1, 1, 1, 1), (2, 1, 3, 3), True, 1, 1, 1, 1),  # a 1x1 image, all padding
    ((2, 2, 6, 5), (3, 2, 3, 3), True, 1, 3, 1, 1),  # padding beyond the kernel
    ((2, 3, 7, 6), (2, 3, 3, 2), True, (2, 1), (1, 0), 1, 1),  # stride, non-square: im2col
    ((1, 2, 7, 7), (2, 2, 3, 3), False, 1, 2, 2, 1),  # dilation: im2col
    ((3, 5, 6), (2, 3, 3, 3), True, 1, 1, 1, 1),  # unbatched
]
ALGORITHMS = ["im2col", "winograd"]


def _inputs(x_shape, w_shape, bias, seed):
    rng = np.random.default_rng(seed)
    x = gg.tensor(rng.standard_normal(x_shape), requires_grad=True)
    w = gg.tensor(rng.standard_normal(w_shape), requires_grad=True)
    b = gg.tensor(rng.standard_normal(w_shape[0]), requires_grad=True) if bias else None
    return x, w, b


def _conv(stride, padding, dilation, groups):
    def fn(x, w, b=None):
        return gg.nn.functional.conv2d(x, w, b, stride=stride, padding=padding,
                                       dilation=dilation, groups=groups)
    return fn


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("x_shape, w_shape, bias, stride, padding, dilation, groups", CASES)
def test_conv2d_gradcheck_and_gradgradcheck(algorithm, x_shape, w_shape, bias, stride, padding,
                                            dilation, groups):
    inputs = [t for t in _inputs(x_shape, w_shape, bias, 0) if t is not None]
    fn = _conv(stride, padding, dilation, groups)
    with kernels.conv_algorithm_mode(algorithm):
        assert gradcheck(fn, inputs)
        assert gradgradcheck(fn, inputs)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 2e-5)])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("x_shape, w_shape, bias, stride, padding, dilation, groups", CASES)
def test_conv2d_matches_torch(algorithm, dtype, tol, x_shape, w_shape, bias, stride, padding,
                              dilation, groups):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(x_shape).astype(dtype),
              rng.standard_normal(w_shape).astype(dtype)]
    if bias:
        arrays.append(rng.standard_normal(w_shape[0]).astype(dtype))
    ours = [gg.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    with kernels.conv_algorithm_mode(algorithm):
        y = gg.nn.functional.conv2d(*ours, **kwargs)
    y_t = torch.nn.functional.conv2d(*theirs, **kwargs)
    np.testing.assert_allclose(y.numpy(), y_t.detach().numpy(), rtol=tol, atol=tol)
    gy = rng.standard_normal(y.shape).astype(dtype)
    with kernels.conv_algorithm_mode(algorithm):
        y.backward(gg.tensor(gy))
    y_t.backward(torch.tensor(gy))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_numpy_integer_geometry_gives_the_int_results(algorithm):
    """stride, padding, dilation and groups as NumPy integers, as PyTorch accepts them."""
    results = []
    for cast in (int, np.int64):
        x, w, b = _inputs((2, 8, 6, 5), (8, 4, 3, 3), True, 5)
        with kernels.conv_algorithm_mode(algorithm):
            y = gg.nn.functional.conv2d(x, w, b, stride=cast(1), padding=(cast(1), 1),
                                        dilation=cast(1), groups=cast(2))
            y.backward(gg.ones(*y.shape))
        results.append((y.numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy()))
    for a, e in zip(*results):
        np.testing.assert_array_equal(a, e)


def test_weight_without_output_channels_raises_as_in_pytorch():
    with pytest.raises(ValueError, match=r"conv2d: expected weight with at least groups=1 output "
                                         r"channels \(dim 0\), got weight of shape \(0, 4, 3, 3\)"):
        gg.nn.functional.conv2d(gg.zeros(1, 4, 5, 5), gg.zeros(0, 4, 3, 3))


def test_winograd_agrees_with_im2col_on_a_real_layer_in_float32():
    """64 channels in and out: Winograd's transforms add a few float32 roundings, no more.
    (This layer takes the blocked passes by default.)"""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 64, 9, 10)).astype(np.float32)
    assert conv_winograd._blocked(x.shape, (64, 64, 3, 3), 1, (9, 10), 4)
    w = (rng.standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)
    gy = rng.standard_normal((4, 64, 9, 10)).astype(np.float32)
    exact = None
    results = {}
    for algorithm in ALGORITHMS:
        xt, wt = gg.tensor(x, requires_grad=True), gg.tensor(w, requires_grad=True)
        with kernels.conv_algorithm_mode(algorithm):
            y = gg.nn.functional.conv2d(xt, wt, padding=1)
            y.backward(gg.tensor(gy))
        results[algorithm] = (y.numpy(), xt.grad.numpy(), wt.grad.numpy())
    xt, wt = gg.tensor(x.astype(np.float64), requires_grad=True), gg.tensor(w.astype(np.float64),
                                                                            requires_grad=True)
    y = gg.nn.functional.conv2d(xt, wt, padding=1)
    y.backward(gg.tensor(gy.astype(np.float64)))
    exact = (y.numpy(), xt.grad.numpy(), wt.grad.numpy())
    for algorithm, got in results.items():
        for g, e in zip(got, exact):
            scale = np.abs(e).max()
            assert np.abs(g - e).max() <= 2e-6 * scale, algorithm


def test_double_backward_through_winograd_matches_im2col():
    """A gradient-penalty style second derivative, both ways, in float64."""
    results = []
    for algorithm in ALGORITHMS:
        x, w, b = _inputs((2, 8, 5, 5), (8, 8, 3, 3), True, 3)
        with kernels.conv_algorithm_mode(algorithm):
            y = gg.nn.functional.conv2d(x, w, b, padding=1)
            (gx,) = gg.autograd.grad((y * y).sum(), (x,), create_graph=True)
            (gx * gx).sum().backward()
        results.append((w.grad.numpy(), b.grad.numpy(), x.grad.numpy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- Winograd's blocked passes
# The blocked, channels-last passes (kernels/conv_winograd_blocked.py), forced whatever the
# rule that picks them by shape would do (test_which_winograd_passes tests the rule).
BLOCKED_CASES = [
    # x shape, w shape, bias, padding, groups
    ((2, 16, 4, 5), (16, 2, 3, 3), True, (1, 0), 8),  # groups; small enough for gradcheck
    ((3, 16, 7, 6), (24, 16, 3, 3), True, 1, 1),  # odd outputs: the last tiles hang over
    ((5, 32, 3, 3), (16, 8, 3, 3), False, 2, 4),  # padding past the kernel
]


@pytest.fixture
def blocked_calls(monkeypatch):
    """Every Winograd pass block by block; counts the blocked passes that ran."""
    calls = {}
    for name in ("forward", "grads", "input_grad", "weight_grad"):
        def counted(*args, _name=name, _fn=getattr(conv_winograd.blocked, name), **kwargs):
            calls[_name] = calls.get(_name, 0) + 1
            return _fn(*args, **kwargs)
        monkeypatch.setattr(conv_winograd.blocked, name, counted)
    with conv_winograd.blocked_passes():
        yield calls


def test_blocked_passes_gradcheck_and_gradgradcheck(blocked_calls):
    x_shape, w_shape, bias, padding, groups = BLOCKED_CASES[0]
    inputs = [t for t in _inputs(x_shape, w_shape, bias, 4) if t is not None]
    fn = _conv(1, padding, 1, groups)
    with kernels.conv_algorithm_mode("winograd"):
        assert gradcheck(fn, inputs)
        assert gradgradcheck(fn, inputs)
    assert blocked_calls["forward"] and blocked_calls["input_grad"]


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 3e-5)])
@pytest.mark.parametrize("x_shape, w_shape, bias, padding, groups", BLOCKED_CASES)
def test_blocked_passes_match_torch(dtype, tol, x_shape, w_shape, bias, padding, groups,
                                    blocked_calls):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(x_shape).astype(dtype),
              (rng.standard_normal(w_shape) * 0.2).astype(dtype)]
    if bias:
        arrays.append(rng.standard_normal(w_shape[0]).astype(dtype))
    ours = [gg.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    with kernels.conv_algorithm_mode("winograd"):
        y = gg.nn.functional.conv2d(*ours, padding=padding, groups=groups)
        gy = rng.standard_normal(y.shape).astype(dtype)
        y.backward(gg.tensor(gy))
    y_t = torch.nn.functional.conv2d(*theirs, padding=padding, groups=groups)
    y_t.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.numpy(), y_t.detach().numpy(), rtol=tol, atol=tol)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=tol, atol=tol)
    assert blocked_calls == {"forward": 1, "grads": 1}


def test_one_gradient_alone_through_the_blocked_passes(blocked_calls):
    """Only x, or only w, needs a gradient: each pass runs on its own (no shared dM)."""
    x_shape, w_shape, bias, padding, groups = BLOCKED_CASES[1]
    results = {}
    for algorithm in ALGORITHMS:
        with kernels.conv_algorithm_mode(algorithm):
            for wanted in ("x", "w"):
                x, w, b = _inputs(x_shape, w_shape, bias, 6)
                x.requires_grad = wanted == "x"
                w.requires_grad = wanted == "w"
                y = gg.nn.functional.conv2d(x, w, b, padding=padding, groups=groups)
                y.sum().backward()
                results[algorithm, wanted] = (x if wanted == "x" else w).grad.numpy()
    for wanted in ("x", "w"):
        np.testing.assert_allclose(results["winograd", wanted], results["im2col", wanted],
                                   rtol=1e-10, atol=1e-10)
    assert blocked_calls == {"forward": 2, "input_grad": 1, "weight_grad": 1}


@pytest.mark.parametrize("forward_whole, backward_whole", [(False, True), (True, False)])
def test_a_backward_follows_its_forwards_passes(forward_whole, backward_whole,
                                                blocked_calls):
    """A whole-batch forward keeps V, which its weight gradient reads (over the whole batch,
    whatever the passes are set to then); a blocked one keeps nothing. Switching the passes
    between forward and backward still gives the right gradients."""
    x_shape, w_shape, bias, padding, groups = BLOCKED_CASES[1]
    expected = None
    for algorithm in ("im2col", "winograd"):
        x, w, b = _inputs(x_shape, w_shape, bias, 7)
        with kernels.conv_algorithm_mode(algorithm):
            with conv_winograd.whole_batch_passes() if forward_whole else contextlib.nullcontext():
                y = gg.nn.functional.conv2d(x, w, b, padding=padding, groups=groups)
            with conv_winograd.whole_batch_passes() if backward_whole else contextlib.nullcontext():
                y.backward(gg.ones(*y.shape, dtype=y.dtype))
        got = (y.numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy())
        if expected is None:
            expected = got
    for a, e in zip(got, expected):
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-10)
    # Blocked where not switched to whole: the forward, or the backward after a forward
    # that kept nothing.
    assert blocked_calls == ({"forward": 1} if backward_whole else {})


def test_passes_can_be_forced_either_way_and_come_back():
    shape, w_shape, out_hw = (32, 128, 7, 7), (128, 128, 3, 3), (7, 7)  # whole by the rule
    assert not conv_winograd._blocked(shape, w_shape, 1, out_hw, 4)
    with conv_winograd.blocked_passes():
        assert conv_winograd._blocked(shape, w_shape, 1, out_hw, 4)
        with conv_winograd.whole_batch_passes():
            assert not conv_winograd._blocked((64, 32, 14, 14), (64, 32, 3, 3), 1, (14, 14), 4)
        assert conv_winograd._blocked(shape, w_shape, 1, out_hw, 4)
    with pytest.raises(RuntimeError), conv_winograd.blocked_passes():
        raise RuntimeError("inside")
    assert not conv_winograd._blocked(shape, w_shape, 1, out_hw, 4)
    assert conv_winograd._blocked((64, 32, 14, 14), (64, 32, 3, 3), 1, (14, 14), 4)


@pytest.mark.parametrize("x_shape, w_shape, groups, out_hw, itemsize, blocked", [
    ((64, 32, 14, 14), (64, 32, 3, 3), 1, (14, 14), 4, True),
    ((2, 16, 28, 28), (16, 16, 3, 3), 1, (28, 28), 4, True),
    ((1, 64, 14, 14), (64, 64, 3, 3), 1, (14, 14), 4, True),  # one image: one block
    ((64, 8, 28, 28), (8, 8, 3, 3), 1, (28, 28), 4, True),
    ((64, 8, 7, 7), (8, 8, 3, 3), 1, (7, 7), 4, True),  # 7x7 outputs
    ((64, 16, 3, 3), (16, 16, 3, 3), 1, (3, 3), 4, True),  # 2x2 tiles, the last half empty
    ((8, 64, 56, 56), (64, 64, 3, 3), 1, (56, 56), 4, True),  # 6 MiB of tile arrays an image
    ((64, 96, 16, 16), (96, 96, 3, 3), 1, (16, 16), 4, True),
    ((64, 32, 14, 14), (64, 4, 3, 3), 8, (14, 14), 4, True),  # groups: the totals count
    ((64, 32, 14, 14), (4, 32, 3, 3), 1, (14, 14), 4, False),  # few output channels
    ((64, 4, 28, 28), (8, 4, 3, 3), 1, (28, 28), 4, False),  # few input channels
    ((32, 128, 7, 7), (128, 128, 3, 3), 1, (7, 7), 4, False),  # many channels: U fills L2
    ((64, 128, 14, 14), (128, 128, 3, 3), 1, (14, 14), 4, False),
    ((1, 64, 28, 28), (64, 64, 3, 3), 1, (28, 28), 4, True),  # 1.5 MiB of tile arrays
    ((1, 32, 56, 56), (32, 32, 3, 3), 1, (56, 56), 4, False),  # 3 MiB in one block, one thread
    ((1, 32, 32, 64), (32, 32, 3, 3), 1, (32, 64), 4, True),  # 2 MiB exactly, one image
    ((1, 32, 32, 64), (32, 32, 3, 3), 1, (32, 66), 4, False),  # 2.06 MiB
    ((1, 32, 32, 64), (32, 32, 3, 3), 1, (32, 64), 8, False),  # float64: 4 MiB
    ((2, 32, 128, 128), (32, 32, 3, 3), 1, (128, 128), 4, True),  # 16 MiB exactly, a batch
    ((2, 32, 128, 130), (32, 32, 3, 3), 1, (128, 130), 4, False),
    ((2, 64, 112, 112), (64, 64, 3, 3), 1, (112, 112), 4, False),  # 24.5 MiB an image
    ((1, 8, 224, 224), (8, 8, 3, 3), 1, (224, 224), 4, False),
])
def test_which_winograd_passes(x_shape, w_shape, groups, out_hw, itemsize, blocked):
    assert conv_winograd._blocked(x_shape, w_shape, groups, out_hw, itemsize) is blocked


# ----------------------------------------------------------------------------- which algorithm


def _chosen(x_shape, w_shape, stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1,
            device="cpu"):
    geometry = (tuple(w_shape[2:]), stride, padding, dilation, groups)
    return conv_op._choose_algorithm(geometry, device, x_shape, w_shape)


def test_auto_picks_winograd_for_3x3_stride_1_with_enough_channels():
    assert _chosen((8, 32, 14, 14), (64, 32, 3, 3)) is conv_winograd
    assert _chosen((8, 8, 14, 14), (8, 8, 3, 3)) is conv_winograd
    assert _chosen((8, 32, 14, 14), (64, 32, 3, 3), padding=(0, 0)) is conv_winograd


@pytest.mark.parametrize("x_shape, w_shape, kwargs", [
    ((8, 32, 14, 14), (64, 32, 5, 5), {}),  # not 3x3
    ((8, 32, 14, 14), (64, 32, 3, 3), dict(stride=(2, 2))),
    ((8, 32, 14, 14), (64, 32, 3, 3), dict(dilation=(2, 2))),
    ((8, 3, 32, 32), (16, 3, 3, 3), {}),  # few input channels (an RGB first layer)
    ((8, 32, 14, 14), (4, 32, 3, 3), {}),  # few output channels
    ((8, 32, 14, 14), (32, 1, 3, 3), dict(groups=32)),  # depthwise
    ((8, 32, 14, 14), (64, 32, 3, 3), dict(device="cuda")),  # cuBLAS on the columns
])
def test_auto_keeps_im2col_elsewhere(x_shape, w_shape, kwargs):
    assert _chosen(x_shape, w_shape, **kwargs) is conv_gemm


def test_the_switch_forces_either_algorithm_where_winograd_applies():
    with kernels.conv_algorithm_mode("im2col"):
        assert _chosen((8, 32, 14, 14), (64, 32, 3, 3)) is conv_gemm
    with kernels.conv_algorithm_mode("winograd"):
        assert _chosen((8, 3, 32, 32), (16, 3, 3, 3)) is conv_winograd  # below the threshold
        assert _chosen((8, 32, 14, 14), (64, 32, 3, 3), stride=(2, 2)) is conv_gemm
        assert _chosen((8, 32, 14, 14), (64, 32, 3, 3), device="cuda") is conv_gemm
    with kernels.conv_algorithm_mode("winograd"), kernels.reference_mode():
        assert _chosen((8, 32, 14, 14), (64, 32, 3, 3)) is conv_gemm  # the oracle path


def test_conv_algorithm_mode_restores_and_rejects_unknown_names():
    before = kernels.conv_algorithm()
    with pytest.raises(RuntimeError):
        with kernels.conv_algorithm_mode("winograd"):
            assert kernels.conv_algorithm() == "winograd"
            raise RuntimeError
    assert kernels.conv_algorithm() == before
    with pytest.raises(ValueError, match=r"use_conv_algorithm: expected one of .*'winograd'.* "
                                         r"got 'fft'"):
        kernels.use_conv_algorithm("fft")
    assert kernels.conv_algorithm() == before


def test_a_backward_uses_the_forward_s_algorithm_even_if_the_switch_changed():
    """Conv2d keeps Winograd's transformed input for the weight gradient: switching to im2col
    between forward and backward must not hand it to the im2col code."""
    x, w, b = _inputs((2, 8, 5, 5), (8, 8, 3, 3), True, 4)
    with kernels.conv_algorithm_mode("winograd"):
        y = gg.nn.functional.conv2d(x, w, b, padding=1)
    with kernels.conv_algorithm_mode("im2col"):
        y.sum().backward()
        x2, w2, b2 = _inputs((2, 8, 5, 5), (8, 8, 3, 3), True, 4)
        gg.nn.functional.conv2d(x2, w2, b2, padding=1).sum().backward()
    for a, e in ((x, x2), (w, w2), (b, b2)):
        np.testing.assert_allclose(a.grad.numpy(), e.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("value, expected", [("winograd", "winograd"), ("IM2COL", "im2col"),
                                             ("", "auto")])
def test_env_var_sets_the_algorithm_at_import(value, expected):
    env = dict(os.environ, GPUGRAD_CONV_ALGO=value)
    out = subprocess.run(
        [sys.executable, "-c", "import gpugrad.kernels as k; print(k.conv_algorithm())"],
        env=env, capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == expected


def test_env_var_with_an_unknown_value_fails_at_import_naming_it():
    env = dict(os.environ, GPUGRAD_CONV_ALGO="fast")
    out = subprocess.run([sys.executable, "-c", "import gpugrad.kernels"], env=env, capture_output=True,
                         text=True)
    assert out.returncode != 0
    assert "GPUGRAD_CONV_ALGO: expected one of ('auto', 'im2col', 'winograd'), got 'fast'" in (
        out.stderr)


@pytest.mark.parametrize("keep", [True, False])
def test_im2col_weight_gradient_is_the_same_with_the_columns_built_again(monkeypatch, keep):
    """conv_gemm.KEEP_COLUMNS decides whether the forward keeps its columns for the weight
    gradient (CPU) or the backward builds them again (CUDA, to save memory): same bits either
    way, for both gradients together and for the weight's alone."""
    monkeypatch.setitem(conv_gemm.KEEP_COLUMNS, "cpu", keep)
    rng = np.random.default_rng(4)
    xa, wa = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 3))
    results = []
    for setting in (True, keep):
        monkeypatch.setitem(conv_gemm.KEEP_COLUMNS, "cpu", setting)
        with kernels.conv_algorithm_mode("im2col"):
            x = gg.tensor(xa, requires_grad=True)
            w = gg.tensor(wa, requires_grad=True)
            y = gg.nn.functional.conv2d(x, w, padding=1)
            assert (y.grad_fn.saved is not None) == setting
            y.backward(gg.tensor(np.cos(np.arange(y.numel())).reshape(y.shape)))
            w_only = gg.tensor(wa, requires_grad=True)
            (gw_alone,) = gg.autograd.grad(
                gg.nn.functional.conv2d(gg.tensor(xa), w_only, padding=1).sum(), w_only)
        results.append((x.grad.numpy(), w.grad.numpy(), gw_alone.numpy()))
    for kept, rebuilt in zip(*results):
        np.testing.assert_array_equal(rebuilt, kept)
