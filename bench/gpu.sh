#!/usr/bin/env bash
# One GPU session, one call, under 8 minutes: search phases, projections, final throughput on
# synthetic CIFAR-shaped data (32x32x3, 45k/5k); appends to bench/RESULTS.md with the GPU name.
#   bash bench/gpu.sh            # on a CUDA machine
#   bash bench/gpu.sh --smoke    # tiny sizes on the CPU, appends nothing (tests the script)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
[ -x /work/venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=/work/venv/bin/python
if [ "${1:-}" != "--smoke" ]; then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu.sh: no CUDA device; use --smoke')"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
fi
exec timeout 470 "$PY" bench/gpu_report.py "$@"  # its --deadline (380 s) ends it first
