"""The baseline kernels of bench/gpu_variants.py compile to real PTX without float64 math.
(Their results are checked against the references under the CUDA simulator, in
tests/kernels/simulated_cuda_cases.py, and on a GPU by the script itself.)"""

import pytest
from numba import cuda, types

from gpugrad.bench import gpu_variants
from gpugrad.kernels import ptx


@pytest.mark.parametrize("kernel, n_vectors", [
    (gpu_variants.previous_forward_kernel, 4),
    (gpu_variants.previous_backward_kernel, 3),
])  # fmt: skip
def test_previous_kernels_compile_without_float64(kernel, n_vectors):
    f = types.float32
    m2, v = types.Array(f, 2, "C"), types.Array(f, 1, "C")
    labels = types.Array(types.int64, 1, "C")
    outs = (m2,) if n_vectors == 3 else ()
    sig = (m2, labels, v, v, types.int64, f, f, *[v] * n_vectors, *outs)
    code, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
    assert ".entry" in code
    assert not ptx.f64_instructions(code)


def test_run8_forward_is_the_compare_select_build():
    """The baseline keeps what the shipped forward dropped: ex2 without .ftz (ptxas adds a
    denormal fix-up), setp/selp for the running max and 64-bit guards on its last trip; no
    float64 math either way."""
    import re

    f = types.float32
    m2, v = types.Array(f, 2, "C"), types.Array(f, 1, "C")
    labels = types.Array(types.int64, 1, "C")
    sig = (m2, labels, v, v, types.int64, f, f, v, v, v, v, labels)
    code, _ = cuda.compile_ptx(gpu_variants.run8_forward_kernel.py_func, sig, cc=(9, 0))
    assert len(re.findall(r"\bex2\.approx\.f32\b", code)) >= 2 * 16
    assert not re.findall(r"\bmax\.f32\b", code)
    assert not re.findall(r"\bsetp\.(?:lt|le|gt|ge)\.s32\b", code)  # 64-bit guards
    assert not ptx.f64_instructions(code)


@pytest.mark.parametrize("n_cls, threads", [(1, 32), (10, 32), (129, 64), (1000, 256),
                                            (32000, 256)])
def test_previous_row_threads(n_cls, threads):
    assert gpu_variants.row_threads(n_cls) == threads


def test_timing_refuses_the_cpu(capsys):
    assert gpu_variants.main(["--rounds", "1"]) == 2
    assert "needs a real CUDA GPU" in capsys.readouterr().err


def test_kernel_registers_tells_the_sized_kernels_apart(monkeypatch):
    """Every kernel compiled per size shares its builder's Python name: kernel_registers labels
    each with its kernel size (read from a stand-in for CuPy's driver, no GPU here)."""
    import types as pytypes

    import numpy as np

    from gpugrad.kernels import _launch, conv_cuda

    def attribute(attr, ptr):
        return {4: 40 + ptr, 3: 0}[attr]  # registers, local bytes

    driver = pytypes.SimpleNamespace(
        funcGetAttribute=attribute,
        occupancyMaxActiveBlocksPerMultiprocessor=lambda ptr, threads, smem: 6)
    cp = pytypes.SimpleNamespace(cuda=pytypes.SimpleNamespace(driver=driver))
    monkeypatch.setattr(gpu_variants.backend, "cupy_module", lambda: cp)
    flat = (types.Array(types.float32, 1, "C"),)
    kernels = [conv_cuda.sized_col2im_kernel(3, 3, np.float32),
               conv_cuda.sized_col2im_kernel(7, 7, np.float32),
               conv_cuda.sized_im2col_kernel(3, 3, np.dtype(np.float32))]
    fake = {(kernel, flat, 0): pytypes.SimpleNamespace(_function=pytypes.SimpleNamespace(ptr=ptr))
            for ptr, kernel in enumerate(kernels)}
    monkeypatch.setattr(_launch, "_cupy_launchers", fake)
    assert gpu_variants.kernel_registers() == {
        "sized_col2im_kernel[3x3](array(float32, 1d, C))":
            {"registers": 40, "local_bytes": 0, "blocks_per_sm_at_256": 6},
        "sized_col2im_kernel[7x7](array(float32, 1d, C))":
            {"registers": 41, "local_bytes": 0, "blocks_per_sm_at_256": 6},
        "sized_im2col_kernel[3x3](array(float32, 1d, C))":
            {"registers": 42, "local_bytes": 0, "blocks_per_sm_at_256": 6},
    }


def test_a_col2im_mismatch_is_found_among_the_rows():
    rows = [{"variant": "col2im, batch layout, shipped (compiled for 3x3)", "matches_generic": True},
            {"variant": "copy of the columns (the bar)"},
            {"variant": "col2im, channel layout, shipped (compiled for 3x3)",
             "matches_generic": False}]
    assert gpu_variants.col2im_mismatches(rows) == [rows[2]]
    assert gpu_variants.col2im_mismatches(rows[:2]) == []
