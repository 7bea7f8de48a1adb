"""nn.functional edge cases found by review, each as PyTorch does it."""

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn.functional as F


@pytest.mark.parametrize("pad", [(-1, 2), (1, -2), (-2, -1), (2, 0, -1, 1), (-1, 2, 1, -2)])
def test_circular_pad_with_a_negative_amount_crops_first_as_torch(pad):
    torch = pytest.importorskip("torch")
    shape = (1, 2, 5) if len(pad) == 2 else (1, 2, 4, 5)  # as PyTorch wants for 1 / 2 dims
    x = np.random.default_rng(0).standard_normal(shape)
    gx, tx = gg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = F.pad(gx, pad, mode="circular"), torch.nn.functional.pad(tx, pad, mode="circular")
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    w = np.random.default_rng(1).standard_normal(ty.shape)
    y.backward(gg.tensor(w))
    ty.backward(torch.tensor(w))
    np.testing.assert_allclose(gx.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def test_one_hot_checks_its_arguments():
    with pytest.raises(TypeError, match="one_hot: expected a Tensor, got ndarray"):
        F.one_hot(np.array([1, 2]))
    with pytest.raises(TypeError, match="one_hot: num_classes must be an int, got 4.0"):
        F.one_hot(gg.tensor([1, 2]), num_classes=4.0)
    with pytest.raises(RuntimeError, match="one_hot: num_classes should be -1 or non-negative"):
        F.one_hot(gg.tensor([], dtype=gg.int64), num_classes=-2)
    assert F.one_hot(gg.tensor([1, 0]), num_classes=3).tolist() == [[0, 1, 0], [1, 0, 0]]


def test_bce_with_logits_dtypes_follow_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal(4).astype(np.float32)
    t = np.random.default_rng(1).random(4)
    for target_dtype in (np.float64, np.float32):
        for pw in (None, np.full(4, 2.0)):
            ours = F.binary_cross_entropy_with_logits(
                gg.tensor(x), gg.tensor(t.astype(target_dtype)),
                pos_weight=None if pw is None else gg.tensor(pw))
            theirs = torch.nn.functional.binary_cross_entropy_with_logits(
                torch.tensor(x), torch.tensor(t.astype(target_dtype)),
                pos_weight=None if pw is None else torch.tensor(pw))
            assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
            np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-6)
