"""Compile every CUDA kernel to PTX (no GPU needed) and inspect it.

Used by ``gpugrad kernels --ptx [--cc 9.0]`` and by the tests, which fail if a float32 kernel's
PTX does float64 arithmetic: a bare ``0.0`` or ``math.inf`` in a kernel promotes float32 math to
float64, which runs at 1/64 speed on consumer GPUs. Importing this module imports numba.cuda.
"""

from __future__ import annotations

import functools
import re

from numba import cuda

from gpugrad.kernels import activation_cuda, conv_cuda, loss_cuda, pool_cuda

# Every module of CUDA kernels; each lists its kernels and launch signatures in signatures(dtype).
KERNEL_MODULES = (conv_cuda, loss_cuda, activation_cuda, pool_cuda)
DTYPES = ("float32", "float64")

# A float64 arithmetic, comparison or conversion instruction (``cvt`` covers both directions:
# cvt.f64.f32 and cvt.rn.f32.f64). Loads, stores and moves of .f64 are not arithmetic.
_F64_INSTRUCTION = re.compile(
    r"^\s*(?:@!?%p\d+\s+)?"
    r"(?:add|sub|mul|div|fma|mad|max|min|neg|abs|sqrt|rsqrt|rcp|ex2|lg2|sin|cos|"
    r"setp|set|selp|slct|testp|copysign|cvt)\.[\w.]*f64\b",
    re.MULTILINE,
)


def kernel_ptx(kernel, argtypes, cc) -> str:
    """The PTX of a CUDA kernel (a ``cuda.jit`` dispatcher) for `argtypes` and compute
    capability `cc`, compiled once per process: a kernel takes 0.1-3 s to compile, and the
    CLI's listing, the PTX checks and the launcher's parameter checks ask for the same ones
    (the test suite spent 70 s compiling them two or three times over)."""
    return _compiled(kernel, tuple(argtypes), tuple(int(v) for v in cc))


@functools.cache
def _compiled(kernel, argtypes: tuple, cc: tuple) -> str:
    ptx, _ = cuda.compile_ptx(kernel.py_func, argtypes, cc=cc)
    return ptx


def compile_all(cc=(9, 0)) -> list[dict]:
    """PTX of every kernel for every dtype it is launched with, for compute capability `cc`."""
    cc = tuple(int(v) for v in cc)
    records = []
    for module in KERNEL_MODULES:
        for dtype in DTYPES:
            for name, kernel, argtypes in module.signatures(dtype):
                ptx = kernel_ptx(kernel, argtypes, cc)
                records.append(
                    {
                        "kernel": name,
                        "signature": f"({', '.join(str(t) for t in argtypes)})",
                        "dtype": dtype,
                        "cc": f"{cc[0]}.{cc[1]}",
                        "ptx_bytes": len(ptx.encode()),
                        "ptx": ptx,
                    }
                )
    return records


def f64_instructions(ptx: str) -> list[str]:
    """The float64 arithmetic instructions in `ptx`, one string per line found."""
    return [m.group(0).strip() for m in _F64_INSTRUCTION.finditer(ptx)]


def has_f64_arithmetic(ptx: str) -> bool:
    return bool(_F64_INSTRUCTION.search(ptx))


def format_ptx_table(records) -> str:
    """A plain-text table: kernel, dtype, cc, PTX size, float64 arithmetic, signature."""
    header = ("kernel", "dtype", "cc", "ptx bytes", "f64 math", "signature")
    rows = [
        (
            r["kernel"],
            r.get("dtype", ""),
            r["cc"],
            str(r["ptx_bytes"]),
            "yes" if has_f64_arithmetic(r["ptx"]) else "no",
            r["signature"],
        )
        for r in records
    ]
    widths = [max(len(row[k]) for row in [header, *rows]) for k in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)
