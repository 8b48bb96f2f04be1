"""The paper's second stages (recipes/paper/denoisers) run end to end, shrunk to a tiny size on the CPU.

Kept from each recipe: the denoiser family, the objective, the sampler with its guidance interval, REPA, class
conditioning and label dropout. Overridden: sizes, steps, the data folder, the teacher (DINOv2 is not on this
machine: the bundled stand-in) and the evaluation protocol (no ADM reference batch here).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from specmatch.testing import invoke_cli

ROOT = Path(__file__).resolve().parents[2]
DENOISERS = sorted((ROOT / "recipes" / "paper" / "denoisers").glob("*.toml"))


@pytest.fixture(scope="module")
def labelled_root(tmp_path_factory) -> Path:
    """Two class folders of random 40 px images (ImageNet's layout; CelebA's folder has no classes but the
    image-folder dataset reads both)."""
    root = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir()
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / label / f"{i:03d}.png")
    return root


def shrink(recipe: Path, root: Path) -> list[str]:
    text = recipe.read_text()
    overrides = [
        f"data.params.root='{root}'", "data.params.resolution=32", "data.params.test_fraction=0.25",
        "autoencoder.params.preset='micro-f2d4'", "run.mixed_precision='no'", "run.log_every=1", "train.autoencoder.steps=2",
        "train.autoencoder.batch_size=4", "train.autoencoder.warmup_steps=0", "latent_stats.images=8",
        "train.denoiser.steps=3", "train.denoiser.batch_size=4", "train.denoiser.warmup_steps=0",
        "sampler.params.steps=3", "evaluation.protocol='custom'", "evaluation.reference=''",
        "evaluation.reconstruction_images=4", "evaluation.num_samples=4", "evaluation.batch_size=4",
        "evaluation.frechet=false", "evaluation.spectrum_images=4",
    ]
    if "uvit" in text:  # the CelebA base trains with LPIPS-VGG, whose file is not here: the bundled ST-LPIPS
        overrides += ["denoiser.params={ preset = 'uvit-micro', patch_size = 1 }",
                      "perceptual={ name = 'stlpips', weight = 0.5 }"]
    if 'name = "sit"' in text:
        overrides.append("denoiser.params={ preset = 'sit-micro', patch_size = 1 }")
    if "[alignment]" in text:
        overrides.append("alignment={ name = 'stlpips-alex', params = { layer = 1 } }")
    if 'name = "repa"' in text:
        overrides.append("denoiser_regularizers[0].params={ depth = 1, projector_width = 32 }")
    return [arg for o in overrides for arg in ("-o", o)]


@pytest.mark.slow
@pytest.mark.parametrize("recipe", DENOISERS, ids=lambda p: p.stem)
def test_paper_denoiser_recipe_runs_shrunk(recipe, labelled_root, tmp_path):
    out = tmp_path / recipe.stem
    result = invoke_cli("run", str(recipe), "--output-dir", str(out), *shrink(recipe, labelled_root))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    den = [r for r in rows if r["stage"] == "denoiser"]
    assert len(den) == 3
    if 'name = "repa"' in recipe.read_text():
        assert all("loss/repa" in r for r in den)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["gen_samples"] == 4
    recorded = (out / "recipe.toml").read_text()
    for kept in ("uvit", "ddpm", "dpmpp-2m") if "uvit" in recipe.stem else ("sit", "repa", "euler-maruyama"):
        assert f'"{kept}"' in recorded, kept
