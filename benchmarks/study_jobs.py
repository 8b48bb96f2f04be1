"""A study's wall time with its cells side by side (``specmatch study --jobs N``) against one after another.

    python benchmarks/study_jobs.py [--jobs 2] [--cells 4] [--steps 150] [--preset micro-f2d4]

The study is ``--cells`` seeds of ``recipes/cpu/ae.toml`` (an autoencoder of the given preset trained for
``--steps`` steps, then its latent statistics and reconstruction metrics on 64 images), written to a temporary
folder. It runs twice from scratch, in the same invocation of this script: with ``--jobs 1`` (each cell uses
every core, torch's default) and with ``--jobs N`` (each cell gets cores / N threads). Printed: both wall times
and their ratio, one after another / side by side (above 1: ``--jobs`` pays on this machine).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def study_file(folder: Path, cells: int, steps: int, preset: str) -> Path:
    path = folder / "jobs.toml"
    path.write_text(
        f'name = "jobs"\nseeds = {list(range(cells))}\n'
        f'overrides = ["autoencoder.params.preset=\'{preset}\'", "train.autoencoder.steps={steps}", '
        f'"train.autoencoder.analyze_every=0", "train.autoencoder.checkpoint_every={steps}", '
        f'"latent_stats.images=256", "evaluation.reconstruction_images=64", "evaluation.spectrum_images=64"]\n'
        f'[recipes.ae]\nfile = "{ROOT / "recipes" / "cpu" / "ae.toml"}"\n')
    return path


def timed_study(study: Path, out: Path, jobs: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "specmatch", "study", str(study), "--output-dir", str(out),
                           "--jobs", str(jobs)], env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if proc.returncode:
        sys.exit(f"the study with --jobs {jobs} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--preset", default="micro-f2d4")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="study-jobs-") as tmp:
        folder = Path(tmp)
        study = study_file(folder, args.cells, args.steps, args.preset)
        one = timed_study(study, folder / "one", 1)
        side = timed_study(study, folder / "side", args.jobs)
    from specmatch.study.executors import available_cores

    print(f"{args.cells} cells ({args.preset}, {args.steps} autoencoder steps each) on {available_cores()} cores")
    print(f"--jobs 1: {one:.1f} s   --jobs {args.jobs}: {side:.1f} s   "
          f"ratio (one after another / side by side): {one / side:.2f}")


if __name__ == "__main__":
    main()
