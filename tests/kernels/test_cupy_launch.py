"""The CuPy launch path's argument layout, checked without a GPU against Numba's own typing and
against the parameter list of every kernel's PTX (what the driver will read)."""

import re
import types as pytypes

import numba
import numpy as np
import pytest
from numba import cuda, types

from gpugrad.kernels import _cupy_launch
from gpugrad.kernels.ptx import DTYPES, KERNEL_MODULES

_PTX_TYPE = {np.dtype(np.uint64): "u64", np.dtype(np.int64): "u64", np.dtype(np.float32): "f32",
             np.dtype(np.float64): "f64", np.dtype(np.uint8): "u8"}


def _stand_in(ty: types.Array, rng):
    """An object with a C-contiguous array's attributes for array type `ty`."""
    shape = tuple(int(n) for n in rng.integers(1, 6, ty.ndim))
    itemsize = ty.dtype.bitwidth // 8
    strides, step = [], itemsize
    for n in reversed(shape):
        strides.insert(0, step)
        step *= n
    return pytypes.SimpleNamespace(size=int(np.prod(shape)), itemsize=itemsize, shape=shape,
                                   strides=tuple(strides), data=pytypes.SimpleNamespace(ptr=4096))


def _value(ty, rng):
    if isinstance(ty, types.Array):
        return _stand_in(ty, rng)
    if ty == types.boolean:
        return True
    return np.dtype(str(ty)).type(3)


def _ptx_params(kernel, argtypes):
    ptx, _ = cuda.compile_ptx(kernel.py_func, argtypes, cc=(9, 0))
    start = ptx.index(".entry")
    return re.findall(r"\.param\s+\.(\w+)", ptx[start:ptx.index(")", start)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("module", KERNEL_MODULES, ids=lambda m: m.__name__.split(".")[-1])
def test_params_match_every_kernels_ptx(module, dtype):
    rng = np.random.default_rng(0)
    for name, kernel, argtypes in module.signatures(dtype):
        args = [_value(ty, rng) for ty in argtypes]
        params = _cupy_launch.kernel_params(argtypes, args)
        assert [_PTX_TYPE[p.dtype] for p in params] == _ptx_params(kernel, argtypes), name


def test_array_params_are_numbas_layout():
    a = _stand_in(types.Array(types.float32, 2, "C"), np.random.default_rng(1))
    params = _cupy_launch.kernel_params((types.Array(types.float32, 2, "C"),), [a])
    assert [int(p) for p in params] == [0, 0, a.size, 4, 4096, *a.shape, *a.strides]


@pytest.mark.parametrize("value", [
    np.zeros((2, 3), np.float32), np.zeros(5, np.float64), np.zeros((1, 1, 2, 2), np.float32),
    np.zeros(4, np.int64), 7, -1, True, False, 1.5, np.float32(2.5), np.float64(2.5),
    np.int64(-100), np.bool_(True),
])  # fmt: skip
def test_argtypes_are_what_numba_infers(value):
    (ty,) = _cupy_launch.numba_argtypes([value], np.ndarray)
    assert ty == numba.typeof(value)


def test_arguments_numbas_launcher_must_take():
    strided = np.zeros((4, 4), np.float32)[:, ::2]
    assert _cupy_launch.numba_argtypes([strided, 1], np.ndarray) is None
    assert _cupy_launch.numba_argtypes([object()], np.ndarray) is None
    assert _cupy_launch.numba_argtypes([1j], np.ndarray) is None


def test_scalars_are_packed_at_their_width():
    argtypes = (types.int64, types.float32, types.float64, types.boolean)
    params = _cupy_launch.kernel_params(argtypes, [5, 0.5, 0.25, False])
    assert [p.dtype for p in params] == [np.int64, np.float32, np.float64, np.uint8]
    assert [p.item() for p in params] == [5, 0.5, 0.25, 0]


def test_cubin_bytes_from_each_form_numba_returns(tmp_path):
    ObjectCode = pytest.importorskip("cuda.core").ObjectCode

    image = b"\x7fELF stand-in for a cubin"
    assert _cupy_launch.cubin_bytes(image) == image
    assert _cupy_launch.cubin_bytes(memoryview(image)) == image
    assert _cupy_launch.cubin_bytes(ObjectCode.from_cubin(image)) == image
    path = tmp_path / "k.cubin"
    path.write_bytes(image)
    assert _cupy_launch.cubin_bytes(pytypes.SimpleNamespace(code=str(path))) == image
    with pytest.raises(TypeError, match="cannot read a linked image"):
        _cupy_launch.cubin_bytes(object())
