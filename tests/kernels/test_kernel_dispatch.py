"""The reference switch, device routing, and a cheap import that compiles nothing."""

import os
import subprocess
import sys

import numpy as np
import pytest

import gpugrad.kernels as K
from gpugrad.kernels import _launch


@pytest.fixture(autouse=True)
def _restore_reference_flag():
    before = K.reference_enabled()
    yield
    K.use_reference(before)


def test_use_reference_and_context_manager():
    K.use_reference(False)
    assert not K.reference_enabled()
    with K.reference_mode():
        assert K.reference_enabled()
        assert _launch.choose_path("relu", "cpu") == _launch.REFERENCE
        with K.reference_mode(False):
            assert _launch.choose_path("relu", "cpu") == _launch.CPU
        assert K.reference_enabled()
    assert not K.reference_enabled()
    K.use_reference(True)
    assert K.reference_enabled()


def test_reference_mode_restores_on_error():
    K.use_reference(False)
    with pytest.raises(RuntimeError):
        with K.reference_mode():
            raise RuntimeError("boom")
    assert not K.reference_enabled()


def test_every_dispatcher_gives_the_reference_answer_in_reference_mode():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    logits = rng.standard_normal((40, 6)).astype(np.float32)
    target = rng.integers(0, 6, 40)
    with K.reference_mode():
        cols = K.im2col(x, (3, 3), (1, 1), (1, 1), (1, 1))
        np.testing.assert_array_equal(cols, K.im2col_reference(x, (3, 3), (1, 1), (1, 1), (1, 1)))
        img = K.col2im(cols, 6, 5, (1, 1), (1, 1), (1, 1))
        np.testing.assert_array_equal(img, K.col2im_reference(cols, 6, 5, (1, 1), (1, 1), (1, 1)))
        loss, lse, tw = K.softmax_cross_entropy_forward(logits, target)
        ref = K.softmax_cross_entropy_forward_reference(logits, target)
        np.testing.assert_array_equal(loss, ref[0])
        big = rng.standard_normal(1 << 16).astype(np.float32)
        np.testing.assert_array_equal(K.relu_forward(big), K.relu_reference(big))
        # check_targets still runs on the reference path.
        target[0] = 99
        with pytest.raises(ValueError, match="target label 99"):
            K.softmax_cross_entropy_forward(logits, target)


def _run_python(code, **env):
    full_env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120
    )


def test_env_var_turns_reference_on_at_import():
    code = "import gpugrad.kernels as K; print(K.reference_enabled())"
    assert _run_python(code, GPUGRAD_KERNELS="reference").stdout.strip() == "True"
    assert _run_python(code, GPUGRAD_KERNELS="auto").stdout.strip() == "False"
    bad = _run_python(code, GPUGRAD_KERNELS="fastest")
    assert bad.returncode != 0 and "GPUGRAD_KERNELS" in bad.stderr and "'fastest'" in bad.stderr


def test_import_is_lazy():
    # Importing compiles nothing and leaves numba.cuda (0.25 s, and the CUDA driver) alone.
    code = (
        "import sys, gpugrad.kernels as K\n"
        "from gpugrad.kernels import conv, loss, activation\n"
        "twins = [conv._im2col_cpu, conv._col2im_cpu, loss._softmax_cross_entropy_forward_cpu,\n"
        "         loss._softmax_cross_entropy_backward_cpu, activation._relu_forward_cpu,\n"
        "         activation._relu_backward_cpu]\n"
        "print(sum(len(f.signatures) for f in twins), 'numba.cuda' in sys.modules)"
    )
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "False"]


def test_cuda_kernels_reachable_from_family_modules():
    from gpugrad.kernels import activation, conv, loss

    assert conv.im2col_kernel is not None and conv.col2im_kernel is not None
    assert loss.softmax_cross_entropy_forward_kernel is not None
    assert activation.relu_backward_kernel is not None
    with pytest.raises(AttributeError):
        conv.no_such_kernel  # noqa: B018


def test_small_cpu_work_runs_on_the_calling_thread():
    import numba

    seen = []

    def twin(fail=False):
        seen.append(numba.get_num_threads())
        if fail:
            raise ValueError("boom")

    before = numba.get_num_threads()
    _launch.run_cpu_twin(twin, 10)
    _launch.run_cpu_twin(twin, _launch.PARALLEL_MIN_WORK)
    with pytest.raises(ValueError):
        _launch.run_cpu_twin(twin, 10, True)
    assert seen == [1, before, 1]
    assert numba.get_num_threads() == before
