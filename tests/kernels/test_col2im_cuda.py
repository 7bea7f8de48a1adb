"""The CUDA col2im kernel compiled per kernel size: its PTX (no GPU needed), and both col2im
kernels' results under Numba's CUDA simulator (sim_col2im_cases.py, in a subprocess)."""

import re

import numpy as np
import pytest
from numba import types

from gpugrad.kernels import conv_cuda, ptx

# A 64-bit integer division or remainder: dozens of emulated instructions on a GPU.
_DIV64 = re.compile(r"^\s*(?:@!?%p\d+\s+)?(?:div|rem)\.[su]64\b", re.MULTILINE)


def _ptx(kh, kw, dtype, cc):
    kernel = conv_cuda.sized_col2im_kernel(kh, kw, np.dtype(dtype))
    flat = types.Array(types.float64 if dtype == "float64" else types.float32, 1, "C")
    argtypes = (flat, *[types.int64] * 12, *[types.uint64] * 5, types.boolean, flat)
    return ptx.kernel_ptx(kernel, argtypes, cc)


def test_the_argument_types_are_the_ones_signatures_lists():
    for dtype in ("float32", "float64"):
        (listed,) = [a for name, _, a in conv_cuda.signatures(dtype)
                     if name == "sized_col2im_kernel[3x3]"]
        flat = types.Array(types.float64 if dtype == "float64" else types.float32, 1, "C")
        assert listed == (flat, *[types.int64] * 12, *[types.uint64] * 5, types.boolean, flat)


@pytest.fixture(scope="module")
def records():
    return {(dtype, cc): _ptx(3, 3, dtype, cc)
            for dtype in ("float32", "float64") for cc in ((8, 0), (9, 0))}


def test_the_3x3_kernel_compiles_for_both_dtypes_and_both_targets(records):
    for (dtype, cc), text in records.items():
        assert ".entry" in text and f".target sm_{cc[0]}{cc[1]}" in text, (dtype, cc)


def test_float32_kernel_does_no_float64_arithmetic(records):
    for (dtype, cc), text in records.items():
        found = ptx.f64_instructions(text)
        if dtype == "float32":
            assert found == [], (cc, found[:5])
        else:
            assert found, cc  # positive control: the float64 build adds in float64


def test_compiled_kernel_divides_by_multiplying(records):
    """No 64-bit division anywhere (the grid-stride loop is a while loop, since range() with a
    runtime step divides to count its trips); the divisions by w, h, C and the strides are
    multiply-highs."""
    for (dtype, cc), text in records.items():
        assert _DIV64.findall(text) == [], (dtype, cc)
        assert "mul.hi.u64" in text, (dtype, cc)


def test_detector_sees_a_64_bit_division():
    """Positive control for _DIV64: the generic col2im_kernel divides by w, h and C."""
    (argtypes,) = [a for name, _, a in conv_cuda.signatures("float32") if name == "col2im_kernel"]
    text = ptx.kernel_ptx(conv_cuda.col2im_kernel, argtypes, (9, 0))
    assert _DIV64.findall(text)


@pytest.mark.parametrize("kh, kw", [(7, 7), (1, 7)])
def test_largest_and_one_row_kernels_keep_their_taps_in_registers(kh, kw):
    """The 49 taps of a 7x7 unroll into registers: no local (stack) array in the PTX."""
    text = _ptx(kh, kw, "float32", (9, 0))
    assert ".local" not in text
    assert len(re.findall(r"ld\.global\.f32", text)) == kh * kw
    assert not _DIV64.findall(text) and not ptx.f64_instructions(text)


@pytest.mark.simulator("sim_col2im_cases.py", timeout=900)
def test_col2im_kernels_under_the_simulator(simulated):
    assert " passed" in simulated


def test_sized_kernels_only_where_their_divisions_are_exact():
    """divmod_by is exact for i * d < 2**64: past that (a 16 GiB row of 2**32 + 1 pixels is
    possible on a large GPU) the generic kernels run, which divide exactly at any size."""
    assert conv_cuda.uses_sized_kernel(3, 3, 128 * 64 * 56 * 56, 56, 56, 64)
    assert conv_cuda.uses_sized_kernel(7, 7, 1, 1)
    assert not conv_cuda.uses_sized_kernel(7, 8, 100, 10)  # 56 taps
    assert not conv_cuda.uses_sized_kernel(3, 3, 2**32 + 1, 1, 2**32 + 1, 1)
    assert conv_cuda.uses_sized_kernel(3, 3, 2**31, 2**32 - 1)
    assert not conv_cuda.uses_sized_kernel(3, 3, 2**32, 2**32)
