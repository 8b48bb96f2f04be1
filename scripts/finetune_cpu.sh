#!/usr/bin/env bash
# Fine-tune on the CPU: train the plain autoencoder recipes/cpu/ae.toml (once; runs/cpu-ae), fine-tune it with
# recipes/cpu/finetune/NAME.toml, analyse both latents and print them side by side (spectrum KL before/after).
#   bash scripts/finetune_cpu.sh                        ESM (recipes/cpu/finetune/esm.toml)
#   bash scripts/finetune_cpu.sh --only "esm dsm" --tag f2 -o "autoencoder.params.preset='micro-f2d4'"
# Options: --only "NAMES" (default "esm"), --tag T (runs go to runs/cpu-T-ae and runs/cpu-T-ft-NAME),
# --ft-steps N (fine-tuning steps, default the recipe's), --specmatch PATH (default .venv/bin/specmatch);
# every -o KEY=VALUE goes to every run (the autoencoder and its fine-tunings must describe the same model).
set -euo pipefail
cd "$(dirname "$0")/.."
SPECMATCH=.venv/bin/specmatch
only="esm"
tag=""
ft=()
overrides=()
while (($#)); do
  case $1 in
    --only) only=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --ft-steps) ft=(-o "train.autoencoder.steps=$2"); shift 2 ;;
    --specmatch) SPECMATCH=$2; shift 2 ;;
    -o) overrides+=(-o "$2"); shift 2 ;;
    *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
mkdir -p runs
# the recipe's diagnostics (latent spectrum, KL to delta = 0 and 1) plus the low-pass PSNR at k = 0, 8, 12
ANALYZE=(--diagnostic lowpass-rfid -o "evaluation.diagnostic_params.lowpass-rfid.levels=[0, 8, 12]"
         -o evaluation.diagnostic_params.lowpass-rfid.frechet=false)
# step 1: the autoencoder to start from (reused when complete)
ae="runs/cpu-${tag:+$tag-}ae"
start=$(date +%s)
"$SPECMATCH" run recipes/cpu/ae.toml --output-dir "$ae" ${overrides[@]+"${overrides[@]}"} > "$ae.log" 2>&1
echo "ae: $(( $(date +%s) - start )) s"
"$SPECMATCH" analyze "$ae" --images 256 "${ANALYZE[@]}" > /dev/null
runs=("$ae")
# step 2: each fine-tuning recipe starts from that run folder (autoencoder.init)
for name in $only; do
  out="runs/cpu-${tag:+$tag-}ft-$name"
  start=$(date +%s)
  "$SPECMATCH" run "recipes/cpu/finetune/$name.toml" --output-dir "$out" -o "autoencoder.init='$PWD/$ae'" \
    ${overrides[@]+"${overrides[@]}"} ${ft[@]+"${ft[@]}"} > "$out.log" 2>&1
  echo "$name: $(( $(date +%s) - start )) s"
  "$SPECMATCH" analyze "$out" --images 256 "${ANALYZE[@]}" > /dev/null
  runs+=("$out")
done
"$SPECMATCH" compare "${runs[@]}"
