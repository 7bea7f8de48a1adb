"""Tensor creation, attributes, conversion and interop."""

import numpy as np
import pytest

import gpugrad as gg


def test_tensor_dtype_inference_follows_pytorch():
    assert gg.tensor([1.0, 2.0]).dtype == gg.float32
    assert gg.tensor(3.5).dtype == gg.float32
    assert gg.tensor([1, 2]).dtype == gg.int64
    assert gg.tensor([True, False]).dtype == gg.bool
    assert gg.tensor(np.zeros(3, dtype=np.float64)).dtype == gg.float64
    assert gg.tensor(np.zeros(3, dtype=np.int32)).dtype == gg.int32
    assert gg.tensor(1.1, dtype=gg.float64).item() == 1.1


def test_tensor_copies_but_from_numpy_shares():
    a = np.zeros(3, dtype=np.float32)
    t = gg.tensor(a)
    s = gg.from_numpy(a)
    a[0] = 5
    assert t.numpy()[0] == 0 and s.numpy()[0] == 5


def test_ragged_nested_lists_raise_clear_error():
    with pytest.raises(ValueError, match="ragged"):
        gg.tensor([[1.0, 2.0], [3.0]])
    with pytest.raises(TypeError, match="could not infer a dtype"):
        gg.tensor(["a", object()])


def test_factories():
    assert gg.zeros(2, 3).shape == (2, 3) and gg.zeros((2, 3)).dtype == gg.float32
    assert gg.ones(4, dtype=gg.float64).dtype == gg.float64
    assert gg.full((2,), 7).dtype == gg.int64
    np.testing.assert_array_equal(gg.full((2,), 1.5).numpy(), [1.5, 1.5])
    assert gg.empty(3).shape == (3,)
    np.testing.assert_array_equal(gg.arange(5).numpy(), np.arange(5))
    assert gg.arange(0, 1, 0.25).dtype == gg.float32
    np.testing.assert_allclose(gg.linspace(0, 1, 5).numpy(), np.linspace(0, 1, 5))
    np.testing.assert_array_equal(gg.eye(3).numpy(), np.eye(3))
    x = gg.randn(2, 3, dtype=gg.float64)
    assert gg.zeros_like(x).dtype == gg.float64 and gg.ones_like(x).shape == (2, 3)
    assert gg.full_like(x, 2.0).numpy().sum() == 12
    r = gg.randint(0, 10, (100,))
    assert r.dtype == gg.int64 and 0 <= r.numpy().min() and r.numpy().max() < 10
    u = gg.rand(1000)
    assert 0 <= u.numpy().min() and u.numpy().max() < 1


def test_manual_seed_reproduces_random_tensors():
    gg.manual_seed(123)
    a = gg.randn(5).numpy()
    gg.manual_seed(123)
    b = gg.randn(5).numpy()
    np.testing.assert_array_equal(a, b)


def test_attributes_and_conversions():
    x = gg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert x.shape == (2, 2) and x.ndim == 2 and x.size() == (2, 2) and x.size(1) == 2
    assert x.numel() == 4 and x.is_leaf and x.grad_fn is None
    y = x * 2
    assert not y.is_leaf and y.grad_fn is not None
    assert x.double().dtype == gg.float64 and x.long().dtype == gg.int64
    assert x.float().dtype == gg.float32
    assert x.to(gg.float64).dtype == gg.float64
    assert x.to("cpu") is x
    assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert x[0, 1].item() == 2.0
    assert x.detach().requires_grad is False
    assert x.contiguous() is x
    assert x.T.contiguous().data.flags.c_contiguous
    assert gg.device("cpu") == x.device == "cpu"
    np.testing.assert_array_equal(np.asarray(x), [[1.0, 2.0], [3.0, 4.0]])


def test_grad_is_settable_and_dtype_cast_is_differentiable():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    x.grad = gg.tensor([5.0, 5.0])
    x.grad = None
    x.double().sum().backward()
    assert x.grad.dtype == gg.float32
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


def test_repr_is_useful():
    assert repr(gg.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    r = repr(gg.tensor([1.0], dtype=gg.float64, requires_grad=True))
    assert "dtype=float64" in r and "requires_grad=True" in r
    assert "grad_fn=" in repr(gg.tensor([1.0], requires_grad=True) * 2)


def test_dlpack_round_trips_with_numpy_and_torch():
    x = gg.arange(6).reshape(2, 3).to(gg.float32)
    a = np.from_dlpack(x)
    np.testing.assert_array_equal(a, x.numpy())
    back = gg.from_dlpack(np.arange(4.0))
    assert back.dtype == gg.float64
    torch = pytest.importorskip("torch")
    t = torch.from_dlpack(x)
    t[0, 0] = 42.0  # zero-copy: the write shows through
    assert x[0, 0].item() == 42.0
    g = gg.from_dlpack(torch.ones(3))
    np.testing.assert_array_equal(g.numpy(), [1, 1, 1])


def test_scalar_operands_keep_tensor_dtype():
    x = gg.tensor([1.0, 2.0])
    assert (x * 2.5).dtype == gg.float32
    assert (2 + x).dtype == gg.float32
    i = gg.tensor([1, 2])
    assert (i * 2).dtype == gg.int64
    assert (i * 2.5).dtype == gg.float32
    assert (gg.tensor([1.0], dtype=gg.float64) + x).dtype == gg.float64


def test_inplace_on_leaf_requiring_grad_raises_while_recording():
    x = gg.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        x.add_(1.0)
    with gg.no_grad():
        x.add_(1.0)
    assert x.item() == 2.0


def test_max_min_with_dim_return_values_and_indices():
    x = gg.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    values, indices = x.max(dim=1)
    np.testing.assert_array_equal(values.numpy(), [5.0, 7.0])
    np.testing.assert_array_equal(indices.numpy(), [1, 0])
    assert indices.dtype == gg.int64
    assert x.min(dim=0).indices.tolist() == [0, 1, 0]
    assert x.argmax().item() == 3 and x.argmin(dim=1).tolist() == [0, 1]
    assert x.max().item() == 7.0


def test_split_chunk_stack_cat_shapes():
    x = gg.arange(10).reshape(5, 2).float()
    assert [p.shape for p in x.split(2)] == [(2, 2), (2, 2), (1, 2)]
    assert [p.shape for p in x.split([1, 4])] == [(1, 2), (4, 2)]
    assert [p.shape for p in x.chunk(2)] == [(3, 2), (2, 2)]
    assert gg.stack([x, x], dim=1).shape == (5, 2, 2)
    assert gg.cat([x, x], dim=1).shape == (5, 4)


def test_a_uint8_index_tensor_indexes_by_position():
    # README, "Differences from PyTorch": PyTorch still reads uint8 as a (deprecated) mask.
    x = gg.arange(6).reshape(3, 2)
    picked = x[gg.tensor(np.array([2, 0], np.uint8))]
    assert picked.tolist() == [[4, 5], [0, 1]]


def test_nonzero_method_and_zero_dim_input_as_torch():
    torch = pytest.importorskip("torch")
    for values in ([0.0, 2.0, 0.0, 3.0], 3.0, 0.0, [[1, 0], [0, 1]]):
        ours, theirs = gg.tensor(values).nonzero(), torch.tensor(values).nonzero()
        assert ours.shape == tuple(theirs.shape)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_to_refuses_a_dtype_gpugrad_cannot_compute_in():
    with pytest.raises(TypeError, match="to: unsupported dtype <U3"):
        gg.ones(2).to(np.dtype("U3"))
    assert gg.ones(2).to(gg.int32).dtype == gg.int32
