"""The command line: train writes its outputs, evaluate reads them, errors are clear."""

import json
import subprocess
import sys

import pytest

from gpugrad.cli import main


def test_info_prints_versions_and_devices(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for word in ("numpy", "numba", "cupy", "devices", "CUDA"):
        assert word in out


def test_info_shows_the_conv_algorithm_setting(capsys):
    from gpugrad import kernels

    with kernels.conv_algorithm_mode("im2col"):
        assert main(["info"]) == 0
    assert "conv2d       im2col (GPUGRAD_CONV_ALGO" in capsys.readouterr().out


def test_train_writes_checkpoint_metrics_and_plot_then_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--epochs", "2", "--limit-batches", "4", "--batch-size", "32",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    epochs = metrics["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    for key in ("train_loss", "test_loss", "test_accuracy", "images_per_second", "seconds"):
        assert isinstance(epochs[-1][key], float)
    assert 0.0 <= epochs[-1]["test_accuracy"] <= 1.0
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "test acc" in printed and "done:" in printed
    assert main(["evaluate", "--checkpoint", str(out / "checkpoint.safetensors")]) == 0
    assert f"{100 * epochs[-1]['test_accuracy']:.2f}%" in capsys.readouterr().out


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    args = ["train", "--epochs", "2", "--limit-batches", "3", "--batch-size", "16",
            "--no-progress"]
    assert main(args + ["--out", str(tmp_path / "full")]) == 0
    # The same run, stopped after epoch 1 (as if killed), then resumed from its checkpoint.
    assert main(args + ["--out", str(tmp_path / "cut"), "--stop-after", "1"]) == 0
    assert main(args + ["--out", str(tmp_path / "cut"), "--resume"]) == 0
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())["epochs"]
    resumed = json.loads((tmp_path / "cut" / "metrics.json").read_text())["epochs"]
    assert len(resumed) == 2
    assert resumed[0]["step_losses"] == full[0]["step_losses"]
    assert resumed[1]["step_losses"] == full[1]["step_losses"]
    assert resumed[1]["test_loss"] == full[1]["test_loss"]


def test_missing_dataset_and_device_errors_are_clear(tmp_path, capsys):
    code = main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--no-progress",
                 "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "mnist" in err.lower() and str(tmp_path) in err
    code = main(["train", "--device", "cuda", "--no-progress", "--out", str(tmp_path / "o")])
    import gpugrad as gg

    if not gg.cuda.is_available():
        assert code == 2
        assert "CUDA" in capsys.readouterr().err


def test_console_script_entry_point():
    result = subprocess.run([sys.executable, "-m", "gpugrad.cli", "info"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "gpugrad" in result.stdout


@pytest.mark.parametrize(
    "first_import, env, expected",
    [
        ("gpugrad", {}, "OPENBLAS_THREAD_TIMEOUT=18\n"),
        ("numpy", {}, "OPENBLAS_THREAD_TIMEOUT=18 (not applied: NumPy was imported before"),
        ("numpy", {"OPENBLAS_THREAD_TIMEOUT": "20"}, "OPENBLAS_THREAD_TIMEOUT=20\n"),
    ],
)
def test_info_says_whether_the_blas_spin_timeout_took_effect(first_import, env, expected):
    # OpenBLAS reads the variable when NumPy loads it: gpugrad can only set it if it came first.
    import os

    code = f"import {first_import}\nfrom gpugrad.cli import main\nmain(['info'])"
    clean = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env={**clean, **env})
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout


@pytest.mark.parametrize("cc", ["8.0", "9.0"])
def test_kernels_ptx_lists_every_kernel(cc, capsys):
    pytest.importorskip("numba.cuda")
    assert main(["kernels", "--ptx", "--cc", cc]) == 0
    out = capsys.readouterr().out
    for name in ("im2col", "col2im", "relu", "cross_entropy"):
        assert name in out.lower().replace("softmax_cross_entropy", "cross_entropy")
