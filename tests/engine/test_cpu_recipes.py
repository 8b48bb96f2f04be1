"""Every CPU comparison recipe trains: a few steps (shrunk to a micro model) lower its reconstruction loss.
Also the adversarial schedule (odd steps update the discriminator) and the perceptual term."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from specmatch.cli import main

ROOT = Path(__file__).resolve().parents[2]
# the denoiser-family recipes train sdvae.toml's autoencoder; their runs are tests/denoisers/test_recipes.py
CPU_RECIPES = sorted(p for p in (ROOT / "recipes" / "cpu").glob("*.toml")
                     if not p.name.startswith(("base", "denoiser-")))
SHRINK = ["-o", "autoencoder.params.preset='micro-f2d4'", "-o", "data.params.resolution=32",
          "-o", "data.params.num_images=256", "-o", "train.autoencoder.batch_size=8",
          "-o", "train.autoencoder.lr=2e-3", "-o", "train.autoencoder.warmup_steps=0",
          "-o", "train.autoencoder.checkpoint_every=0", "-o", "train.autoencoder.analyze_every=0",
          "-o", "run.log_every=1", "-o", "latent_stats.images=16", "-o", "evaluation.frechet=false",
          "-o", "evaluation.reconstruction_images=8", "-o", "evaluation.spectrum_images=8"]


def curves(out: Path, stage: str = "autoencoder") -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["stage"] == stage]


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("recipe", CPU_RECIPES, ids=lambda p: p.stem)
def test_cpu_recipe_lowers_its_loss(recipe, tmp_path):
    out = tmp_path / recipe.stem
    invoke("run", str(recipe), "--output-dir", str(out), *SHRINK, "-o", "train.autoencoder.steps=40")
    rows = curves(out)
    assert len(rows) == 40
    first = sum(r["loss/reconstruction"] for r in rows[:5]) / 5
    last = sum(r["loss/reconstruction"] for r in rows[-5:]) / 5
    assert last < 0.8 * first, (first, last)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recon_psnr"] > 8
    names = {k.split("/")[1].split("-", 1)[1] for r in rows for k in r if k.startswith("reg/")}
    text = recipe.read_text()
    for expected in ("kl", "esm", "vavae", "scale-equivariance"):
        if f'name = "{expected}"' in text:
            assert expected in names, names


def test_adversarial_steps_alternate_and_perceptual_term(tmp_path):
    out = tmp_path / "gan"
    invoke("run", str(ROOT / "recipes" / "cpu" / "sdvae.toml"), "--output-dir", str(out), *SHRINK,
           "-o", "train.autoencoder.steps=10",
           "-o", "adversarial={ name = 'patchgan', weight = 0.5, start_step = 4, params = { n_layers = 2 } }",
           "-o", "perceptual={ name = 'stlpips', weight = 0.5 }")
    rows = {r["step"] - 1: r for r in curves(out)}  # logged after the step: step index = logged - 1
    for step, row in rows.items():
        d_turn = step >= 4 and step % 2 == 1
        assert ("loss/discriminator" in row) == d_turn, (step, sorted(row))
        assert ("loss/generator" in row) == (step >= 4 and not d_turn), (step, sorted(row))
    assert all(r["loss/generator_factor"] > 0 for r in rows.values() if "loss/generator_factor" in r)


def test_esm_moves_the_latent_spectrum_towards_its_target(tmp_path):
    """The ESM term, weighted up, must bring the latent's band distribution closer to the delta=1 target than
    the same training without it (KL under ESM's own settings, N = 64 held-out images)."""
    kls = {}
    for name, regs in (("none", "[]"), ("esm", "[{ name = 'esm', weight = 1.0 }]")):
        out = tmp_path / name
        invoke("run", str(ROOT / "recipes" / "cpu" / "ae.toml"), "--output-dir", str(out), *SHRINK,
               "-o", "train.autoencoder.steps=40", "-o", f"regularizers={regs}",
               "-o", "evaluation.spectrum_images=64")
        kls[name] = json.loads((out / "metrics.json").read_text())["spectrum_kl_delta1_dc_removed"]
    assert kls["esm"] < 0.7 * kls["none"], kls
