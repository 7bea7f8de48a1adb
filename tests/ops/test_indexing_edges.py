"""Indexing, gather, setitem, where / masked_fill and nonzero edge cases, against PyTorch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.autograd import gradcheck, gradgradcheck
from gpugrad.ops.indexing import nonzero, scatter_along

torch = pytest.importorskip("torch")

BASE = np.arange(24, dtype=np.float64).reshape(2, 3, 4)


def _value_and_grad(m, index_fn, base=BASE):
    x = m.tensor(base, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: "non-tuple sequence ... deprecated"
        y = x[index_fn(m)]
        w = m.tensor(np.arange(1, y.numel() + 1, dtype=np.float64).reshape(tuple(y.shape)))
        if y.numel():
            (y * w).sum().backward()
    grad = None if x.grad is None else x.grad.numpy()
    return tuple(y.shape), y.detach().numpy(), grad


def _same_as_torch(index_fn, base=BASE):
    gs, gv, gg_grad = _value_and_grad(gg, index_fn, base)
    ts, tv, t_grad = _value_and_grad(torch, index_fn, base)
    assert gs == ts
    np.testing.assert_array_equal(gv, tv)
    if t_grad is None:
        assert gg_grad is None or not gg_grad.any()
    else:
        np.testing.assert_array_equal(gg_grad, t_grad)


# Ints mixed with advanced indices: PyTorch selects with the ints first (NumPy would move the
# broadcast dims to the front and transpose the result).
MIXED = {
    "int, slice, list": lambda m: (0, slice(None), [1, 2, 1]),
    "slice, int, ..., list": lambda m: (slice(None), 0, Ellipsis, [1, 2]),
    "list, int, list": lambda m: ([0, 1], 0, [1, 2]),
    "list, slice, int": lambda m: ([0, 1], slice(None), 0),
    "0-d tensor, slice, list": lambda m: (m.tensor(0), slice(None), [1, 2, 1]),
    "np int, slice, list": lambda m: (np.int64(1), slice(None), [3, 0]),
    "None, int, slice, list": lambda m: (None, 0, slice(None), [1, 2]),
    "True, int, slice, list": lambda m: (True, 0, slice(None), [1, 2]),
    "int, slice, mask": lambda m: (0, slice(None), m.tensor([True, False, True, False])),
    "mask, slice, int": lambda m: (m.tensor([True, False]), slice(None), 1),
    "int, 2-d index, slice": lambda m: (1, m.tensor([[0, 2], [1, 1]]), slice(1, 3)),
    "-1, slice, list": lambda m: (-1, slice(None, 2), [[3], [0]]),
}


@pytest.mark.parametrize("name", list(MIXED))
def test_int_mixed_with_advanced_indices_matches_torch(name):
    _same_as_torch(MIXED[name])


@pytest.mark.parametrize("name", list(MIXED))
def test_int_mixed_with_advanced_indices_setitem_matches_torch(name):
    out = []
    for m in (gg, torch):
        x = m.tensor(np.zeros(BASE.shape))
        sel_shape = tuple(m.tensor(BASE)[MIXED[name](m)].shape)
        x[MIXED[name](m)] = m.tensor(np.arange(1, int(np.prod(sel_shape)) + 1,
                                               dtype=np.float64).reshape(sel_shape))
        out.append(x.numpy())
    np.testing.assert_array_equal(out[0], out[1])


@pytest.mark.parametrize("name", ["int, slice, list", "list, int, list", "int, 2-d index, slice"])
def test_int_mixed_index_gradcheck(name):
    x = gg.tensor(BASE, requires_grad=True)
    assert gradcheck(lambda t: t[MIXED[name](gg)], (x,))
    assert gradgradcheck(lambda t: t[MIXED[name](gg)] ** 2, (x,))


LISTS = {
    # PyTorch 2.13 still reads a short list holding a sequence/tensor/slice/None/... as a tuple.
    "nested lists": lambda m: [[0, 1], [1, 0]],
    "nested ragged": lambda m: [[0, 1], [1]],
    "three levels": lambda m: [[[0, 1]], [[1, 0]]],
    "0-d tensors": lambda m: [m.tensor(1), m.tensor(0)],
    "1-d tensors": lambda m: [m.tensor([1]), m.tensor([0])],
    "int and slice": lambda m: [0, slice(None)],
    "int and None": lambda m: [0, None],
    "int and Ellipsis": lambda m: [1, Ellipsis],
    "int and list": lambda m: [0, [1, 2]],
    "empty list": lambda m: [],
    "empty list in dim 1": lambda m: (slice(None), []),
    "empty nested": lambda m: [[]],
    "two empty lists": lambda m: ([], []),
    "empty and non-empty": lambda m: ([], [1]),
    "bools": lambda m: [True, False],
    "plain ints": lambda m: [1, 0, 1],
}


@pytest.mark.parametrize("name", list(LISTS))
def test_list_indices_match_torch(name):
    _same_as_torch(LISTS[name])


def test_empty_list_setitem_changes_nothing():
    for index in ([], (slice(None), [])):
        x = gg.ones(3, 4)
        x[index] = 5.0
        assert (x.numpy() == 1).all()


def test_setitem_int_out_of_range_raises_like_torch():
    x = gg.zeros(3, dtype=gg.uint8)
    with pytest.raises(RuntimeError, match="setitem: value 300 cannot be converted to type uint8"):
        x[0] = 300
    with pytest.raises(RuntimeError, match="setitem.*int8"):
        gg.zeros(3, dtype=gg.int8)[[0, 1]] = 200
    with pytest.raises(RuntimeError, match="setitem.*nan"):
        gg.zeros(2, dtype=gg.int64)[0] = float("nan")
    with pytest.raises(RuntimeError, match="setitem"):
        gg.zeros(2, dtype=gg.int64)[0] = 2**63
    # As in PyTorch: a negative int wraps into an unsigned dtype, a float truncates.
    for m in (gg, torch):
        y = m.zeros(3, dtype=m.uint8)
        y[0] = -1
        y[1] = 3.7
        assert y.tolist() == [255, 3, 0]


def test_setitem_of_a_value_that_requires_grad_raises():
    w = gg.ones(2, requires_grad=True)
    x = gg.zeros(3)
    with pytest.raises(RuntimeError, match="setitem: the assigned value requires grad"):
        x[0:2] = w * 3
    with gg.no_grad():
        x[0:2] = w * 3
    assert x.tolist() == [3.0, 3.0, 0.0]
    x[2] = (w * 2).detach()[0]
    assert x.tolist() == [3.0, 3.0, 2.0]


# ----------------------------------------------------------------------------- gather

GATHER = [
    ((3, 3), 0, [[2], [1]]),
    ((3, 3), 1, [[2, 1, 0]]),
    ((3, 3), 1, [[2, 1, 0, 0]]),
    ((2, 3, 4), 2, [[[3, 0]], [[1, 1]]]),
    ((2, 3, 4), 1, [[[2, 0, 1, 1], [0, 0, 0, 0]]]),
    ((3,), 0, [2, 2, 0, 1]),
    ((), 0, 0),
    ((), -1, [0, 0]),
    ((3,), 0, 1),
    ((3, 3), 1, np.zeros((5, 0), dtype=np.int64)),
]


@pytest.mark.parametrize("shape, dim, index", GATHER)
def test_gather_matches_torch(shape, dim, index):
    base = np.arange(1, int(np.prod(shape)) + 1, dtype=np.float64).reshape(shape)
    out = []
    for m in (gg, torch):
        x = m.tensor(base, requires_grad=True)
        y = m.gather(x, dim, m.tensor(np.asarray(index, dtype=np.int64)))
        w = m.tensor(np.arange(1, y.numel() + 1, dtype=np.float64).reshape(tuple(y.shape)))
        (y * w).sum().backward()
        out.append((tuple(y.shape), y.detach().numpy(), x.grad.numpy()))
    assert out[0][0] == out[1][0]
    np.testing.assert_array_equal(out[0][1], out[1][1])
    np.testing.assert_array_equal(out[0][2], out[1][2])
    if np.size(index):
        x = gg.tensor(base, requires_grad=True)
        idx = gg.tensor(np.asarray(index, dtype=np.int64))
        assert gradcheck(lambda t: gg.gather(t, dim, idx), (x,))
        assert gradgradcheck(lambda t: gg.gather(t, dim, idx) ** 2, (x,))


def test_gather_accepts_int32_index_as_torch():
    x = gg.arange(9.0).reshape(3, 3)
    y = gg.gather(x, 1, gg.tensor([[2], [0]], dtype=gg.int32))
    assert y.tolist() == [[2.0], [3.0]]


@pytest.mark.parametrize("index, exc, pattern", [
    (lambda: gg.tensor([[2]] * 4), RuntimeError, "gather: size does not match at dimension 0"),
    (lambda: gg.tensor([0]), RuntimeError, "gather: index must have the same number of dim"),
    (lambda: gg.tensor([[3]]), IndexError, "gather: index 3 is out of bounds"),
    (lambda: gg.tensor([[-1]]), IndexError, "gather: index -1 is out of bounds"),
    (lambda: gg.tensor([[0]], dtype=gg.int16), RuntimeError, "gather: expected dtype"),
    (lambda: gg.tensor([[0.0]]), RuntimeError, "gather: expected dtype"),
    (lambda: [[0]], TypeError, "gather: index must be a Tensor, got list"),
])
def test_gather_bad_index_raises_naming_gather(index, exc, pattern):
    with pytest.raises(exc, match=pattern):
        gg.gather(gg.arange(9.0).reshape(3, 3), 1, index())


def test_scatter_along_validates():
    gy = gg.ones(2, 2)
    with pytest.raises(IndexError, match="scatter_along: dimension out of range"):
        scatter_along(gy, gg.tensor([[0, 1], [1, 0]]), 2, (2, 3))
    with pytest.raises(IndexError, match="scatter_along: index 3 is out of bounds"):
        scatter_along(gy, gg.tensor([[0, 3], [1, 0]]), 1, (2, 3))
    with pytest.raises(RuntimeError, match="scatter_along: expected the values"):
        scatter_along(gg.ones(2, 3), gg.tensor([[0, 1], [1, 0]]), 1, (2, 3))
    with pytest.raises(RuntimeError, match="scatter_along: size does not match"):
        scatter_along(gy, gg.tensor([[0, 1], [1, 0]]), 1, (1, 3))
    out = scatter_along(gy, gg.tensor([[0, 0], [2, 1]]), 1, (2, 3))
    assert out.tolist() == [[2.0, 0.0, 0.0], [0.0, 1.0, 1.0]]


# ----------------------------------------------------------------------------- nonzero


@pytest.mark.parametrize("value", [3.0, 0.0])
def test_nonzero_of_0d_matches_torch(value):
    y, t = nonzero(gg.tensor(value)), torch.nonzero(torch.tensor(value))
    assert y.shape == tuple(t.shape) and y.dtype == gg.int64
    (yt,), (tt,) = nonzero(gg.tensor(value), as_tuple=True), torch.nonzero(
        torch.tensor(value), as_tuple=True)
    assert yt.tolist() == tt.tolist()
    (wt,) = gg.where(gg.tensor(value))
    assert wt.tolist() == tt.tolist()


# ----------------------------------------------------------------------------- where / masked_fill


def test_masked_fill_keeps_the_tensor_dtype():
    c = [True, False, True]
    for value in (1.5, 7, True):
        y = gg.tensor([1, 2, 3]).masked_fill(gg.tensor(c), value)
        t = torch.tensor([1, 2, 3]).masked_fill(torch.tensor(c), value)
        assert y.dtype == gg.int64 and y.tolist() == t.tolist()
    y = gg.tensor([1, 2, 3]).masked_fill(gg.tensor(c), gg.tensor(2.5))
    assert y.dtype == gg.int64 and y.tolist() == [2, 2, 2]
    y = gg.ones(3, dtype=gg.uint8).masked_fill(gg.tensor(c), -1)
    assert y.tolist() == [255, 1, 255]
    with pytest.raises(RuntimeError, match="masked_fill: value 1000 cannot be converted"):
        gg.ones(3, dtype=gg.int8).masked_fill(gg.tensor(c), 1000)
    with pytest.raises(RuntimeError, match="masked_fill.*nan"):
        gg.ones(3, dtype=gg.int64).masked_fill(gg.tensor(c), float("nan"))


@pytest.mark.parametrize("mask", [[1.0, 0.0, 1.0], [1, 0, 1]])
def test_masked_fill_refuses_non_bool_masks(mask):
    with pytest.raises(RuntimeError, match="masked_fill: only supports boolean masks"):
        gg.ones(3).masked_fill(gg.tensor(mask), 0.0)
    with pytest.raises(RuntimeError, match="masked_fill: only supports boolean masks"):
        gg.ones(3).masked_fill(gg.tensor(mask, dtype=gg.uint8), 0.0)
    with pytest.raises(RuntimeError, match="only supports a 0-dimensional value tensor"):
        gg.ones(3).masked_fill(gg.tensor([True, False, True]), gg.tensor([7.0]))


def test_masked_fill_gradients_match_torch():
    base = np.array([1.0, 2.0, 3.0])
    out = []
    for m in (gg, torch):
        x = m.tensor(base, requires_grad=True)
        v = m.tensor(2.0, dtype=m.float32, requires_grad=True)
        y = x.masked_fill(m.tensor([True, False, True]), v)
        (y * m.tensor([1.0, 2.0, 3.0], dtype=m.float64)).sum().backward()
        out.append((str(y.dtype).replace("torch.", ""), x.grad.tolist(), v.grad.item()))
    assert out[0] == out[1]
    mask = gg.tensor([True, False, True])
    x = gg.tensor(base, requires_grad=True)
    assert gradcheck(lambda t: t.masked_fill(mask, 0.5), (x,))


def test_where_scalar_dtypes_and_conditions_match_torch():
    c = [True, False, True]
    for a, b in [(1, 0), (True, False), (1, 0.5), (True, 0), (True, 0.5), (1.0, 0.0)]:
        y, t = gg.where(gg.tensor(c), a, b), torch.where(torch.tensor(c), a, b)
        assert str(y.dtype) == str(t.dtype).replace("torch.", ""), (a, b)
        assert y.tolist() == t.tolist()
    y = gg.where(gg.tensor([1, 0, 1], dtype=gg.uint8), 1.0, 0.0)  # deprecated in PyTorch
    assert y.tolist() == [1.0, 0.0, 1.0]
    for cond in ([1, 0, 1], [1.0, 0.0, 1.0]):
        with pytest.raises(RuntimeError, match="where: expected condition to be a boolean"):
            gg.where(gg.tensor(cond), 1.0, 0.0)


def test_negative_slice_steps_keep_working_with_gradients():
    # A gpugrad feature (PyTorch raises "step must be greater than zero").
    x = gg.tensor(BASE, requires_grad=True)
    y = x[:, ::-1]
    np.testing.assert_array_equal(y.numpy(), BASE[:, ::-1])
    assert gradcheck(lambda t: t[:, ::-2, 1:], (x,))
