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


def test_the_reference_path_checks_labels_and_devices_too():
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    _, lse, tw = K.softmax_cross_entropy_forward_reference(x, np.array([0, 2, 1]))
    args = (x, np.array([0, -3, 1]), lse, np.array(1, np.float32))
    with K.reference_mode():
        # It wrapped -3 to class 2: a finite, wrong gradient, even with check_labels=False.
        with pytest.raises(ValueError, match="-3"):
            K.softmax_cross_entropy_backward(*args, total_weight=tw, check_labels=False)
        with pytest.raises((ValueError, TypeError)):
            K.relu_forward(x, device="tpu")  # the device is checked before the path is chosen


def test_use_reference_takes_a_bool_only():
    with pytest.raises(TypeError, match="use_reference: expected True or False, got 'no'"):
        K.use_reference("no")
    assert not K.reference_enabled()


def test_check_targets_checks_its_class_count_and_ignore_index():
    t = np.array([0, 3, 6])
    with pytest.raises(TypeError, match="num_classes must be an int"):
        K.check_targets(t, 7.0, -100)
    with pytest.raises(TypeError, match="num_classes must be an int"):
        K.check_targets(t, None, -100)
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        K.check_targets(t, 6, 6.0)
    K.check_targets(t, 7, -100)


@pytest.mark.parametrize("args,message", [
    ((2, 5, 1, 0, 1), "no window fits"), ((5, 0, 1, 0, 1), "kernel size must be >= 1"),
    ((5, 2, 0, 0, 1), "stride must be >= 1"), ((5.0, 2, 1, 0, 1), "in_size must be an int"),
])
def test_pool_output_size_checks_its_arguments(args, message):
    with pytest.raises((ValueError, TypeError), match=message):
        K.pool_output_size(*args)
    assert K.pool_output_size(28, 2, 2, 0, 1) == 14
