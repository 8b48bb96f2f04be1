"""``specmatch analyze RUN_DIR``: spectrum and low-pass diagnostics of a run's trained autoencoder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch

from specmatch.core.errors import SpecmatchError


def load_run_autoencoder(run_dir: Path, *, registry=None):
    """(resolved recipe, autoencoder with its EMA or final weights, datasets) of a finished run folder."""
    from specmatch.core.recipe import load_recipe

    from . import build as B
    from specmatch.core.layout import RunLayout, final_weights

    from .checkpoint import load_weights

    layout = RunLayout(run_dir)
    if not layout.recipe.is_file():
        raise SpecmatchError(f"{run_dir} is not a specmatch run folder (no recipe.toml)")
    resolved = load_recipe(layout.recipe, registry=registry)
    weights = final_weights(layout.autoencoder)
    if not weights.exists():
        raise SpecmatchError(f"{run_dir} has no trained autoencoder yet ({weights})")
    ctx = B.context(resolved, run_dir, {})
    data = B.build(resolved.component("data"), ctx)
    ae = B.build(B.autoencoder_component(resolved), ctx)
    load_weights(ae, weights)
    return resolved, ae.eval(), data


def analyze_run(run_dir: Path, *, images: int = 256, deltas: Sequence[float] = (0.0, 0.6, 0.8, 1.0, 1.2),
                levels: Sequence[int] = (0, 2, 4, 6, 8, 10, 12), block_size: int = 8, batch_size: int = 32,
                split: str = "test") -> dict:
    from specmatch.analysis import encode_latents, lowpass_fidelity, plot_spectrum, spectrum_report

    resolved, ae, data = load_run_autoencoder(run_dir)
    dataset = data[split]
    n = min(images, len(dataset))
    x = torch.stack([dataset[i][0] for i in range(n)])
    latents = encode_latents(ae, x, batch_size=batch_size)
    report = spectrum_report(x, latents, deltas=deltas)
    report["lowpass"] = lowpass_fidelity(ae, x, levels=levels, block_size=block_size, batch_size=batch_size)
    report["run"] = resolved.recipe.run.name
    report["split"] = split
    report["latent_shape"] = list(latents.shape[1:])
    (run_dir / "analysis.json").write_text(json.dumps(report, indent=2))
    plot_spectrum(report, run_dir / "spectrum.png", title=f"{resolved.recipe.run.name}: N={n} {split} images")
    return report
