"""The benchmarks run end to end and write their result files (tiny sizes: no timing asserted)."""

import json

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
    # 8 channels reach auto's Winograd threshold, an RGB-like 3 does not; 16 channels in a
    # batch of small images take Winograd's blocked passes.
    assert [r["auto_picks"] for r in rows] == ["winograd", "im2col", "winograd"]
    assert [r["winograd_passes"] for r in rows] == ["whole batch", "whole batch", "blocked"]
    for r in rows:
        assert {"auto", "im2col", "winograd", "winograd-whole"} <= set(r["median_ms"])
        assert all(ms > 0 for ms in r["median_ms"].values())
        assert r["speedup"]["winograd_vs_im2col"] > 0
        assert r["speedup"]["winograd_vs_whole_batch"] > 0
    assert "auto picks" in capsys.readouterr().out
