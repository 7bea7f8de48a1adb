"""bench/step.py's GPU memory accounting, on a stand-in for CuPy's memory-hook API (the real
one needs a GPU: the bench runs it there)."""

from types import SimpleNamespace

import pytest

from gpugrad.bench import step
from gpugrad.ops import conv_gemm


class _HookBase:
    """What the bench uses of cupy.cuda.MemoryHook: a context manager calling back by keyword."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


FAKE_CUPY = SimpleNamespace(cuda=SimpleNamespace(MemoryHook=_HookBase))


def test_peak_in_use_counts_what_was_in_use_before_and_the_high_water_mark():
    hook = step._peak_in_use_hook(FAKE_CUPY, start_bytes=1000)
    with hook:
        hook.malloc_postprocess(device_id=0, size=500, mem_size=512, mem_ptr=1, pmem_id=1)
        hook.malloc_postprocess(device_id=0, size=100, mem_size=512, mem_ptr=2, pmem_id=2)
        hook.free_postprocess(device_id=0, mem_size=512, mem_ptr=1, pmem_id=1)
        hook.malloc_postprocess(device_id=0, size=200, mem_size=512, mem_ptr=3, pmem_id=3)
        hook.free_postprocess(device_id=0, mem_size=512, mem_ptr=2, pmem_id=2)
        hook.free_postprocess(device_id=0, mem_size=512, mem_ptr=3, pmem_id=3)
    # The rounded sizes count (what the pool hands out), and the peak is two blocks at once.
    assert hook.peak == 1000 + 2 * 512
    assert hook.in_use == 1000


def test_columns_kept_runs_the_step_with_the_cpu_setting_and_restores_it():
    seen = []
    kept = step._with_columns_kept(lambda: seen.append(conv_gemm.KEEP_COLUMNS["cuda"]))
    kept()
    assert seen == [True]
    assert conv_gemm.KEEP_COLUMNS["cuda"] is False

    def fails():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        step._with_columns_kept(fails)()
    assert conv_gemm.KEEP_COLUMNS["cuda"] is False


def test_as_before_runs_the_step_with_every_node_keeping_its_inputs_and_restores():
    from gpugrad.ops import elementwise

    seen = []

    def probe():
        seen.append((elementwise.Relu.keeps_inputs, elementwise.Add.keeps_inputs,
                     conv_gemm.KEEP_COLUMNS["cuda"]))

    step._as_before_memory_changes(probe)()
    assert seen == [(True, True, True)]
    assert elementwise.Relu.keeps_inputs is False and elementwise.Add.keeps_inputs is False
    assert elementwise.Mul.keeps_inputs is True  # never changed
    assert conv_gemm.KEEP_COLUMNS["cuda"] is False
    assert "keeps_inputs" not in elementwise.Mul.__dict__
