"""Every denoiser family on one CPU autoencoder, at similar parameter counts, for the same number of steps;
then one family's samplers at several step counts. Prints two markdown tables (docs/results.md quotes them).

    .venv/bin/python scripts/denoiser_families.py [--steps 1000] [--samples 1000] [--out runs/families]

The autoencoder (recipes/cpu/base.toml's KL f4d4, latent 4x8x8) is trained once, by the first family's run;
every other run takes it with ``autoencoder.from_run``. All transformers use patch 2 (16 tokens) and their
``*-micro`` width; the U-Net is narrowed to 16 channels so every family has 0.16M to 0.21M parameters. Step
time is the median of the logged seconds per step (the first log, with warm-up, left out); compare it between
rows of one invocation only. Runs are reused when complete, so a rerun only prints.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: family -> (recipe, overrides that set its size)
FAMILIES = {
    "dit": ("recipes/cpu/denoiser-sit.toml", ["denoiser.name=dit", "denoiser.params={ preset = 'dit-micro', patch_size = 2 }"]),
    "sit": ("recipes/cpu/denoiser-sit.toml", []),
    "uvit": ("recipes/cpu/denoiser-uvit.toml", []),
    "lightningdit": ("recipes/cpu/denoiser-lightningdit.toml", ["denoiser.params.patch_size=2"]),
    "adm-unet": ("recipes/cpu/denoiser-adm-unet.toml",
                 ["denoiser.params.model_channels=16", "denoiser.params.norm_groups=8"]),
}

#: sampler -> params at a step count n (the table's rows)
SAMPLERS = {
    "euler": lambda n: f"{{ steps = {n} }}",
    "heun": lambda n: f"{{ steps = {n} }}",
    "euler-maruyama": lambda n: f"{{ steps = {n} }}",
    "ddim": lambda n: f"{{ steps = {n} }}",
    "dpmpp-2m": lambda n: f"{{ steps = {n} }}",
}


def specmatch(*args: str) -> None:
    cmd = [sys.executable, "-m", "specmatch", *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-3000:]}")


def parameters(run_dir: Path) -> int:
    """Elements of the saved denoiser weights (fixed position embeddings are buffers and are not saved)."""
    from safetensors.torch import load_file

    return sum(t.numel() for t in load_file(run_dir / "denoiser" / "model.safetensors").values())


def denoiser_curve(run_dir: Path) -> tuple[float, float]:
    """(mean ``loss/total`` over the last 10 logged denoiser steps, median seconds per step over the logs)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("stage") == "denoiser" and "loss/total" in r]
    tail = [r["loss/total"] for r in rows[-10:]]
    times = sorted(r["time/step_seconds"] for r in rows[1:] if "time/step_seconds" in r)  # the first: warm-up
    return sum(tail) / len(tail), times[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--reference-images", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--out", default="runs/families")
    ap.add_argument("--sampler-family", default="sit")
    ap.add_argument("--sampler-steps", default="10,50")
    args = ap.parse_args()
    out = ROOT / args.out
    # one reference for every evaluation: Inception statistics of the training images, computed once
    reference = out / "reference.npz"
    if not reference.is_file():
        out.mkdir(parents=True, exist_ok=True)
        specmatch("stats", FAMILIES["sit"][0], "--output", str(reference), "--images", str(args.reference_images))
    common = [f"train.denoiser.steps={args.steps}", f"train.denoiser.checkpoint_every={args.steps}",
              f"evaluation.num_samples={args.samples}", f"evaluation.kid_subset_size={min(args.samples, 1000)}",
              f"evaluation.reference='{reference.resolve()}'", "evaluation.reconstruction_images=0"]
    first = None
    rows = []
    for family, (recipe, extra) in FAMILIES.items():
        run_dir = out / family
        overrides = [*common, *extra]
        if first is not None:
            overrides.append(f"autoencoder.from_run={first.resolve()}")
        start = time.time()
        specmatch("run", recipe, "--output-dir", str(run_dir), *[a for o in overrides for a in ("-o", o)])
        first = first or run_dir
        m = json.loads((run_dir / "metrics.json").read_text())
        loss, step_seconds = denoiser_curve(run_dir)
        rows.append((family, parameters(run_dir), 1000 * step_seconds, loss, m["gen_fid"], m["gen_kid"],
                     m["gen_n"], time.time() - start))
        print(f"{family}: {time.time() - start:.0f} s", file=sys.stderr, flush=True)
    print(f"\n### Denoiser families: {args.steps} steps, batch 64, N = {args.samples} samples (Euler, 25 steps)\n")
    print("| family | parameters | ms / step (median) | final loss (last 10 logs) | gFID | gKID | N |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for family, n, ms, loss, fid, kid, gen_n, _ in rows:
        print(f"| {family} | {n:,} | {ms:.1f} | {loss:.4f} | {fid:.2f} | {kid:.4f} | {gen_n} |")

    # the sampler table: the same trained denoiser, only the evaluation stage runs again
    recipe, extra = FAMILIES[args.sampler_family]
    base = out / args.sampler_family
    table = []
    for name, params in SAMPLERS.items():
        for n in [int(s) for s in args.sampler_steps.split(",")]:
            run_dir = out / f"sampler-{name}-{n}"
            if not (run_dir / "metrics.json").is_file():
                # a copy of the trained run: autoencoder, latent statistics and denoiser stages are reused
                subprocess.run(["cp", "-r", str(base), str(run_dir)], check=True)
                for stale in ("metrics.json", "evaluation"):
                    subprocess.run(["rm", "-rf", str(run_dir / stale)], check=True)
            start = time.time()
            overrides = [*common, *extra, f"sampler.name={name}", f"sampler.params={params(n)}"]
            if base != first:
                overrides.append(f"autoencoder.from_run={first.resolve()}")
            specmatch("run", recipe, "--output-dir", str(run_dir), *[a for o in overrides for a in ("-o", o)])
            m = json.loads((run_dir / "metrics.json").read_text())
            table.append((name, n, m["gen_fid"], m["gen_kid"], m.get("time_evaluation_s", time.time() - start)))
    print(f"\n### Samplers on the {args.sampler_family} denoiser above, N = {args.samples}\n")
    print("| sampler | steps | gFID | gKID | evaluation wall time (s) |")
    print("|---|---:|---:|---:|---:|")
    for name, n, fid, kid, secs in table:
        print(f"| {name} | {n} | {fid:.2f} | {kid:.4f} | {secs:.0f} |")


if __name__ == "__main__":
    main()
