"""`gpugrad` command-line edges: explicit zeros are kept, bad values and failures are one
line on stderr with exit code 2, --resume refuses a checkpoint of other settings, a diverging
run stops before it writes a checkpoint. Also gg.manual_seed and gg.cuda.synchronize."""

import json

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.cli import main

QUICK = ["--limit-batches", "2", "--batch-size", "16", "--no-progress"]


def _fails(capsys, argv, *fragments):
    """Run the CLI, expect exit 2 and one stderr line holding every fragment."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _usage_error(capsys, argv, *fragments):
    """argparse errors exit through SystemExit(2), also as one line."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _group(out):
    state = gg.load(out / "checkpoint.safetensors")
    return state["optimizer"]["param_groups"][0]


def test_explicit_zero_lr_and_weight_decay_are_kept(tmp_path):
    out = tmp_path / "lr0"
    assert main(["train", "--epochs", "1", "--lr", "0", "--schedule", "none", "--out",
                 str(out)] + QUICK) == 0
    assert _group(out)["lr"] == 0.0
    out = tmp_path / "wd0"
    assert main(["train", "--epochs", "1", "--optimizer", "adamw", "--weight-decay", "0",
                 "--schedule", "none", "--out", str(out)] + QUICK) == 0
    assert _group(out)["weight_decay"] == 0.0
    out = tmp_path / "wd_default"
    assert main(["train", "--epochs", "1", "--optimizer", "adamw", "--schedule", "none",
                 "--out", str(out)] + QUICK) == 0
    assert _group(out)["weight_decay"] == 1e-2


@pytest.mark.parametrize("extra, message", [
    (["--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["--epochs", "-1", "--schedule", "none"], "--epochs must be >= 1, got -1"),
    (["--epochs", "1", "--lr", "nan"], "--lr must be a finite number >= 0, got nan"),
    (["--epochs", "1", "--weight-decay", "-1"], "--weight-decay must be a finite number >= 0"),
    (["--epochs", "1", "--batch-size", "100000"],
     "--batch-size 100000 exceeds the 10000 training images of mnist-mini"),
])
def test_bad_train_settings_are_one_line(tmp_path, capsys, extra, message):
    _fails(capsys, ["train", "--no-progress", "--out", str(tmp_path / "o")] + extra, message)
    assert not (tmp_path / "o" / "checkpoint.safetensors").exists()


def test_a_diverging_run_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--optimizer", "sgd", "--schedule", "none",
                 "--out", str(out)] + QUICK) == 0
    good = (out / "checkpoint.safetensors").read_bytes()
    capsys.readouterr()
    _fails(capsys, ["train", "--epochs", "1", "--optimizer", "sgd", "--lr", "1e30",
                    "--schedule", "none", "--limit-batches", "3", "--no-progress",
                    "--out", str(out)],
           "training diverged", "the last good checkpoint", "is kept")
    assert (out / "checkpoint.safetensors").read_bytes() == good


@pytest.mark.parametrize("changed, message", [
    (["--optimizer", "sgd"], "--optimizer 'adam' in the checkpoint, 'sgd' given"),
    (["--schedule", "cosine"], "--schedule 'onecycle' in the checkpoint, 'cosine' given"),
    (["--model", "resnet"], "--model 'lenet' in the checkpoint, 'resnet' given"),
    (["--batch-size", "8"], "--batch-size 16 in the checkpoint, 8 given"),
    (["--limit-batches", "3"], "--limit-batches 2 in the checkpoint, 3 given"),
    (["--epochs", "3"], "--epochs 2 in the checkpoint, 3 given"),
])
def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path, capsys, changed, message):
    out = str(tmp_path / "cut")
    args = ["train", "--epochs", "2", "--out", out] + QUICK
    assert main(args + ["--stop-after", "1"]) == 0
    capsys.readouterr()
    flag = changed[0]
    argv = [a for i, a in enumerate(args) if a != flag and (i == 0 or args[i - 1] != flag)]
    _fails(capsys, argv + changed + ["--resume"], "--resume:", message)
    metrics = json.loads((tmp_path / "cut" / "metrics.json").read_text())["epochs"]
    assert len(metrics) == 1  # nothing ran


