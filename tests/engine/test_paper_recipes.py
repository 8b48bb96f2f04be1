"""Every paper-scale recipe runs past each of its schedule switches, shrunk to a tiny size on the CPU.

The structure of each recipe is kept (its regularizers with their adaptive factors, the PatchGAN with its
adaptive weight and alternating turns, the perceptual term, warm-up, the denoiser with REPA): only
sizes, step numbers, the data folder and the weight files this machine does not have are overridden. The
adversarial term starts at step 2 here (step 50001 in the recipes), so steps 2..5 run past it: two generator
and two discriminator turns.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from specmatch.testing import invoke_cli

ROOT = Path(__file__).resolve().parents[2]
PAPER = sorted(p for p in (ROOT / "recipes" / "paper").glob("*.toml") if not p.name.startswith("base"))
ADVERSARIAL_START = 2
STEPS = ADVERSARIAL_START + 4


@pytest.fixture(scope="module")
def image_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("celeba-stand-in")
    rng = np.random.default_rng(0)
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / f"{i:03d}.png")
    return root


def shrink(recipe: Path, root: Path) -> list[str]:
    text = recipe.read_text() + (recipe.parent / "esm.toml").read_text() * ("esm.toml" in recipe.read_text())
    overrides = [
        f"data.params.root='{root}'", "data.params.resolution=32", "data.params.test_fraction=0.25",
        "autoencoder.params.preset='micro-f2d4'",
        "perceptual={ name = 'stlpips', weight = 0.5 }",  # the LPIPS-VGG file is not on this machine
        f"adversarial.start_step={ADVERSARIAL_START}",
        "run.mixed_precision='no'",  # bf16 autocast on a CPU is 4-5x slower than float32 and tests nothing here
        f"train.autoencoder.steps={STEPS}", "train.autoencoder.batch_size=4", "train.autoencoder.warmup_steps=2",
        "train.autoencoder.checkpoint_every=3", "train.autoencoder.analyze_every=3", "run.log_every=1",
        "latent_stats.images=8", "denoiser.params={ preset = 'dit-micro', patch_size = 1 }",
        "train.denoiser.steps=3", "train.denoiser.batch_size=4", "train.denoiser.checkpoint_every=2",
        "sampler.params.steps=2", "evaluation.reconstruction_images=4", "evaluation.num_samples=4",
        "evaluation.batch_size=4", "evaluation.frechet=false", "evaluation.spectrum_images=4",
    ]
    if "[alignment]" in text or "[alignment]" in recipe.read_text():  # DINOv2 is not here: a bundled teacher
        overrides.append("alignment={ name = 'stlpips-alex', params = { layer = 1 } }")
    if 'name = "repa"' in recipe.read_text():
        overrides += ["denoiser_regularizers[0].params={ depth = 1, projector_width = 32 }"]
    if 'name = "eqvae"' in text:  # the perceptual stand-in needs images of at least 32 px after the downscale
        overrides += ["data.params.resolution=64", "regularizers[1].params.min_scale_32=16"]
    if 'name = "scale-equivariance"' in text:
        overrides += ["data.params.resolution=64", "regularizers[1].params.factors=[2]"]
    return [arg for o in overrides for arg in ("-o", o)]


@pytest.mark.slow
@pytest.mark.parametrize("recipe", PAPER, ids=lambda p: p.stem)
def test_paper_recipe_runs_past_its_schedule_switches(recipe, image_root, tmp_path):
    out = tmp_path / recipe.stem
    result = invoke_cli("run", str(recipe), "--output-dir", str(out), *shrink(recipe, image_root))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    ae = {r["step"] - 1: r for r in rows if r["stage"] == "autoencoder"}  # logged after the step
    assert sorted(ae) == list(range(STEPS))
    for step, row in ae.items():
        d_turn = step >= ADVERSARIAL_START and step % 2 == 1
        assert ("loss/discriminator" in row) == d_turn, (step, row)
        if d_turn:  # the discriminator step is clipped, and runs no regularizer term
            assert "grad_norm/discriminator" in row
            assert not any(k.startswith("reg/") for k in row)
        else:
            assert ("loss/generator" in row) == (step >= ADVERSARIAL_START)
            assert any(k.startswith("reg/") for k in row) or "regularizers" not in recipe.read_text()
    assert ae[0]["lr"] == 0.0 and ae[1]["lr"] > 0  # transformers' warm-up: step 0 trains at lr 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recon_latent"] == "sample" and metrics["gen_samples"] == 4
    if 'name = "repa"' in recipe.read_text():
        den = [r for r in rows if r["stage"] == "denoiser"]
        assert den and all("loss/repa" in r for r in den)
