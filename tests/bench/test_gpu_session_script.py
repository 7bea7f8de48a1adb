"""bench/gpu_session.sh, the one-shot GPU run: every step runs, logs, and failures are counted.

The commands themselves need a GPU; here they are stand-ins on PATH that record their
arguments, so the script's own logic (and the gpugrad command lines it uses) is what is tested.
"""

import os
import shlex
import stat
import subprocess
from pathlib import Path

from gpugrad.cli import build_parser

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_session.sh"


def fake(bin_dir: Path, name: str, exit_code: int) -> None:
    path = bin_dir / name
    path.write_text(f'#!/bin/sh\necho "{name} $*" >> "$CALLS"\necho "{name} ran"\n'
                    f"exit {exit_code}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_script_runs_every_step_and_counts_failures(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake(bin_dir, "python3", 0)
    fake(bin_dir, "gpugrad", 0)
    fake(bin_dir, "nvidia-smi", 1)  # one failing step
    calls = tmp_path / "calls.txt"
    out = tmp_path / "out"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls)}
    result = subprocess.run(["bash", str(SCRIPT), str(out)], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed steps: 1" in result.stdout
    for name in ("install", "info", "nvidia-smi", "gpu-tests", "bench-kernels", "bench-step",
                 "bench-pool", "gpu-variants", "train"):
        assert "ran" in (out / f"{name}.log").read_text()
    lines = calls.read_text().splitlines()
    assert lines[0] == "python3 -m pip install --no-deps --no-build-isolation -e ."
    assert "python3 -m pytest -m gpu -q -p no:cacheprovider" in lines
    assert f"python3 -m gpugrad.bench.gpu_variants --out {out}" in lines
    # The gpugrad command lines it runs are valid for gpugrad's own parser.
    for line in lines:
        words = shlex.split(line)
        if words[0] == "gpugrad" and words[1] != "bench":
            build_parser().parse_args(words[1:])
    assert f"gpugrad bench kernels --device cuda --out {out}" in lines
    assert f"gpugrad bench pool --device cuda --out {out}" in lines
    assert f"gpugrad train --device cuda --out {out}/train" in lines


def test_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
