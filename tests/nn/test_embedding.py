"""F.embedding and nn.Embedding: lookups and gradients against PyTorch (repeated indices add
up, the padding row gets none), gradcheck, the module's init and from_pretrained, and the
refusals (bad indices, dtypes, options gpugrad does not implement)."""

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.autograd import gradcheck, gradgradcheck
from gpugrad.nn import functional_losses as FL
from gpugrad.nn.embedding import Embedding

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-6, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}

# Index arrays of several shapes (0-d and empty included), all with repeated indices where
# they have more than one element, into a table of 6 rows.
INDICES = [
    np.array([1, 4, 1, 1, 0]),
    np.array([[5, 2, 2], [0, 2, 5]]),
    np.array(3),
    np.zeros((2, 0), dtype=np.int64),
    np.array([[[2, 2, 2, 2]]]),
]


def _lookup_both(idx, weight, index_dtype=np.int64, **kwargs):
    torch = pytest.importorskip("torch")
    gw, tw = gg.tensor(weight, requires_grad=True), torch.tensor(weight, requires_grad=True)
    ours = FL.embedding(gg.tensor(idx.astype(index_dtype)), gw, **kwargs)
    theirs = torch.nn.functional.embedding(torch.tensor(idx.astype(index_dtype)), tw, **kwargs)
    return ours, theirs, gw, tw


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index_dtype", [np.int64, np.int32])
@pytest.mark.parametrize("padding_idx", [None, 0, 2, -1])
def test_embedding_matches_torch(dtype, index_dtype, padding_idx):
    torch = pytest.importorskip("torch")
    weight = np.random.default_rng(0).standard_normal((6, 3)).astype(dtype)
    for k, idx in enumerate(INDICES):
        ours, theirs, gw, tw = _lookup_both(idx, weight, index_dtype, padding_idx=padding_idx)
        assert ours.shape == tuple(theirs.shape) == idx.shape + (3,)
        assert ours.dtype == dtype
        np.testing.assert_array_equal(ours.numpy(), theirs.detach().numpy())
        w = np.random.default_rng(k).standard_normal(ours.shape).astype(dtype)
        ours.backward(gg.tensor(w))
        theirs.backward(torch.tensor(w))
        np.testing.assert_allclose(gw.grad.numpy(), tw.grad.numpy(), **TOL[dtype])


def test_repeated_indices_accumulate_and_padding_row_gets_zero():
    weight = gg.tensor(np.arange(12.0).reshape(4, 3), requires_grad=True)
    out = FL.embedding(gg.tensor([[1, 3, 1], [1, 0, 3]]), weight, padding_idx=3)
    # The padding row is still looked up (only its gradient is cut).
    np.testing.assert_array_equal(out.numpy()[0, 1], [9.0, 10.0, 11.0])
    out.sum().backward()
    np.testing.assert_array_equal(weight.grad.numpy(),
                                  [[1.0] * 3, [3.0] * 3, [0.0] * 3, [0.0] * 3])


def test_embedding_gradcheck():
    idx = gg.tensor([[0, 2, 2], [3, 0, 0]])
    weight = gg.tensor(np.random.default_rng(1).standard_normal((4, 2)), requires_grad=True)
    assert gradcheck(lambda w: FL.embedding(idx, w), [weight])
    assert gradgradcheck(lambda w: FL.embedding(idx, w) ** 2, [weight])
    # With a padding row the gradient is (deliberately) not the numerical one there: zero it.
    w2 = gg.tensor(np.random.default_rng(2).standard_normal((4, 2)), requires_grad=True)
    g = gg.autograd.grad([(FL.embedding(idx, w2, padding_idx=0) ** 2).sum()], [w2])[0]
    np.testing.assert_array_equal(g.numpy()[0], [0.0, 0.0])
    np.testing.assert_allclose(g.numpy()[2], 2 * 2 * w2.numpy()[2])


def test_embedding_refuses_bad_indices_naming_them():
    weight = gg.randn(5, 3)
    for bad, shown in ((5, "5"), (17, "17"), (-1, "-1"), (-6, "-6")):
        with pytest.raises(IndexError, match=rf"embedding: index {shown} is out of range for a "
                                             r"weight of 5 rows \(indices must be in \[0, 4\]\)"):
            FL.embedding(gg.tensor([[0, 1], [bad, 2]]), weight)
    with pytest.raises(IndexError, match="index 0 is out of range for a weight of 0 rows"):
        FL.embedding(gg.tensor([0]), gg.zeros(0, 3))
    for index in (gg.tensor([1.0]), gg.tensor([True]), gg.tensor([1], dtype=gg.uint8),
                  gg.tensor([1], dtype=gg.int16)):
        with pytest.raises(RuntimeError, match="indices of dtype int64 or int32, got"):
            FL.embedding(index, weight)
    with pytest.raises(TypeError, match="embedding: input must be a gpugrad Tensor"):
        FL.embedding([0, 1], weight)
    for w in (gg.randn(5), gg.randn(5, 2, 2)):
        with pytest.raises(RuntimeError, match="'weight' must be 2-D"):
            FL.embedding(gg.tensor([0]), w)
    for p in (5, -6):
        with pytest.raises(AssertionError, match="padding_idx must be within num_embeddings"):
            FL.embedding(gg.tensor([0]), weight, padding_idx=p)
    with pytest.raises(TypeError, match="padding_idx must be an int"):
        FL.embedding(gg.tensor([0]), weight, padding_idx=1.0)
    idx = gg.tensor([0])
    idx.device = gg.device("cuda", 0)  # the device check compares tags only
    with pytest.raises(RuntimeError, match="cpu.*cuda:0|cuda:0.*cpu"):
        FL.embedding(idx, weight)


