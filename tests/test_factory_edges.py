"""Factory edge cases against PyTorch: dtype inference, overflow, unsupported dtypes, ranges."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import factory

torch = pytest.importorskip("torch")


def _dt(t):
    return str(t.dtype).replace("torch.", "")


@pytest.mark.parametrize("data", [
    [np.float64(1.5), 2.0],
    [np.float32(1.5), np.float64(2.0)],
    [np.int32(1), np.int32(2)],
    [np.int32(1), 2],
    [np.int32(1), 2.5],
    [np.float16(1), np.float16(2)],
    [np.float16(1), 2],
    [np.float16(1), 2.0],
    [[np.int16(1)], [np.int16(2)]],
    [np.int16(1), np.int32(2)],
    [np.bool_(True), False],
    [1, np.float32(2)],
    [np.array([1.5]), np.array([2.0])],
    [2**70, 1.5],
    [-(2**63)],
    [True, 2],
    [],
])
@pytest.mark.filterwarnings("ignore:Creating a tensor from a list of numpy")
def test_tensor_infers_dtypes_as_torch(data):
    y, t = gg.tensor(data), torch.tensor(data)
    assert str(y.dtype) == _dt(t)
    assert y.tolist() == t.tolist()


def test_tensor_keeps_0d_tensor_dtypes_in_lists():
    y = gg.tensor([gg.tensor(1.0, dtype=gg.float64), 2.0])
    assert y.dtype == gg.float64


@pytest.mark.parametrize("data", [[2**63], [2**63, -1], [2**64], [-(2**63) - 1], 2**63])
def test_tensor_refuses_python_ints_beyond_int64(data):
    with pytest.raises(ValueError, match="tensor: a Python int cannot be converted to int64"):
        gg.tensor(data)
    with pytest.raises(ValueError):
        torch.tensor(data)


@pytest.mark.parametrize("data, dtype", [
    ([float("nan")], "int64"), ([float("inf")], "int64"), ([1e30], "int64"),
    ([300], "uint8"), ([2**63], "int64"),
])
def test_tensor_with_an_integer_dtype_checks_values(data, dtype):
    with pytest.raises((RuntimeError, ValueError), match="tensor:.*without overflow"):
        gg.tensor(data, dtype=getattr(gg, dtype))
    with pytest.raises((RuntimeError, ValueError)):
        torch.tensor(data, dtype=getattr(torch, dtype))


def test_tensor_with_an_integer_dtype_converts_as_torch():
    for data, dtype in [([1.5, -2.7], "int64"), ([-1], "uint8"), ([True, 3], "int8")]:
        y, t = gg.tensor(data, dtype=getattr(gg, dtype)), torch.tensor(
            data, dtype=getattr(torch, dtype))
        assert y.tolist() == t.tolist() and str(y.dtype) == _dt(t)


@pytest.mark.parametrize("array", [
    np.array([1, "a"], dtype=object), np.array(["a", "b"]),
    np.array(["2020-01-01"], dtype="datetime64[D]"), np.array([1 + 1j]),
    np.ones(2, dtype=np.longdouble),
])
def test_tensor_refuses_unsupported_array_dtypes(array):
    with pytest.raises(TypeError, match="tensor: (unsupported dtype|complex)"):
        gg.tensor(array)
    with pytest.raises(TypeError, match="from_numpy: (unsupported dtype|complex)"):
        gg.from_numpy(array)


def test_big_endian_arrays():
    be = np.arange(6, dtype=">f4")
    y = gg.tensor(be)  # a copy in native order
    assert y.dtype == gg.float32 and y.tolist() == list(range(6))
    assert (y + gg.ones(6)).tolist() == list(range(1, 7))
    assert gg.as_tensor(be).dtype == gg.float32
    with pytest.raises(ValueError, match="from_numpy: the array's byte order"):
        gg.from_numpy(be)
    with pytest.raises(ValueError, match="byte order"):
        torch.from_numpy(be)


def test_factories_refuse_unsupported_dtypes():
    for make in (lambda: gg.zeros(2, dtype="U3"), lambda: gg.ones(2, dtype=np.complex64),
                 lambda: gg.tensor([1.0], dtype=np.dtype("U3")), lambda: gg.full((2,), 1, dtype=object)):
        with pytest.raises(TypeError, match="(zeros|ones|tensor|full): (unsupported dtype|complex)"):
            make()


@pytest.mark.parametrize("fill", [np.int32(3), 3, np.float64(3.0), np.bool_(True), True, 1.5])
def test_full_infers_dtypes_as_torch(fill):
    y, t = gg.full((2,), fill), torch.full((2,), fill)
    assert str(y.dtype) == _dt(t) and y.tolist() == t.tolist()


@pytest.mark.parametrize("fill", [3, True, 3.0])
def test_full_with_a_0d_tensor_fill(fill):
    y, t = gg.full((2,), gg.tensor(fill)), torch.full((2,), torch.tensor(fill))
    assert str(y.dtype) == _dt(t) and y.tolist() == t.tolist()
    with pytest.raises(TypeError, match="full: fill_value must be"):
        gg.full((2,), gg.tensor([fill]))


@pytest.mark.parametrize("fill, dtype", [(float("nan"), "int64"), (300, "uint8"), (1e6, "float16"),
                                         (200, "int8")])
def test_full_checks_the_fill_value(fill, dtype):
    with pytest.raises(RuntimeError, match="full: value .* cannot be converted"):
        gg.full((2,), fill, dtype=getattr(gg, dtype))
    with pytest.raises(RuntimeError):
        torch.full((2,), fill, dtype=getattr(torch, dtype))
    assert gg.full((2,), -1, dtype=gg.uint8).tolist() == [255, 255]


@pytest.mark.parametrize("args, kwargs", [
    ((0, 2.5, 1), {"dtype": "int64"}),
    ((0.5, 3, 1), {"dtype": "int64"}),
    ((-1.5, 3, 1), {"dtype": "int64"}),
    ((1, 2, 0.1), {}),
    ((1, 2, 0.1), {"dtype": "float64"}),
    ((0, 5, 2.0), {}),
    ((np.int32(3),), {}),
    ((np.float64(3),), {}),
    ((True,), {}),
    ((0, 300), {"dtype": "uint8"}),
])
def test_arange_matches_torch(args, kwargs):
    kw_gg = {k: getattr(gg, v) for k, v in kwargs.items()}
    kw_t = {k: getattr(torch, v) for k, v in kwargs.items()}
    y, t = gg.arange(*args, **kw_gg), torch.arange(*args, **kw_t)
    assert str(y.dtype) == _dt(t)
    np.testing.assert_allclose(y.numpy().astype(np.float64), t.numpy().astype(np.float64))


def test_arange_with_tensor_bounds_infers_int64():
    assert gg.arange(gg.tensor(3)).dtype == gg.int64
    assert gg.arange(gg.tensor(3)).tolist() == [0, 1, 2]
    assert gg.arange(0, 5, gg.tensor(2)).tolist() == [0, 2, 4]
    assert gg.arange(gg.tensor(3.0)).dtype == gg.float32


@pytest.mark.parametrize("args, kwargs, exc, pattern", [
    ((0, 2, 0.5), {"dtype": gg.int64}, ValueError, "arange: step must be nonzero"),
    ((0, float("inf")), {}, RuntimeError, "arange: unsupported range"),
    ((0, float("nan")), {}, RuntimeError, "arange: unsupported range"),
    ((0, 5, 1e-300), {}, RuntimeError, "arange: invalid size"),
    ((0, 1e20), {}, RuntimeError, "arange: invalid size"),
])
def test_arange_bad_ranges_raise_naming_arange(args, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        gg.arange(*args, **kwargs)


def test_randperm_and_randint_refuse_values_the_dtype_cannot_hold():
    with pytest.raises(RuntimeError, match="randperm: n=300 is too large for int8"):
        gg.randperm(300, dtype=gg.int8)
    with pytest.raises(RuntimeError, match="randperm.*float16"):
        gg.randperm(3000, dtype=gg.float16)
    assert sorted(gg.randperm(128, dtype=gg.int8).tolist()) == list(range(128))
    with pytest.raises(RuntimeError, match="randint: high - 1 = 299 is out of bounds for uint8"):
        gg.randint(0, 300, (3,), dtype=gg.uint8)
    with pytest.raises(RuntimeError, match="randint: low=-1 is out of bounds for uint8"):
        gg.randint(-1, 5, (3,), dtype=gg.uint8)
    y = gg.randint(0, 256, (50,), dtype=gg.uint8)
    assert y.dtype == gg.uint8
    with pytest.raises(RuntimeError):
        torch.randint(0, 300, (3,), dtype=torch.uint8)


def test_randint_wants_a_tuple_size_and_int_bounds():
    with pytest.raises(TypeError, match="randint: size must be a tuple of ints, got 3"):
        gg.randint(0, 10, 3)
    with pytest.raises(TypeError, match="randint: expected randint"):
        gg.randint(10, 3)
    with pytest.raises(TypeError, match="randint: low must be an int"):
        gg.randint(0.5, 10, (3,))
    with pytest.raises(TypeError):
        torch.randint(0, 10, 3)


def test_rand_like_and_randn_like():
    x = gg.zeros(2, 3, dtype=gg.float64)
    for fn in (factory.rand_like, factory.randn_like):
        y = fn(x)
        assert y.shape == (2, 3) and y.dtype == gg.float64
        assert fn(x, dtype=gg.float32).dtype == gg.float32
    with pytest.raises(TypeError, match="floating-point"):
        factory.rand_like(gg.zeros(2, dtype=gg.int64))