def test_out_that_is_a_file_is_one_line(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    _fails(capsys, ["train", "--epochs", "1", "--out", str(afile)] + QUICK, "--out", "afile")
    _fails(capsys, ["train", "--epochs", "1", "--out", str(afile / "sub")] + QUICK, "--out")


def test_evaluate_errors_are_one_line(tmp_path, capsys):
    plain = tmp_path / "plain.safetensors"
    gg.save({"model": {"w": gg.ones(2)}}, plain)
    _fails(capsys, ["evaluate", "--checkpoint", str(plain)],
           "not a checkpoint written by gpugrad train", "'config'")
    _fails(capsys, ["evaluate", "--checkpoint", str(tmp_path)], "is a directory")


@pytest.mark.parametrize("cc", ["abc", "9.x", "9", "9.0.1"])
def test_kernels_cc_must_be_major_dot_minor(capsys, cc):
    _usage_error(capsys, ["kernels", "--ptx", "--cc", cc], "--cc", "MAJOR.MINOR", repr(cc))


@pytest.mark.parametrize("argv", [[], ["nonsense"], ["train", "--epochs", "abc"], ["bench"],
                                  ["bench", "nope"], ["bench", "kernels", "--bogus"],
                                  ["bench", "conv", "--bogus"], ["bench", "step", "--rounds", "x"],
                                  ["bench", "overhead", "--bogus"], ["bench", "pool", "--bogus"]])
def test_usage_errors_are_one_line(capsys, argv):
    _usage_error(capsys, argv, "error:")


def test_negative_seed_trains(tmp_path):
    assert main(["train", "--epochs", "1", "--seed", "-1", "--out", str(tmp_path / "s")]
                + QUICK) == 0


def test_manual_seed_takes_negative_seeds_modulo_2_64():
    gg.manual_seed(-1)
    a = gg.randn(5).numpy()
    gg.manual_seed(2**64 - 1)
    np.testing.assert_array_equal(a, gg.randn(5).numpy())
    gg.manual_seed(-(2**63))
    b = gg.randn(5).numpy()
    gg.manual_seed(2**63)
    np.testing.assert_array_equal(b, gg.randn(5).numpy())
    for bad in (2**64, -(2**63) - 1):
        with pytest.raises(ValueError, match=r"manual_seed: seed must be in \[-2\*\*63"):
            gg.manual_seed(bad)
    gg.manual_seed(0)


def test_manual_seed_matches_torch_on_negative_seeds():
    torch = pytest.importorskip("torch")
    torch.manual_seed(-1)
    assert torch.initial_seed() == 2**64 - 1  # the value gpugrad uses for -1


def test_cuda_synchronize_raises_without_cuda():
    if gg.cuda.is_available():
        gg.cuda.synchronize()
        return
    with pytest.raises(RuntimeError, match="synchronize.*CUDA is unavailable"):
        gg.cuda.synchronize()


def test_resume_of_an_adamw_checkpoint_whose_config_recorded_no_weight_decay(tmp_path, capsys):
    """Checkpoints written before 2026-11-27 recorded weight_decay 0.0 in their config while
    adamw trained with its default 0.01: the optimizer state says what the run used, so the
    same flags resume it, and a really different --weight-decay is still refused."""
    out = tmp_path / "old"
    args = ["train", "--epochs", "2", "--optimizer", "adamw", "--out", str(out)] + QUICK
    assert main(args + ["--stop-after", "1"]) == 0
    path = out / "checkpoint.safetensors"
    state = gg.load(path)
    config = json.loads(state["config"])
    config["weight_decay"] = 0.0  # as the old files had it
    state["config"] = json.dumps(config)
    assert state["optimizer"]["param_groups"][0]["weight_decay"] == 0.01
    gg.save(state, path)
    capsys.readouterr()
    _fails(capsys, args + ["--weight-decay", "0.05", "--resume"],
           "--weight-decay 0.01 in the checkpoint, 0.05 given")
    assert main(args + ["--resume"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())["epochs"]
    assert len(metrics) == 2
