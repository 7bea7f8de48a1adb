"""The benchmarks run end to end and write their result files (tiny sizes: no timing asserted)."""

import json
import os
import subprocess
import sys

from gpugrad.cli import main


def test_bench_step_quick_writes_json_and_png(tmp_path, capsys):
    assert main(["bench", "step", "--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "step-cpu-quick.json").read_text())
    case = result["cases"][0]
    assert case["model"] == "lenet" and case["gpugrad"]["median_ms"] > 0
    assert case["peak_mb"]["gpugrad"] > 0
    assert (tmp_path / "step-cpu-quick.png").read_bytes()[:4] == b"\x89PNG"
    assert "lenet" in capsys.readouterr().out


def test_bench_overhead_writes_json(tmp_path):
    assert main(["bench", "overhead", "--rounds", "2", "--iters", "5", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "overhead-cpu.json").read_text())
    assert result["gpugrad"]["per_op_us"] > 0 and result["ops_per_step"] == 12


def test_bench_conv_quick_compares_the_algorithms_and_writes_json(tmp_path, capsys):
    assert main(["bench", "conv", "--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "conv-cpu.json").read_text())
    rows = result["results"]
    # 8 channels reach auto's Winograd threshold and its blocked passes, an RGB-like 3 does
    # not.
    assert [r["auto_picks"] for r in rows] == ["winograd", "im2col", "winograd"]
    assert [r["winograd_passes"] for r in rows] == ["blocked", "whole batch", "blocked"]
    has_torch = "torch" in result["machine"]
    for r in rows:
        names = {"auto", "im2col", "winograd", "winograd-whole", "winograd-blocked",
                 "auto-forward"}
        assert names <= set(r["median_ms"])
        assert all(ms > 0 for ms in r["median_ms"].values())
        assert r["speedup"]["winograd_vs_im2col"] > 0
        assert r["speedup"]["winograd_vs_whole_batch"] > 0
        assert r["speedup"]["blocked_vs_whole_batch"] > 0
        # The forward alone, against PyTorch's where it is installed.
        assert ("auto_forward_vs_torch" in r["speedup"]) == has_torch
    assert "auto picks" in capsys.readouterr().out


def test_bench_conv_passes_times_both_winograd_passes(tmp_path, capsys):
    assert main(["bench", "conv", "--passes", "--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "conv-passes-cpu.json").read_text())
    assert not (tmp_path / "conv-cpu.json").exists()
    for r in result["results"]:
        assert set(r["median_ms"]) == {"blocked", "whole"}
        assert all(ms > 0 for ms in r["median_ms"].values()) and r["blocked_vs_whole"] > 0
        assert r["blocks"] == 1 and r["image_bytes"] > 0
        assert r["auto_blocked"] is True  # 8 and 16 channels, small images
    assert "blocked/whole" in capsys.readouterr().out


def test_bench_pool_quick_writes_json(tmp_path, capsys):
    assert main(["bench", "pool", "--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "pool-cpu-quick.json").read_text())
    entry = result["shapes"]["2x3x8x8"]
    assert result["device"] == "cpu" and result["quick"] is True
    assert not (tmp_path / "pool-cpu.json").exists()  # a smoke run keeps the recorded file
    assert entry["kernels"] > 0 and entry["composite"] > 0
    assert entry["ratio_composite_over_kernels"] > 0
    assert "2x3x8x8" in capsys.readouterr().out


def test_bench_pool_runs_on_simulated_cuda(tmp_path):
    """--device cuda times the CUDA kernels (here in Numba's simulator, in a child process:
    the switch must be set before numba.cuda is imported). PyTorch has no simulated GPU, so
    it sits this one out."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    subprocess.run([sys.executable, "-m", "gpugrad", "bench", "pool", "--device", "cuda",
                    "--quick", "--out", str(tmp_path)], check=True, env=env, timeout=300,
                   capture_output=True)
    result = json.loads((tmp_path / "pool-cuda-quick.json").read_text())
    assert result["device"] == "cuda"
    entry = result["shapes"]["2x3x8x8"]
    assert entry["kernels"] > 0 and entry["composite"] > 0 and "torch" not in entry


def test_bench_linear_node_writes_json(tmp_path, capsys):
    from gpugrad.bench import linear_node

    assert linear_node.main(["--rounds", "2", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "linear-node-cpu.json").read_text())
    assert [c["ratio_one_over_three"] > 0 for c in data["cases"]] == [True] * 3
    assert "1 node ms" in capsys.readouterr().out
