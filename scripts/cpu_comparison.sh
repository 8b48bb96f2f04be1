#!/usr/bin/env bash
# Train CPU comparison recipes (recipes/cpu/*.toml), analyse each latent and print them side by side.
#   bash scripts/cpu_comparison.sh                       every recipe, as written (about 35 minutes on 2 cores)
#   bash scripts/cpu_comparison.sh --only "sdvae esm dsm" --tag f2 \
#       -o "autoencoder.params.preset='micro-f2d4'" -o train.autoencoder.steps=1500    (a variant of some)
# Options: --only "NAMES" (recipe names, default all), --tag T (runs go to runs/cpu-T-NAME instead of
# runs/cpu-NAME), --specmatch PATH (default .venv/bin/specmatch); every -o KEY=VALUE goes to each run.
set -euo pipefail
cd "$(dirname "$0")/.."
SPECMATCH=.venv/bin/specmatch
only=""
tag=""
overrides=()
while (($#)); do
  case $1 in
    --only) only=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --specmatch) SPECMATCH=$2; shift 2 ;;
    -o) overrides+=(-o "$2"); shift 2 ;;
    *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
mkdir -p runs
# the recipe's diagnostics (latent spectrum, KL to delta = 0 and 1) plus the low-pass PSNR at k = 0, 8, 12
ANALYZE=(--diagnostic lowpass-rfid -o "evaluation.diagnostic_params.lowpass-rfid.levels=[0, 8, 12]"
         -o evaluation.diagnostic_params.lowpass-rfid.frechet=false)
runs=()
for recipe in recipes/cpu/*.toml; do
  name=$(basename "$recipe" .toml)
  [[ $name == base* ]] && continue
  [[ -n $only && " $only " != *" $name "* ]] && continue
  out="runs/cpu-${tag:+$tag-}$name"
  start=$(date +%s)
  "$SPECMATCH" run "$recipe" --output-dir "$out" ${overrides[@]+"${overrides[@]}"} > "$out.log" 2>&1
  echo "$name: $(( $(date +%s) - start )) s"
  "$SPECMATCH" analyze "$out" --images 256 "${ANALYZE[@]}" > /dev/null
  runs+=("$out")
done
"$SPECMATCH" compare "${runs[@]}"
