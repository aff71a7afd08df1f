#!/usr/bin/env bash
# Check a GPU machine against the CPU path, in one report (details: benchmarks/gpu_check.py):
# NCCL DDP on every visible GPU vs one CPU process, --precision bf16 vs fp32, the reproduce
# script on a GPU (shortened), synthesis latency. Exit 0 all ok, 1 a mismatch or a failed
# step, 2 no GPU visible (without --dry-run).
#
#   benchmarks/gpu_check.sh            # on a machine with GPUs
#   benchmarks/gpu_check.sh --dry-run  # the same steps on the CPU, gloo, tiny (under a minute)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
if [[ ! -x "$PYTHON" ]]; then
  echo "gpu_check: $PYTHON not found; create the venv (README: Install) or set PYTHON" >&2
  exit 2
fi
if [[ " $* " != *" --dry-run "* ]] && command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader || true
fi
exec "$PYTHON" benchmarks/gpu_check.py "$@"
