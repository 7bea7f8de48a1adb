"""The col2im candidate of bench/gpu_variants.py: its PTX (no GPU needed), and its results under
Numba's CUDA simulator (tests/kernels/sim_col2im_variant_cases.py, in a subprocess)."""

import os
import re
from pathlib import Path

import pytest
from numba import cuda

from gpugrad.bench import gpu_variants
from gpugrad.kernels import ptx

CASES = Path(__file__).parents[1] / "kernels" / "sim_col2im_variant_cases.py"

# A 64-bit integer division or remainder: dozens of emulated instructions on a GPU.
_DIV64 = re.compile(r"^\s*(?:@!?%p\d+\s+)?(?:div|rem)\.[su]64\b", re.MULTILINE)


def _ptx(kh, kw, dtype, cc):
    kernel = gpu_variants.sized_col2im_kernel(kh, kw, dtype)
    text, _ = cuda.compile_ptx(kernel.py_func, gpu_variants.sized_col2im_argtypes(dtype), cc=cc)
    return text


@pytest.fixture(scope="module")
def records():
    return {(dtype, cc): _ptx(3, 3, dtype, cc)
            for dtype in ("float32", "float64") for cc in ((8, 0), (9, 0))}


def test_the_3x3_candidate_compiles_for_both_dtypes_and_both_targets(records):
    for (dtype, cc), text in records.items():
        assert ".entry" in text and f".target sm_{cc[0]}{cc[1]}" in text, (dtype, cc)


def test_float32_candidate_does_no_float64_arithmetic(records):
    for (dtype, cc), text in records.items():
        found = ptx.f64_instructions(text)
        if dtype == "float32":
            assert found == [], (cc, found[:5])
        else:
            assert found, cc  # positive control: the float64 build adds in float64


def test_candidate_divides_by_multiplying(records):
    """No 64-bit division anywhere (the grid-stride loop is a while loop, since range() with a
    runtime step divides to count its trips); the divisions by w, h, C and the strides are
    multiply-highs."""
    for (dtype, cc), text in records.items():
        assert _DIV64.findall(text) == [], (dtype, cc)
        assert "mul.hi.u64" in text, (dtype, cc)


def test_detector_sees_a_64_bit_division():
    """Positive control for _DIV64: the shipped col2im_kernel divides by w, h and C."""
    from gpugrad.kernels import conv_cuda

    (argtypes,) = [a for name, _, a in conv_cuda.signatures("float32") if name == "col2im_kernel"]
    text, _ = cuda.compile_ptx(conv_cuda.col2im_kernel.py_func, argtypes, cc=(9, 0))
    assert _DIV64.findall(text)


@pytest.mark.parametrize("kh, kw", [(7, 7), (1, 7)])
def test_largest_and_one_row_kernels_keep_their_taps_in_registers(kh, kw):
    """The 49 taps of a 7x7 unroll into registers: no local (stack) array in the PTX."""
    text = _ptx(kh, kw, "float32", (9, 0))
    assert ".local" not in text
    assert len(re.findall(r"ld\.global\.f32", text)) == kh * kw
    assert not _DIV64.findall(text) and not ptx.f64_instructions(text)


# Opt-in: the candidate is not shipped (gpu_variants checks it against the reference on the GPU
# before timing it), and its simulator sweep took anywhere from 25 s to past 300 s from run to
# run on the 2-core machine. Every device-function call in the simulator takes a lock shared by
# all simulated threads, and the candidate's tap loops make thousands of them; in some runs
# those calls stalled (one launch: 0.25 s in one run, 150 s in another).
@pytest.mark.skipif(os.environ.get("GPUGRAD_SIM_COL2IM") != "1",
                    reason="set GPUGRAD_SIM_COL2IM=1 to run the col2im candidate's simulator sweep")
def test_candidate_under_the_simulator(run_under_simulator):
    run_under_simulator(CASES, timeout=1800)


def test_kernel_registers_tells_the_candidates_apart_by_size(monkeypatch):
    """Every candidate's Python name is sized_col2im_kernel: kernel_registers labels each with
    its kernel size (read from a stand-in for CuPy's driver, no GPU here)."""
    import types as pytypes

    from numba import types

    from gpugrad.kernels import _launch

    def attribute(attr, ptr):
        return {4: 40 + ptr, 3: 0}[attr]  # registers, local bytes

    driver = pytypes.SimpleNamespace(
        funcGetAttribute=attribute,
        occupancyMaxActiveBlocksPerMultiprocessor=lambda ptr, threads, smem: 6)
    cp = pytypes.SimpleNamespace(cuda=pytypes.SimpleNamespace(driver=driver))
    monkeypatch.setattr(gpu_variants.backend, "cupy_module", lambda: cp)
    flat = (types.Array(types.float32, 1, "C"),)
    fake = {}
    for ptr, (kh, kw) in enumerate([(3, 3), (7, 7)]):
        launcher = pytypes.SimpleNamespace(_function=pytypes.SimpleNamespace(ptr=ptr))
        fake[(gpu_variants.sized_col2im_kernel(kh, kw, "float32"), flat, 0)] = launcher
    monkeypatch.setattr(_launch, "_cupy_launchers", fake)
    registers = gpu_variants.kernel_registers()
    assert registers == {
        "sized_col2im_kernel[3x3](array(float32, 1d, C))":
            {"registers": 40, "local_bytes": 0, "blocks_per_sm_at_256": 6},
        "sized_col2im_kernel[7x7](array(float32, 1d, C))":
            {"registers": 41, "local_bytes": 0, "blocks_per_sm_at_256": 6},
    }
