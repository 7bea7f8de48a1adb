"""Fused softmax cross-entropy: CPU twin against the float64 reference, PyTorch, label checks."""

import itertools

import numpy as np
import pytest

from gpugrad.kernels import (
    check_targets,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_backward_reference,
    softmax_cross_entropy_forward,
    softmax_cross_entropy_forward_reference,
)

REDUCTIONS = ["mean", "sum", "none"]
# (weighted, label_smoothing, ignore_index): ignore_index 2 is a valid class, -100 is not.
OPTIONS = list(itertools.product([False, True], [0.0, 0.25, 1.0], [-100, 2]))
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def make_problem(rng, n, c, dtype, weighted, ignore_index, scale=3.0, ignored=True):
    logits = (rng.standard_normal((n, c)) * scale).astype(dtype)
    target = rng.integers(0, c, n)
    if ignored:
        target[::4] = ignore_index
    weight = rng.uniform(0.1, 2.0, c).astype(dtype) if weighted else None
    return logits, target, weight


def incoming_gradient(rng, reduction, n, dtype):
    shape = (n,) if reduction == "none" else ()
    return np.asarray(rng.standard_normal(shape), dtype=dtype)


def forward_backward(logits, target, weight, ignore_index, eps, reduction, gloss, fns):
    forward, backward = fns
    loss, lse, total_weight = forward(logits, target, weight, ignore_index, eps, reduction)
    g = backward(logits, target, lse, gloss, weight, ignore_index, eps, reduction, total_weight)
    return loss, lse, total_weight, g


