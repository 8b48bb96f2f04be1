"""Engine overhead: an autoencoder training step through ``specmatch run`` against a bare PyTorch loop
doing the same work (same model, data, batch, AdamW, L1 + 1e-6 KL, gradient clipping), in one process.

    python benchmarks/engine_overhead.py [--steps 30] [--repeats 3] [--preset tiny-f4d4] [--resolution 32]
                                         [--spectral]

Both loops are timed over the same number of steps (first step included) and repeated alternately; the
fastest repeat of each is compared. Target: engine / bare <= 1.05.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def bare_loop(steps: int, batch: int, preset: str, resolution: int) -> float:
    from torch.utils.data import DataLoader, RandomSampler

    from specmatch.data.demo import DemoPhotosDataset
    from specmatch.nn.autoencoder import build_sdvae

    torch.manual_seed(0)
    data = DemoPhotosDataset(resolution=resolution, split="train", num_images=4096)
    model = build_sdvae(preset)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.005)
    loader = DataLoader(data, batch_size=batch, sampler=RandomSampler(data, replacement=True,
                                                                      num_samples=steps * batch))
    start = time.perf_counter()
    for x, _ in loader:
        post = model.encode(x)
        x_hat = model.decode(post.sample())
        loss = (x_hat - x).abs().mean() + 1e-6 * post.kl().mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / steps


KL_ONLY = "[{ name = 'kl', weight = 1e-6 }]"
ESM_DSM = "[{ name = 'esm', weight = 0.01 }, { name = 'dsm' }]"


def engine_loop(steps: int, batch: int, preset: str, resolution: int, regularizers: str = KL_ONLY) -> float:
    from specmatch.core.plan import make_plan
    from specmatch.core.recipe import load_recipe
    from specmatch.engine.pipeline import build_datasets, make_run_context
    from specmatch.engine.stages import autoencoder_stage

    overrides = [f"train.autoencoder.steps={steps}", f"train.autoencoder.batch_size={batch}",
                 "train.autoencoder.checkpoint_every=0", "train.autoencoder.analyze_every=0",
                 f"autoencoder.params.preset='{preset}'", f"data.params.resolution={resolution}",
                 f"regularizers={regularizers}", f"run.log_every={steps}",
                 "latent_stats.images=32", "evaluation.reconstruction_images=0", "evaluation.spectrum_images=0"]
    resolved = load_recipe(ROOT / "recipes" / "cpu" / "base.toml", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run_context(resolved, make_plan(resolved, Path(tmp)), resume=False)
        autoencoder_stage(run, *build_datasets(run))
        rows = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    return rows[-1]["time/step_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--preset", default="tiny-f4d4")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--spectral", action="store_true",
                        help="also time the engine step with ESM + DSM instead of KL (the demo's regularizers)")
    args = parser.parse_args()
    bare, engine = [], []
    for _ in range(args.repeats):  # alternate, so drifting machine load hits both alike
        bare.append(bare_loop(args.steps, args.batch, args.preset, args.resolution))
        engine.append(engine_loop(args.steps, args.batch, args.preset, args.resolution))
    b, e = min(bare), min(engine)
    print(f"autoencoder step, {args.preset} at {args.resolution}px, batch {args.batch}, {args.steps} steps, "
          f"best of {args.repeats}, {torch.get_num_threads()} threads")
    print(f"  bare PyTorch loop : {b * 1e3:8.1f} ms/step   (all: {', '.join(f'{x * 1e3:.0f}' for x in bare)})")
    print(f"  specmatch engine  : {e * 1e3:8.1f} ms/step   (all: {', '.join(f'{x * 1e3:.0f}' for x in engine)})")
    ratio = e / b
    print(f"  ratio engine/bare : {ratio:.3f}   target <= 1.05: {'PASS' if ratio <= 1.05 else 'FAIL'}")
    if args.spectral:
        spectral = [engine_loop(args.steps, args.batch, args.preset, args.resolution, ESM_DSM)
                    for _ in range(args.repeats)]
        best = min(spectral)
        print(f"  engine, ESM + DSM : {best * 1e3:8.1f} ms/step   (all: {', '.join(f'{x * 1e3:.0f}' for x in spectral)})")
        print(f"  ESM + DSM overhead: {(best - e) / e * 100:+.1f}% of the KL-only engine step")


if __name__ == "__main__":
    main()
