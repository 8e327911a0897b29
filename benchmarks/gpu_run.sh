#!/usr/bin/env bash
# The GPU measurement as one command for the device tool's lent machine (PyTorch and JAX
# there, no TensorFlow, no network: Keras runs on JAX, its wheels travel with the tree).
#
# Prepare once, here (the wheels match the device's Python 3.12; .gpu_wheels is ignored):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 -d .gpu_wheels keras namex optree
# Then call the device tool's run with  command: bash benchmarks/gpu_run.sh  carry: [".gpu_wheels"]
# (timeout_s 540 leaves time for a rerun in a 15-minute lease). Figures land in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps .gpu_wheels/*.whl
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 480 python3 benchmarks/gpu_bench.py --out "${OUT:-/tmp}/gpu_bench.json"
