"""The candidate kernels of bench/gpu_variants.py compile to real PTX without float64 math.
(Their results are checked against the references under the CUDA simulator, in
tests/kernels/simulated_cuda_cases.py, and on a GPU by the script itself.)"""

import pytest
from numba import cuda, types

from gpugrad.bench import gpu_variants
from gpugrad.kernels import ptx


@pytest.mark.parametrize("kernel, n_vectors", [
    (gpu_variants.ce_forward_warp_rows, 4),
    (gpu_variants.ce_backward_warp_rows, 3),
    (gpu_variants.ce_forward_warp_online, 4),
    (gpu_variants.ce_backward_warp_loads_first, 3),
    (gpu_variants.ce_forward_online_guarded8, 4),
    (gpu_variants.ce_forward_online_guarded16, 4),
    (gpu_variants.ce_forward_online16_labels_last, 4),
    (gpu_variants.ce_forward_online16_labels_last_regs32, 4),
    (gpu_variants.ce_backward_loads_first_regs40, 3),
    (gpu_variants.ce_forward_fast, 4),
])  # fmt: skip
def test_candidates_compile_without_float64(kernel, n_vectors):
    f = types.float32
    m2, v = types.Array(f, 2, "C"), types.Array(f, 1, "C")
    labels = types.Array(types.int64, 1, "C")
    outs = (m2,) if n_vectors == 3 else ()
    sig = (m2, labels, v, v, types.int64, f, f, *[v] * n_vectors, *outs)
    code, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
    assert ".entry" in code
    assert not ptx.f64_instructions(code)


def test_float_division_im2col_compiles():
    """Its index math is float64 on purpose (divmod_by); the data stays float32."""
    f, i = types.float32, types.int64
    flat = types.Array(f, 1, "C")
    sig = (flat, *[i] * 12, f, i, i, types.float64, types.float64, types.boolean, flat)
    code, _ = cuda.compile_ptx(gpu_variants.im2col_float_divisions.py_func, sig, cc=(9, 0))
    assert ".entry" in code
    assert "ld.global.f32" in code and "st.global.f32" in code
    sig = (flat, *[i] * 12, f, i, i, i, i, *[types.float64] * 3, types.boolean, flat)
    code, _ = cuda.compile_ptx(gpu_variants.im2col_channel_groups.py_func, sig, cc=(9, 0))
    assert "ld.global.f32" in code and "st.global.f32" in code
    fixed = gpu_variants.make_im2col_fixed(3, 3, f)
    sig = (flat, *[i] * 10, f, i, i, *[types.float64] * 3, types.boolean, flat)
    code, _ = cuda.compile_ptx(fixed.py_func, sig, cc=(9, 0))
    assert code.count("st.global.f32") == 18  # nine taps, unrolled, in each layout's branch
    assert ".local" not in code  # the taps stay in registers


def test_timing_refuses_the_cpu(capsys):
    assert gpu_variants.main(["--rounds", "1"]) == 2
    assert "needs a real CUDA GPU" in capsys.readouterr().err
