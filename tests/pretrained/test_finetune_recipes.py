"""The shipped fine-tuning recipes run: the CPU ones on a tiny autoencoder trained first (their ``init``),
the paper-scale ones on a tiny random diffusers AutoencoderKL standing in for the user's SD-VAE folder.

Sizes and step counts are shrunk; the structure of each recipe (its regularizers, optimizer settings, the GAN
from step 0 of the paper ones) is kept.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from specmatch.testing import invoke_cli

ROOT = Path(__file__).resolve().parents[2]
CPU = sorted(p for p in (ROOT / "recipes" / "cpu" / "finetune").glob("*.toml") if not p.name.startswith("base"))
PAPER = sorted(p for p in (ROOT / "recipes" / "paper" / "finetune").glob("*.toml") if not p.name.startswith("base"))
STEPS = 4
COMMON = ["run.log_every=1", f"train.autoencoder.steps={STEPS}",
          "train.autoencoder.batch_size=4", "train.autoencoder.checkpoint_every=0",
          "train.autoencoder.analyze_every=0", "latent_stats.images=8", "evaluation.frechet=false",
          "evaluation.reconstruction_images=4", "evaluation.spectrum_images=4", "run.mixed_precision='no'"]

#: the CPU recipes' demo data and autoencoder, shrunk
SMALL = ["autoencoder.params.preset='micro-f2d4'", "data.params.resolution=16", "data.params.num_images=32",
         "data.params.num_test_images=8"]


def overrides(items: list[str]) -> list[str]:
    return [arg for o in items for arg in ("-o", o)]


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
            if json.loads(line)["stage"] == "autoencoder"]


def regularizer_names(recipe: Path) -> set[str]:
    import tomllib

    text = tomllib.loads(recipe.read_text())
    return {r["name"] for r in text.get("regularizers", [])}


@pytest.fixture(scope="module")
def plain_ae_run(tmp_path_factory) -> Path:
    """recipes/cpu/ae.toml shrunk to the micro autoencoder: what the CPU fine-tuning recipes start from."""
    out = tmp_path_factory.mktemp("cpu-ae") / "run"
    result = invoke_cli("run", str(ROOT / "recipes" / "cpu" / "ae.toml"), "--output-dir", str(out),
                        *overrides(COMMON + SMALL))
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
@pytest.mark.parametrize("recipe", CPU, ids=lambda p: p.stem)
def test_cpu_fine_tuning_recipe_starts_from_the_trained_autoencoder(recipe, plain_ae_run, tmp_path):
    out = tmp_path / recipe.stem
    result = invoke_cli("run", str(recipe), "--output-dir", str(out), *overrides(
        COMMON + SMALL + [f"autoencoder.init='{plain_ae_run}'"]))
    assert result.exit_code == 0, result.output
    marker = json.loads((out / "autoencoder" / "stage.json").read_text())
    assert marker["init_kind"] == "run" and marker["init"] == str(plain_ae_run)
    logged = {k.split("/")[1].split("-", 1)[1] for r in rows(out) for k in r if k.startswith("reg/")}
    assert regularizer_names(recipe) <= logged, logged
    assert rows(out)[0]["lr"] == pytest.approx(1e-4)  # no warm-up: fine-tuning starts at its rate


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory) -> dict[str, Path]:
    """A tiny random AutoencoderKL (f2, 4 channels) and an image folder, in place of the user's files."""
    diffusers = pytest.importorskip("diffusers")
    import torch

    root = tmp_path_factory.mktemp("stand-ins")
    torch.manual_seed(0)
    diffusers.AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                            up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4,
                            layers_per_block=1).save_pretrained(str(root / "vae"))
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    for i in range(16):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / "images" / f"{i:03d}.png")
    return {"vae": root / "vae", "images": root / "images"}


@pytest.mark.slow
@pytest.mark.parametrize("recipe", PAPER, ids=lambda p: p.stem)
def test_paper_fine_tuning_recipe_runs_on_a_stand_in_vae(recipe, stand_ins, tmp_path):
    out = tmp_path / recipe.stem
    extra = ["data.params.resolution=32", f"autoencoder.params.path='{stand_ins['vae']}'", f"data.params.root='{stand_ins['images']}'",
             "data.params.test_fraction=0.25", "perceptual={ name = 'stlpips', weight = 0.5 }",
             "train.autoencoder.grad_accumulation=1", "denoiser.params={ preset = 'dit-micro', patch_size = 1 }",
             "train.denoiser.steps=2", "train.denoiser.batch_size=4", "train.denoiser.checkpoint_every=0",
             "sampler.params.steps=2", "evaluation.num_samples=4", "evaluation.batch_size=4"]
    if "eqvae" in regularizer_names(recipe):  # the perceptual stand-in needs 32 px after the downscale
        extra += ["data.params.resolution=64", "regularizers[1].params.min_scale_32=16"]
    if "scale-equivariance" in regularizer_names(recipe):
        extra += ["data.params.resolution=64", "regularizers[1].params.factors=[2]"]
    result = invoke_cli("run", str(recipe), "--output-dir", str(out), *overrides(COMMON + extra))
    assert result.exit_code == 0, result.output
    ae = {r["step"] - 1: r for r in rows(out)}
    assert sorted(ae) == list(range(STEPS))
    # EQ-VAE's protocol: the adversarial term from step 0, so odd steps are discriminator turns from the start
    assert all(("loss/discriminator" in r) == (step % 2 == 1) for step, r in ae.items())
    assert ae[0]["lr"] == pytest.approx(4.5e-6)
