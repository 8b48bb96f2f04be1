"""``specmatch export RUN_DIR --format diffusers OUT``: a run's trained autoencoder as a diffusers
``AutoencoderKL`` folder (``save_pretrained`` layout), so a fine-tuned VAE drops into a diffusers pipeline.

An autoencoder is exportable when its module has ``to_diffusers()`` (the built-in ``sdvae`` in the LDM layout
and ``diffusers-vae``). The run's latent statistics, when present, become the config's latent scaling: the
per-channel ``latents_mean``/``latents_std`` and the scalar ``scaling_factor = 1 / mean(std)`` and
``shift_factor = mean(mean)`` (a ``diffusers-vae`` keeps its own scalars).
"""

from __future__ import annotations

import logging
from pathlib import Path

from specmatch.core.errors import SpecmatchError

log = logging.getLogger(__name__)

FORMATS = ("diffusers",)
EXPORTABLE = ("sdvae (with a variance, downsample_padding = 'ldm' and decoder_res_blocks = encoder_res_blocks + 1)"
              " and diffusers-vae")


def export_run(run_dir: Path, out: Path, *, fmt: str = "diffusers", registry=None) -> Path:
    """Write the run's autoencoder (its EMA copy when the stage kept one) to ``out``; returns ``out``."""
    from specmatch.core.layout import RunLayout, final_weights
    from specmatch.core.recipe import load_recipe
    from specmatch.nn.autoencoder import ArchitectureError

    from . import build as B
    from .checkpoint import load_weights
    from .latents import load_latent_stats

    if fmt not in FORMATS:
        raise SpecmatchError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    layout = RunLayout(run_dir)
    if not layout.recipe.is_file():
        raise SpecmatchError(f"{run_dir} is not a specmatch run folder (no recipe.toml)")
    if out.exists() and any(out.iterdir()):
        raise SpecmatchError(f"{out} exists and is not empty; choose a new folder")
    resolved = load_recipe(layout.recipe, registry=registry, check_files=False)
    weights = final_weights(layout.autoencoder)
    if not weights.exists():
        raise SpecmatchError(f"{run_dir} has no trained autoencoder yet ({weights})")
    comp = B.autoencoder_component(resolved)
    ae = B.build(comp, B.context(resolved, run_dir, {}))
    load_weights(ae, weights)
    export = getattr(ae, "to_diffusers", None)
    if not callable(export):
        raise SpecmatchError(f"the {comp.spec.name!r} autoencoder of {run_dir} cannot be exported as a diffusers "
                             f"AutoencoderKL; exportable: {EXPORTABLE}")
    try:
        vae = export()
    except ArchitectureError as exc:
        raise SpecmatchError(f"{run_dir}: {exc}; exportable: {EXPORTABLE}") from None
    if layout.latent_stats.is_file() and comp.spec.name != "diffusers-vae":
        stats = load_latent_stats(layout.latent_stats)
        mean, std = stats["mean"].double(), stats["std"].double()
        vae.register_to_config(scaling_factor=float(1.0 / std.mean()), shift_factor=float(mean.mean()),
                               latents_mean=[float(v) for v in mean], latents_std=[float(v) for v in std])
    elif comp.spec.name != "diffusers-vae":
        log.warning(f"{run_dir} has no latent statistics: the exported config keeps scaling_factor = "
                    f"{vae.config.scaling_factor}")
    out.mkdir(parents=True, exist_ok=True)
    vae.save_pretrained(str(out), safe_serialization=True)
    return out
