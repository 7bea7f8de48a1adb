"""Loss options and labels that used to slip through: each must raise naming the op and the
value, or behave as PyTorch does (found by fuzzing the public kernels and F.* losses)."""

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.kernels as K
from gpugrad.nn import functional as F

LOSSES = ["cross_entropy", "nll_loss"]


@pytest.fixture
def x():
    return gg.randn(4, 3)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("ignore_index, error, pattern", [
    (1.5, TypeError, r"ignore_index must be an int, got float 1.5"),
    (True, TypeError, r"ignore_index must be an int, got bool"),
    ("1", TypeError, r"ignore_index must be an int, got str"),
    (2**70, ValueError, r"ignore_index must fit in int64, got 1180591620717411303424"),
])
def test_ignore_index_must_be_an_int64(x, loss, ignore_index, error, pattern):
    with pytest.raises(error, match=f"{loss}: {pattern}"):
        getattr(F, loss)(x, gg.tensor([0, 1, 2, 0]), ignore_index=ignore_index)


def test_ignore_index_accepts_numpy_integers(x):
    t = gg.tensor([0, 1, 2, 0])
    expected = F.cross_entropy(x, t, ignore_index=1).item()
    assert F.cross_entropy(x, t, ignore_index=np.int32(1)).item() == expected


@pytest.mark.parametrize("smoothing, error", [("a", TypeError), (None, TypeError),
                                              (np.ones(2), TypeError), (True, TypeError),
                                              (-0.1, ValueError)])
def test_label_smoothing_must_be_a_float_in_0_1(x, smoothing, error):
    with pytest.raises(error, match="cross_entropy: label_smoothing must be"):
        F.cross_entropy(x, gg.tensor([0, 1, 2, 0]), label_smoothing=smoothing)
    with pytest.raises(error, match="cross_entropy: label_smoothing must be"):
        K.softmax_cross_entropy_forward(x.numpy(), np.array([0, 1, 2, 0]),
                                        label_smoothing=smoothing)


def test_integer_label_smoothing_is_a_float(x):
    t = gg.tensor([0, 1, 2, 0])
    assert F.cross_entropy(x, t, label_smoothing=1).item() == pytest.approx(
        F.cross_entropy(x, t, label_smoothing=1.0).item())


def test_probability_targets_refuse_an_ignore_index(x):
    probs = F.softmax(gg.randn(4, 3), dim=1)
    with pytest.raises(ValueError, match=r"cross_entropy: ignore_index is not supported for "
                                         r"class-probability .*ignore_index=1"):
        F.cross_entropy(x, probs, ignore_index=1)
    F.cross_entropy(x, probs)  # the default is fine


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32])
def test_negative_narrow_integer_labels_are_caught(loss, dtype):
    # -1 read as an unsigned byte is 255: with 300 classes it used to pass the check.
    x = gg.randn(2, 300)
    with pytest.raises(ValueError, match=rf"{loss}: target label -1 \(flat index 1\)"):
        getattr(F, loss)(x, gg.tensor(np.array([3, -1], dtype)))
    with pytest.raises(ValueError, match=r"target label -1 \(flat index 1\)"):
        K.check_targets(np.array([3, -1], dtype), 300, -100)


@pytest.mark.parametrize("loss", LOSSES)
def test_uint64_labels_past_int64_do_not_wrap_into_ignore_index(loss):
    # 2**64 - 1 cast to int64 is -1: with ignore_index=-1 the row was silently ignored.
    x = gg.randn(2, 3)
    target = gg.tensor(np.array([1, 2**64 - 1], np.uint64))
    with pytest.raises(ValueError, match=rf"{loss}: target label 18446744073709551615"):
        getattr(F, loss)(x, target, ignore_index=-1)


def test_check_targets_names_foreign_arrays():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="cross_entropy: target must be an integer array"):
        K.check_targets(torch.tensor([0, 1]), 3, -100)
    with pytest.raises(TypeError, match="nll_loss: target must be an integer array"):
        K.check_targets([0, 1], 3, -100, op="nll_loss")


# ----------------------------------------------------------------------------- nll_loss inputs

@pytest.mark.parametrize("make_input, target, error, pattern", [
    (lambda: gg.tensor(1.0), gg.tensor(0), ValueError, r"got a 0-d tensor"),
    (lambda: gg.randn(3), gg.tensor([0, 1]), ValueError,
     r"unbatched input of shape \(3,\) expected a target of shape \(\) or \(1,\), got \(2,\)"),
    (lambda: gg.randn(2, 3) > 0, gg.tensor([0, 1]), TypeError,
     r"floating-point log-probabilities, got bool"),
    (lambda: gg.ones(2, 3, dtype=gg.int64), gg.tensor([0, 1]), TypeError,
     r"floating-point log-probabilities, got int64"),
    (lambda: gg.randn(3), 1, TypeError, r"target must be a Tensor, got int"),
])
def test_nll_loss_input_errors_name_nll_loss(make_input, target, error, pattern):
    with pytest.raises(error, match=f"nll_loss: .*{pattern}"):
        F.nll_loss(make_input(), target)


def test_unbatched_nll_loss_takes_a_0d_or_one_element_target():
    x = gg.randn(5)
    a = F.nll_loss(x, gg.tensor(2)).item()
    assert a == F.nll_loss(x, gg.tensor([2])).item() == -x.numpy()[2]


@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss_mean_over_only_ignored_rows_is_nan_with_zero_gradient(weighted):
    # PyTorch: the loss is 0 / 0 = nan and the gradient is zeros (not 0 * 1/0 = nan).
    x = gg.zeros(2, 3, requires_grad=True)
    weight = gg.tensor([0.5, 1.0, 2.0]) if weighted else None
    loss = F.nll_loss(x, gg.tensor([-100, -100]), weight=weight)
    assert np.isnan(loss.item())
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_with_ignored_rows_matches_torch(reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4)).astype(np.float32)
    t = np.array([0, -100, 3, 2, -100, 1])
    w = rng.uniform(0.2, 2.0, 4).astype(np.float32)
    gx = gg.tensor(x, requires_grad=True)
    out = F.nll_loss(gx, gg.tensor(t), weight=gg.tensor(w), reduction=reduction)
    tx = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.nll_loss(tx, torch.tensor(t), weight=torch.tensor(w),
                                       reduction=reduction)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-6)
    out.sum().backward()
    ref.sum().backward()
    np.testing.assert_allclose(gx.grad.numpy(), tx.grad.numpy(), rtol=1e-6)
