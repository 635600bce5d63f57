#!/usr/bin/env bash
# GPU check: train every registered bundle for a fixed time on synthetic data with the GPU path on
# (amp, channels_last, cudnn_benchmark, pin_memory; torch.compile with MEDPIPE_GPU_CHECK_COMPILE=1),
# print images/s and the validation metrics as a table, and one JSON summary as the last line
# (also written to OUT_DIR/gpu_check.json). Exits 2 when no CUDA GPU is visible (unless
# MEDPIPE_GPU_CHECK_ALLOW_CPU=1), 1 when a bundle failed, 0 otherwise.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]                       # default OUT_DIR: runs/gpu_check
#   MEDPIPE_GPU_CHECK_TIME_S=300 MEDPIPE_GPU_CHECK_BUNDLES=sich_cls,sich_seg bash benchmarks/gpu_check.sh
#
# Every setting (MEDPIPE_GPU_CHECK_*) is described in benchmarks/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if [ ! -x "$PY" ]; then
    echo "gpu_check: $PWD/.venv is missing; create it first (make test or make demo install the project)." >&2
    exit 2
fi
export HF_HUB_OFFLINE=1 YOLO_OFFLINE=1
exec "$PY" benchmarks/gpu_check.py "$@"
