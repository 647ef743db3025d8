#!/usr/bin/env bash
# The GPU check, prepared for a session that is lent the device machine (not yet run on one).
#
# Here, once:      make device-wheels        (MONAI's pure-Python wheel into .whl/, git-ignored)
# On the device:   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
#
# The device image has python3 with torch, numpy and scipy but no package index; everything the
# network-only benchmark needs beyond that is the MONAI wheel. Results land in $OUT (fetched back):
# gpu.txt (nvidia-smi), gpu_network.json and gpu_network.log. The input shapes are those of the
# held-out cohort (benchmarks/data/segmentation_shapes.json, written here by
# `python -m benchmarks.bench_gpu_network --write-shapes DIR/cohort`).
set -euo pipefail
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps .whl/monai-*.whl
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
# 400 TFLOP/s: the usable dense bf16 figure for an H100; 790: a bf16 matrix product measured on the H200
PYTHONPATH=. PYTHONUNBUFFERED=1 timeout 420 python3 -m benchmarks.bench_gpu_network --device cuda \
  --limit "${GPU_CHECK_LIMIT:-12}" --repeats 3 --peak-tflops 400 --peak-tflops 790 \
  --json "$OUT/gpu_network.json" 2>&1 | tee "$OUT/gpu_network.log"