KERNEL = (softmax_cross_entropy_forward, softmax_cross_entropy_backward)
REFERENCE = (softmax_cross_entropy_forward_reference, softmax_cross_entropy_backward_reference)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted, eps, ignore_index", OPTIONS)
def test_cpu_twin_matches_reference(
    rng, twin_threads, dtype, reduction, weighted, eps, ignore_index
):
    # 37 x 29: neither a multiple of the 16 SIMD lanes nor of a CUDA block.
    logits, target, weight = make_problem(rng, 37, 29, dtype, weighted, ignore_index)
    gloss = incoming_gradient(rng, reduction, 37, dtype)
    args = (logits, target, weight, ignore_index, eps, reduction, gloss)
    loss, lse, total_weight, g = forward_backward(*args, KERNEL)
    ref_loss, ref_lse, ref_tw, ref_g = forward_backward(*args, REFERENCE)
    assert loss.dtype == dtype and total_weight.dtype == dtype and g.dtype == dtype
    assert loss.shape == ((37,) if reduction == "none" else ())
    assert total_weight.shape == () and lse.shape == (37,) and g.shape == (37, 29)
    np.testing.assert_allclose(loss, ref_loss, **TOL[dtype])
    np.testing.assert_allclose(lse, ref_lse, **TOL[dtype])
    np.testing.assert_allclose(total_weight, ref_tw, **TOL[dtype])
    np.testing.assert_allclose(g, ref_g, **TOL[dtype])
    ignored = target == ignore_index
    assert np.all(g[ignored] == 0)
    if reduction == "none":
        assert np.all(loss[ignored] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_logits_of_magnitude_1e4_stay_finite_and_exact(rng, twin_threads, dtype, eps):
    logits, target, weight = make_problem(rng, 19, 23, dtype, True, -100, scale=1e4)
    logits[0] = dtype(1e4)  # a row of equal logits: every class ties for the max
    logits[1, 3] = dtype(-1e4)
    gloss = np.asarray(1.0, dtype=dtype)
    args = (target, weight, -100, eps, "sum", gloss)
    loss, lse, tw, g = forward_backward(logits, *args[:-1], args[-1], KERNEL)
    # The oracle is the float64 reference run on the very same (float32-representable) logits.
    w64 = None if weight is None else weight.astype(np.float64)
    ref = forward_backward(
        logits.astype(np.float64), target, w64, -100, eps, "sum", np.asarray(1.0), REFERENCE
    )
    assert np.isfinite(loss) and np.all(np.isfinite(lse)) and np.all(np.isfinite(g))
    # Losses are O(1e4): a float32 result is good to a few float32 ulps of that.
    np.testing.assert_allclose(loss, ref[0], rtol=1e-6 if dtype == np.float32 else 1e-13)
    # lse is the exact row max plus a float32 log of the sum: absolute error ~1e-6, not ~1e-3.
    np.testing.assert_allclose(lse, ref[1], rtol=0, atol=4e-6 if dtype == np.float32 else 1e-11)
    np.testing.assert_allclose(g, ref[3], atol=1e-6 if dtype == np.float32 else 1e-13)


def test_all_rows_ignored_gives_nan_mean_and_zero_gradient(rng):
    logits, _, weight = make_problem(rng, 5, 4, np.float32, True, -100)
    target = np.full(5, -100)
    for eps in (0.0, 0.3):
        loss, lse, tw, g = forward_backward(
            logits, target, weight, -100, eps, "mean", np.asarray(1.0, np.float32), KERNEL
        )
        assert np.isnan(loss) and tw == 0
        np.testing.assert_array_equal(g, 0.0)
        loss_sum, _, _ = softmax_cross_entropy_forward(logits, target, weight, -100, eps, "sum")
        assert loss_sum == 0


def test_empty_batch(rng):
    logits = np.zeros((0, 5), np.float32)
    target = np.zeros(0, np.int64)
    loss, lse, tw = softmax_cross_entropy_forward(logits, target)
    assert np.isnan(loss) and lse.shape == (0,) and tw == 0
    g = softmax_cross_entropy_backward(
        logits, target, lse, np.asarray(1.0, np.float32), total_weight=tw
    )
    assert g.shape == (0, 5)


def test_nan_logit_gives_nan_loss(rng):
    logits, target, _ = make_problem(rng, 6, 5, np.float32, False, -100, ignored=False)
    logits[2, 1] = np.nan
    loss, _, _ = softmax_cross_entropy_forward(logits, target, reduction="none")
    assert np.isnan(loss[2]) and np.all(np.isfinite(np.delete(loss, 2)))


# ----------------------------------------------------------------------------- labels


@pytest.mark.parametrize("bad, ignore_index", [(-1, -100), (7, -100), (-100, 0), (123, 5),
                                                (2**40, -100)])
def test_bad_labels_raise_value_error_naming_the_value(rng, bad, ignore_index):
    logits, target, _ = make_problem(rng, 8, 7, np.float32, False, ignore_index)
    target[5] = bad
    message = (rf"target label {bad} \(flat index 5\) is out of range; "
               rf"expected class indices in \[0, 7\) or ignore_index={ignore_index}")
    with pytest.raises(ValueError, match="cross_entropy: " + message):
        softmax_cross_entropy_forward(logits, target, ignore_index=ignore_index)
    with pytest.raises(ValueError, match=message):
        check_targets(target, 7, ignore_index)


def test_the_first_bad_label_is_named(rng):
    logits, target, _ = make_problem(rng, 9, 4, np.float64, False, -100)
    target[[2, 6, 7]] = [-100, 9, -3]
    with pytest.raises(ValueError, match=r"target label 9 \(flat index 6\)"):
        softmax_cross_entropy_forward(logits, target)
    # Spatial targets: the index is into target.reshape(-1).
    with pytest.raises(ValueError, match=r"target label 2 \(flat index 2\)"):
        check_targets(np.tile(np.arange(3), (3, 1)), 2, -100)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_backward_checks_its_labels(rng, reduction):
    # The backward is public too: a bad label must raise, never index out of bounds (the CPU
    # twin used to read far past `weight` and crash the process).
    logits, target, _ = make_problem(rng, 6, 5, np.float32, False, -100)
    loss, lse, tw = softmax_cross_entropy_forward(logits, target, reduction=reduction)
    gloss = incoming_gradient(rng, reduction, 6, np.float32)
    bad = target.copy()
    bad[3] = 70_000_000
    with pytest.raises(ValueError, match=r"cross_entropy_backward: target label 70000000 "
                                         r"\(flat index 3\) is out of range"):
        softmax_cross_entropy_backward(logits, bad, lse, gloss, reduction=reduction,
                                       total_weight=tw)


@pytest.mark.parametrize("twin_threads", [1, 2], indirect=True)
def test_unchecked_bad_labels_give_nan_rows_not_a_stray_read(rng, twin_threads):
    """With check_labels=False the caller vouches for the labels; if it is wrong, the CPU
    twins still stay in bounds and mark the row NaN (the CUDA backward trusts the caller)."""
    from gpugrad.kernels import loss as L

    n, c = 300, 600  # past the twins' parallel threshold with 2 threads
    logits, target, _ = make_problem(rng, n, c, np.float32, False, -100)
    loss, lse, tw = softmax_cross_entropy_forward(logits, target, reduction="sum")
    bad = target.copy()
    bad[[5, 201]] = [c, -2]
    g = softmax_cross_entropy_backward(logits, bad, lse, np.float32(1.0), reduction="sum",
                                       check_labels=False)
    assert np.isnan(g[[5, 201]]).all()
    good = np.ones(n, bool)
    good[[5, 201]] = False
    ref = softmax_cross_entropy_backward_reference(logits, target, lse, np.float32(1.0),
                                                   reduction="sum")
    np.testing.assert_allclose(g[good], ref[good], **TOL[np.float32])
    # The forward twin, called past its dispatcher's check, does the same.
    args = L._kernel_args(np, logits, bad, None, -100, 0.0)
    outs = [np.empty(n, np.float32) for _ in range(4)]
    L.run_cpu_twin(L._softmax_cross_entropy_forward_cpu, logits.size, *args, *outs)
    row_loss, row_weight = outs[2], outs[3]
    assert np.isnan(row_loss[[5, 201]]).all() and np.isnan(row_weight[[5, 201]]).all()
    assert np.isfinite(row_loss[good]).all()


def test_check_targets_accepts_ignore_index_and_edges():
    check_targets(np.array([0, 6, -100, 3]), 7, -100)
    check_targets(np.array([], dtype=np.int64), 7, -100)
    with pytest.raises(TypeError, match="nll_loss: target must be an integer array"):
        check_targets(np.array([0.0, 1.0]), 7, -100, op="nll_loss")


def test_rejects_bad_shapes_and_options(rng):
    logits, target, weight = make_problem(rng, 4, 3, np.float32, True, -100)
    with pytest.raises(ValueError, match=r"target must have shape \(4,\)"):
        softmax_cross_entropy_forward(logits, target[:3])
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        softmax_cross_entropy_forward(logits, target, weight[:2])
    with pytest.raises(TypeError, match="weight must be float32 like the input, got float64"):
        softmax_cross_entropy_forward(logits, target, weight.astype(np.float64))
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        softmax_cross_entropy_forward(logits, target, label_smoothing=1.5)
    with pytest.raises(ValueError, match="reduction must be one of"):
        softmax_cross_entropy_forward(logits, target, reduction="avg")
    loss, lse, tw = softmax_cross_entropy_forward(logits, target)
    with pytest.raises(ValueError, match="needs the total_weight"):
        softmax_cross_entropy_backward(logits, target, lse, loss)
    with pytest.raises(ValueError, match=r"gloss must have shape \(4,\)"):
        softmax_cross_entropy_backward(logits, target, lse, loss, reduction="none")


# ----------------------------------------------------------------------------- PyTorch


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted, eps, ignore_index", OPTIONS)
def test_matches_torch_cross_entropy(rng, dtype, reduction, weighted, eps, ignore_index):
    torch = pytest.importorskip("torch")
    logits, target, weight = make_problem(rng, 21, 13, dtype, weighted, ignore_index)
    gloss = incoming_gradient(rng, reduction, 21, dtype)
    loss, _, _, g = forward_backward(
        logits, target, weight, ignore_index, eps, reduction, gloss, KERNEL
    )
    x = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(
        x,
        torch.from_numpy(target),
        weight=None if weight is None else torch.from_numpy(weight),
        ignore_index=ignore_index,
        label_smoothing=eps,
        reduction=reduction,
    )
    expected.backward(torch.from_numpy(gloss))
    np.testing.assert_allclose(loss, expected.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(g, x.grad.numpy(), **TOL[dtype])
