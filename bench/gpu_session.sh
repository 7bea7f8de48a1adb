#!/usr/bin/env bash
# Everything gpugrad measures on a GPU, in one run: for a machine that is lent for a short time
# and cannot download (CuPy, numba-cuda, PyTorch CUDA and pytest already installed there).
#
#   bash bench/gpu_session.sh [OUT_DIR]      (default: $OUT, else bench/results/gpu)
#
# Installs gpugrad in place without dependencies, records the machine (gpugrad info,
# nvidia-smi), runs the gpu-marked tests, the kernel, training-step and max-pool benchmarks on CUDA, the
# shipped kernels against the ones they replaced (bench/gpu_variants.py), and a short training run
# on the GPU. Each step runs even if an earlier one failed; the exit status
# is the number of failed steps. Everything lands in OUT_DIR, ready to commit under bench/results.
set -u
cd "$(dirname "$0")/.."
out="${1:-${OUT:-bench/results/gpu}}"
mkdir -p "$out"
failed=0

step() {  # step NAME COMMAND...: run, tee the log into OUT_DIR/NAME.log, count failures
    local name=$1
    shift
    echo "=== $name: $*"
    "$@" 2>&1 | tee "$out/$name.log"
    local status=${PIPESTATUS[0]}
    echo "=== $name: exit $status"
    [ "$status" -eq 0 ] || failed=$((failed + 1))
}

step install python3 -m pip install --no-deps --no-build-isolation -e .
# The console script lands beside python3; where that folder is not on PATH, run the module.
if command -v gpugrad >/dev/null; then gpugrad=(gpugrad); else gpugrad=(python3 -m gpugrad); fi
step info "${gpugrad[@]}" info
step nvidia-smi nvidia-smi
step gpu-tests python3 -m pytest -m gpu -q -p no:cacheprovider
step bench-kernels "${gpugrad[@]}" bench kernels --device cuda --out "$out"
step bench-step "${gpugrad[@]}" bench step --device cuda --out "$out"
step bench-pool "${gpugrad[@]}" bench pool --device cuda --out "$out"
step gpu-variants python3 -m gpugrad.bench.gpu_variants --out "$out"
step train "${gpugrad[@]}" train --device cuda --out "$out/train"
echo "failed steps: $failed"
exit "$failed"
