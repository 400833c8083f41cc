#!/usr/bin/env bash
# One short GPU check: install dsecli without touching a CUDA torch, run the CUDA tests, then the
# GPU section of benchmarks/speed.py. Meant for a machine with an NVIDIA GPU; writes a log to
# $OUT (or ./gpu_check_out) and prints it.
#
#   bash benchmarks/gpu_check.sh [--quick]
set -u
OUT="${OUT:-./gpu_check_out}"
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
QUICK="${1:-}"
{
  echo "== nvidia-smi"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | head -3
  echo "== torch"
  python - <<'EOF'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
EOF
  # a CUDA torch already present stays; pip must not replace it with a CPU wheel
  if python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    pip install -q --no-deps -e . && pip install -q numpy scipy h5py typer rich pytest hypothesis scikit-learn 2>&1 | tail -2
  else
    pip install -q -e ".[test]" 2>&1 | tail -2
  fi
  echo "== pytest -k cuda"
  timeout 300 python -m pytest -q -p no:cacheprovider -k cuda tests/ 2>&1 | tail -15
  echo "== benchmarks/speed.py --gpu-only $QUICK"
  timeout 420 python benchmarks/speed.py --gpu-only $QUICK --timeout 300 --json "$OUT/gpu_speed.json" 2>&1
} 2>&1 | tee "$LOG"
