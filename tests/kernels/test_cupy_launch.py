"""The CuPy launch path's argument layout, checked without a GPU against Numba's own typing and
against the parameter list of every kernel's PTX (what the driver will read)."""

import re
import types as pytypes

import numba
import numpy as np
import pytest
from numba import types

from gpugrad.kernels import _cupy_launch
from gpugrad.kernels.ptx import DTYPES, KERNEL_MODULES, kernel_ptx

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
    ptx = kernel_ptx(kernel, argtypes, (9, 0))
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


def test_integers_beyond_int64_go_to_numbas_launcher():
    assert _cupy_launch.numba_argtypes([2**63], np.ndarray) is None
    assert _cupy_launch.numba_argtypes([-(2**63)], np.ndarray) == (types.int64,)


class _Kernel:
    """A stand-in for a Numba dispatcher: only its name is read on the fallback path."""

    def __init__(self, name):
        self.py_func = pytypes.SimpleNamespace(__name__=name)


@pytest.fixture
def fake_gpu(monkeypatch):
    """numba.cuda.gpus and a CuPy stand-in whose device contexts do nothing."""
    import contextlib

    from numba import cuda as numba_cuda

    from gpugrad.kernels import _launch

    monkeypatch.setattr(numba_cuda, "gpus", [contextlib.nullcontext()], raising=False)
    monkeypatch.setattr(_launch, "_cupy_launchers", {})
    monkeypatch.setattr(_launch, "_warned", set())
    return pytypes.SimpleNamespace(
        ndarray=np.ndarray,
        cuda=pytypes.SimpleNamespace(Device=lambda index: contextlib.nullcontext()))


def _builder_raising(monkeypatch, exc):
    calls = []

    def build(kernel, argtypes, cp):
        calls.append(argtypes)
        raise exc

    monkeypatch.setattr(_cupy_launch, "CupyLauncher", build)
    return calls


def test_missing_api_falls_back_for_good_with_one_warning(fake_gpu, monkeypatch):
    from gpugrad.kernels import _launch

    calls = _builder_raising(monkeypatch, TypeError("cannot convert ObjectCode to bytes"))
    kernel, args = _Kernel("relu_k"), (np.zeros(4, np.float32), 3)
    with pytest.warns(RuntimeWarning, match="cannot launch relu_k through CuPy"):
        assert _launch._cupy_launcher(kernel, args, 0, fake_gpu) is None
    assert _launch._cupy_launcher(kernel, args, 0, fake_gpu) is None
    assert len(calls) == 1  # remembered: not built again


def test_passing_failure_falls_back_this_time_only(fake_gpu, monkeypatch):
    import warnings

    from gpugrad.kernels import _launch

    calls = _builder_raising(monkeypatch, RuntimeError("CUDA_ERROR_OUT_OF_MEMORY"))
    kernel, args = _Kernel("ce_k"), (np.zeros(4, np.float32),)
    with pytest.warns(RuntimeWarning, match="CUDA_ERROR_OUT_OF_MEMORY"):
        assert _launch._cupy_launcher(kernel, args, 0, fake_gpu) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per kernel
        assert _launch._cupy_launcher(kernel, args, 0, fake_gpu) is None
    assert len(calls) == 2  # tried again


def test_built_launcher_is_cached_per_argument_types(fake_gpu, monkeypatch):
    from gpugrad.kernels import _launch

    built = []
    monkeypatch.setattr(_cupy_launch, "CupyLauncher",
                        lambda kernel, argtypes, cp: built.append(argtypes) or object())
    kernel = _Kernel("k")
    first = _launch._cupy_launcher(kernel, (np.zeros(3, np.float32),), 0, fake_gpu)
    assert _launch._cupy_launcher(kernel, (np.ones(5, np.float32),), 0, fake_gpu) is first
    _launch._cupy_launcher(kernel, (np.ones(5, np.float64),), 0, fake_gpu)
    assert len(built) == 2
    strided = np.zeros((4, 4), np.float32)[:, ::2]
    assert _launch._cupy_launcher(kernel, (strided,), 0, fake_gpu) is None


def test_launcher_switch_restores_and_rejects_unknown_names():
    import gpugrad.kernels as K

    assert K.cuda_launcher() == "cupy"  # the default
    with K.cuda_launcher_mode(" Numba "):
        assert K.cuda_launcher() == "numba"
        with pytest.raises(RuntimeError), K.cuda_launcher_mode("cupy"):
            assert K.cuda_launcher() == "cupy"
            raise RuntimeError("leave the block")
        assert K.cuda_launcher() == "numba"
    assert K.cuda_launcher() == "cupy"
    with pytest.raises(ValueError, match=r"use_cuda_launcher: expected one of .*'numba'.*'fast'"):
        K.use_cuda_launcher("fast")
    assert K.cuda_launcher() == "cupy"


def test_launcher_env_var_is_read_at_import():
    import os
    import subprocess
    import sys

    code = "import gpugrad.kernels as K; print(K.cuda_launcher())"
    env = dict(os.environ, GPUGRAD_CUDA_LAUNCHER="numba")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "numba", out.stderr
    env["GPUGRAD_CUDA_LAUNCHER"] = "fast"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "GPUGRAD_CUDA_LAUNCHER: expected one of" in out.stderr
