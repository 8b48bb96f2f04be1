"""Shared pieces of the fine-tuning tests: a tiny recipe that trains only the autoencoder, in seconds."""

from __future__ import annotations

from pathlib import Path

#: demo data at 16 px, the micro SD-VAE, two steps, a cheap evaluation; no denoiser
AE_ONLY = """\
run = {{ name = "{name}", seed = {seed} }}

[data]
name = "demo-photos"
params = {{ resolution = 16, num_images = 32, num_test_images = 16 }}

[autoencoder]
name = "sdvae"
params = {{ preset = "micro-f2d4" }}
{init}

[train.autoencoder]
steps = {steps}
batch_size = 8
lr = 1e-3

[latent_stats]
images = 16

[evaluation]
reconstruction_images = 8
frechet = false
spectrum_images = 8
sample_grid = 4
"""


def ae_recipe(folder: Path, name: str = "ae", *, seed: int = 0, steps: int = 2, init: str = "",
              extra: str = "") -> Path:
    """Write the tiny autoencoder-only recipe into ``folder``; ``init`` is written as ``init = "..."``."""
    folder.mkdir(parents=True, exist_ok=True)
    text = AE_ONLY.format(name=name, seed=seed, steps=steps, init=f'init = "{init}"' if init else "") + extra
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path
