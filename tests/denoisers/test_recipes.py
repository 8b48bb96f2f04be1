"""The CPU denoiser-family recipes run end to end, shrunk to a few steps (slow: one pipeline run each)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from specmatch.cli import main

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes" / "cpu").glob("denoiser-*.toml"))
SHRINK = ["-o", "autoencoder.params.preset='micro-f2d4'", "-o", "data.params.resolution=16",
          "-o", "data.params.num_images=64", "-o", "data.params.num_test_images=16",
          "-o", "train.autoencoder.steps=4", "-o", "train.autoencoder.batch_size=8",
          "-o", "train.autoencoder.checkpoint_every=0", "-o", "train.autoencoder.analyze_every=0",
          "-o", "train.autoencoder.warmup_steps=0", "-o", "latent_stats.images=16", "-o", "run.log_every=1",
          "-o", "train.denoiser.steps=6", "-o", "train.denoiser.batch_size=8",
          "-o", "train.denoiser.warmup_steps=0", "-o", "train.denoiser.checkpoint_every=0",
          "-o", "sampler.params.steps=2", "-o", "evaluation.num_samples=4", "-o", "evaluation.batch_size=4",
          "-o", "evaluation.frechet=false", "-o", "evaluation.reconstruction_images=4",
          "-o", "evaluation.spectrum_images=4"]


def test_one_recipe_per_family():
    names = {p.stem.removeprefix("denoiser-") for p in RECIPES}
    assert names == {"sit", "uvit", "lightningdit", "adm-unet"}


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_denoiser_recipe_runs(recipe, tmp_path):
    out = tmp_path / recipe.stem
    result = CliRunner().invoke(main, ["run", str(recipe), "--output-dir", str(out), *SHRINK],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss/total"] for r in rows if r["stage"] == "denoiser"]
    assert len(losses) == 6 and all(math.isfinite(v) for v in losses)
    assert (out / "denoiser" / "model.safetensors").is_file() and (out / "samples.png").is_file()
