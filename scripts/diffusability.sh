#!/usr/bin/env bash
# Which latent diffuses best? Train one denoiser recipe on the autoencoder of each given run and compare.
#   bash scripts/diffusability.sh [--recipe R] [--specmatch PATH] [-o KEY=VALUE]... RUN_DIR...
# Each RUN_DIR is a finished specmatch run (its autoencoder and latent statistics are reused, not retrained);
# results go to runs/diffuse-<run name>, then `specmatch compare` prints them side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
SPECMATCH=.venv/bin/specmatch
recipe=recipes/diffusability.toml
overrides=()
runs=()
while (($#)); do
  case $1 in
    --recipe) recipe=$2; shift 2 ;;
    --specmatch) SPECMATCH=$2; shift 2 ;;
    -o) overrides+=(-o "$2"); shift 2 ;;
    *) runs+=("$1"); shift ;;
  esac
done
if ((${#runs[@]} == 0)); then echo "usage: $0 [--recipe R] [-o KEY=VALUE]... RUN_DIR..." >&2; exit 2; fi
outs=()
for run in "${runs[@]}"; do
  out="runs/diffuse-$(basename "$run")"
  start=$(date +%s)
  "$SPECMATCH" run "$recipe" -o "autoencoder.from_run='$(cd "$run" && pwd)'" --output-dir "$out" \
    ${overrides[@]+"${overrides[@]}"} > "$out.log" 2>&1
  echo "$(basename "$run"): $(( $(date +%s) - start )) s"
  outs+=("$out")
done
"$SPECMATCH" compare "${outs[@]}"
