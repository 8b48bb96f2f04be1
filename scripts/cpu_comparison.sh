#!/usr/bin/env bash
# Train every CPU comparison recipe (recipes/cpu/*.toml), analyse its latent and print them side by side.
#   bash scripts/cpu_comparison.sh [specmatch executable]      (about 35 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
SPECMATCH=${1:-.venv/bin/specmatch}
mkdir -p runs
runs=()
for recipe in recipes/cpu/*.toml; do
  name=$(basename "$recipe" .toml)
  [[ $name == base* ]] && continue
  start=$(date +%s)
  "$SPECMATCH" run "$recipe" --output-dir "runs/cpu-$name" > "runs/cpu-$name.log" 2>&1
  echo "$name: $(( $(date +%s) - start )) s"
  "$SPECMATCH" analyze "runs/cpu-$name" --images 256 > /dev/null
  runs+=("runs/cpu-$name")
done
"$SPECMATCH" compare "${runs[@]}"
