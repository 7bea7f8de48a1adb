"""Smoke test of `gpugrad bench kernels --quick` and the shared bench helpers."""

import json

import pytest

from gpugrad.bench import common


def test_quick_kernels_bench_writes_json_and_chart(tmp_path, capsys, monkeypatch):
    from gpugrad.bench import kernels as bench

    # main() sets this default for its own process; keep it from leaking into later tests.
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "kernels-cpu.json").read_text())
    assert (tmp_path / "kernels-cpu.png").stat().st_size > 0
    assert report["device"] == "cpu" and report["quick"] is True
    assert report["machine"]["omp_wait_policy"] == "PASSIVE"
    rows = {(r["kernel"], r["phase"]): r for r in report["results"]}
    assert set(rows) == {
        ("cross_entropy", "forward"),
        ("cross_entropy", "backward"),
        ("cross_entropy", "forward+backward"),
        ("cross_entropy", "forward, kernel only"),
        ("cross_entropy", "backward, kernel only"),
        ("im2col", "forward"),
        ("col2im", "forward"),
        ("conv2d", "forward+backward"),
        ("conv2d_im2col", "forward+backward"),
        ("relu", "forward"),
        ("relu", "backward"),
        ("relu", "forward+backward"),
    }
    assert {r["scale"] for r in report["results"]} == {"quick"}
    for kind in ("into_existing_array", "into_new_array"):
        assert report["copy_bandwidth_gbps"][kind]["best"] > 0
    relu = rows[("relu", "forward")]
    assert relu["bytes"] == 2 * 4 * 65536
    ours = relu["contenders"]["gpugrad"]
    assert ours["median_ms"] > 0 and ours["gbps"] > 0
    assert ours["pct_copy_bandwidth"] > 0 and ours["pct_new_array_copy_bandwidth"] > 0
    assert relu["speedup"]["vs_numpy"] > 0
    assert "kernel" in capsys.readouterr().out


def test_paired_rounds_rotate_and_ratio():
    order = []
    fns = {name: (lambda name=name: order.append(name)) for name in "abc"}
    samples = common.paired_rounds(fns, rounds=3, warmup=0)
    assert order == list("abcbcacab")
    assert all(len(s) == 3 for s in samples.values())
    ratio = common.paired_ratio({"base": [2.0, 4.0, 9.0], "new": [1.0, 1.0, 3.0]}, "base", "new")
    assert ratio == 3.0


def test_write_json_is_atomic_and_readable(tmp_path):
    path = common.write_json(tmp_path / "sub" / "r.json", {"x": 1.5})
    assert json.loads(path.read_text()) == {"x": 1.5}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]
    with pytest.raises(TypeError):
        common.write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"x": 1.5}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_gpu_targets_read_the_large_rows():
    from gpugrad.bench import kernels as bench

    def row(kernel, phase, scale, pct):
        return {"kernel": kernel, "phase": phase, "scale": scale, "shape": "s",
                "contenders": {"gpugrad": {"pct_copy_bandwidth": pct}}}

    results = [row("relu", "backward", "full", 10.0), row("relu", "backward", "large", 84.0),
               row("im2col", "forward", "large", 30.0)]
    goals = {g["target"].split(" (")[0]: g for g in bench.evaluate_gpu_targets(results)}
    assert set(goals) == {"relu backward", "im2col forward"}
    assert goals["relu backward"]["value"] == 84.0 and goals["relu backward"]["met"]
    assert goals["im2col forward"]["goal"] == ">= 50" and not goals["im2col forward"]["met"]
