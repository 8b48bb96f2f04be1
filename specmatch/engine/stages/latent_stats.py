"""Stage 2: the latent statistics (mean and std of posterior samples) that normalise the denoiser's latents.

Computed once over the training set and stored beside the autoencoder; reused when complete, or taken from
the run named by ``autoencoder.from_run``.
"""

from __future__ import annotations

import attrs
from torch import nn

from specmatch.core.errors import SpecmatchError
from specmatch.core.layout import RunLayout

from ..checkpoint import mark_stage_complete, stage_complete
from ..latents import LatentNormalizer, compute_latent_stats, load_latent_stats, save_latent_stats
from ..run_context import RunContext


@attrs.frozen
class LatentStatsResult:
    normalizer: LatentNormalizer  # applies the statistics on every encode and decode for the denoiser
    latent_shape: tuple[int, int, int]  # (C, h, w) of one image's latent
    mean: float  # mean over channels of the stored mean and std, for metrics.json
    std: float


def latent_stats_stage(run: RunContext, autoencoder: nn.Module, train_set, test_set) -> LatentStatsResult:
    stage = run.plan.stage("latent_stats")
    acc = run.accelerator
    layout = RunLayout(stage.reused_from) if stage.reused_from is not None else run.layout
    path = layout.latent_stats
    if stage.reused_from is not None:
        if not path.exists():
            raise SpecmatchError(f"autoencoder.from_run: {layout.autoencoder} has no {path.name}; rerun that "
                                 f"run to completion first")
    elif not stage_complete(layout.latent_stats_marker, stage.key):
        cfg = run.recipe.latent_stats
        with run.timed("latent_stats", marker=layout.latent_stats_marker):
            stats = compute_latent_stats(acc, autoencoder, train_set, images=cfg.images, flips=cfg.flips,
                                         mode=cfg.mode, subtract_mean=cfg.subtract_mean,
                                         batch_size=run.recipe.evaluation.batch_size, seed=run.recipe.run.seed)
            if acc.is_main_process:
                save_latent_stats(stats, path, {"mode": cfg.mode, "images": str(cfg.images),
                                                "flips": str(cfg.flips), "stage_key": stage.key})
                mark_stage_complete(layout.latent_stats_marker, stage.key, files=[path])
            acc.wait_for_everyone()
    else:
        run.reused("latent_stats", layout.latent_stats_marker)
    stats = load_latent_stats(path)
    normalizer = LatentNormalizer(autoencoder, stats["mean"], stats["std"]).to(acc.device)
    side = test_set[0][0].shape
    f = autoencoder.downsample_factor
    shape = (autoencoder.latent_channels, side[-2] // f, side[-1] // f)
    run.upstream["latent_shape"] = shape
    run.upstream["normalizer"] = normalizer
    return LatentStatsResult(normalizer=normalizer, latent_shape=shape, mean=float(stats["mean"].mean()),
                             std=float(stats["std"].mean()))