@pytest.mark.parametrize("option,value", [("max_norm", 1.0), ("scale_grad_by_freq", True),
                                          ("sparse", True)])
def test_unimplemented_options_raise_naming_the_option(option, value):
    with pytest.raises(NotImplementedError, match=f"embedding: {option}"):
        FL.embedding(gg.tensor([0]), gg.randn(3, 2), **{option: value})
    with pytest.raises(NotImplementedError, match=f"Embedding: {option}"):
        Embedding(3, 2, **{option: value})
    with pytest.raises(NotImplementedError, match=option):
        Embedding.from_pretrained(gg.randn(3, 2), **{option: value})


# ----------------------------------------------------------------------------- the module


def test_module_init_is_standard_normal_with_the_padding_row_zeroed():
    e = Embedding(400, 50, padding_idx=7)
    w = e.weight.numpy()
    assert e.weight.shape == (400, 50) and e.weight.dtype == gg.float32
    assert e.weight.requires_grad and [n for n, _ in e.named_parameters()] == ["weight"]
    assert (w[7] == 0).all()
    rest = np.delete(w, 7, axis=0)
    assert abs(rest.mean()) < 0.03 and abs(rest.std() - 1.0) < 0.03
    assert Embedding(4, 2, dtype=gg.float64).weight.dtype == gg.float64
    assert Embedding(4, 2, padding_idx=-1).padding_idx == 3
    assert (Embedding(4, 2, padding_idx=-1).weight.numpy()[3] == 0).all()


def test_module_forward_backward_and_repr_as_torch():
    torch = pytest.importorskip("torch")
    ours = Embedding(6, 3, padding_idx=1)
    theirs = torch.nn.Embedding(6, 3, padding_idx=1)
    assert repr(ours) == repr(theirs) == "Embedding(6, 3, padding_idx=1)"
    assert repr(Embedding(6, 3)) == repr(torch.nn.Embedding(6, 3))
    assert repr(Embedding(6, 3, norm_type=3.0)) == repr(torch.nn.Embedding(6, 3, norm_type=3.0))
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.numpy()))
    idx = np.array([[1, 5, 5], [0, 1, 5]])
    yg, yt = ours(gg.tensor(idx)), theirs(torch.tensor(idx))
    np.testing.assert_array_equal(yg.numpy(), yt.detach().numpy())
    w = np.random.default_rng(3).standard_normal(yg.shape).astype(np.float32)
    yg.backward(gg.tensor(w))
    yt.backward(torch.tensor(w))
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-6)
    assert (ours.weight.grad.numpy()[1] == 0).all()


def test_padding_row_stays_fixed_through_an_optimizer_step():
    e = Embedding(5, 2, padding_idx=0)
    with gg.no_grad():
        e.weight[0] = 1.5  # a custom pad vector, as PyTorch allows
    opt = gg.optim.SGD(e.parameters(), lr=0.5)
    (e(gg.tensor([0, 2, 0, 4])) ** 2).sum().backward()
    before = e.weight.numpy().copy()
    opt.step()
    np.testing.assert_array_equal(e.weight.numpy()[0], [1.5, 1.5])
    assert not np.array_equal(e.weight.numpy()[2], before[2])


def test_from_pretrained():
    torch = pytest.importorskip("torch")
    pre = np.random.default_rng(4).standard_normal((4, 3))
    e = Embedding.from_pretrained(gg.tensor(pre), padding_idx=2)
    t = torch.nn.Embedding.from_pretrained(torch.tensor(pre), padding_idx=2)
    assert repr(e) == repr(t)
    assert not e.weight.requires_grad  # freeze=True
    np.testing.assert_array_equal(e.weight.numpy(), pre)  # the padding row keeps its values
    idx = np.array([2, 0, 3])
    np.testing.assert_array_equal(e(gg.tensor(idx)).numpy(), t(torch.tensor(idx)).numpy())
    assert e(gg.tensor(idx)).grad_fn is None

    src = gg.tensor(pre)
    e = Embedding.from_pretrained(src, freeze=False)
    assert e.weight.requires_grad and e.weight.data is src.data  # shared, as PyTorch
    e(gg.tensor([3, 3])).sum().backward()
    np.testing.assert_array_equal(e.weight.grad.numpy()[3], [2.0] * 3)
    with pytest.raises(AssertionError, match="expected to be 2-dimensional"):
        Embedding.from_pretrained(gg.randn(4))
    with pytest.raises(AssertionError, match=r"shape of weight \(4, 3\) does not match"):
        Embedding(5, 3, _weight=gg.randn(4, 3))


def test_module_argument_checks():
    with pytest.raises(TypeError, match="num_embeddings must be an int"):
        Embedding(5.0, 3)
    with pytest.raises(ValueError, match="embedding_dim must be >= 0"):
        Embedding(5, -1)
    with pytest.raises(AssertionError, match="padding_idx must be within num_embeddings"):
        Embedding(5, 3, padding_idx=5)
    e = Embedding(5, 3)
    with pytest.raises(IndexError, match="index 5 is out of range"):
        e(gg.tensor([5]))
