"""Stage 4: reconstruction, generation and latent-spectrum metrics of the trained autoencoder and denoiser.

Reconstructions decode a posterior sample by default (the authors' protocol); generation FID/KID compare N
samples with a seeded random subset of N training images. The feature network and N are reported with
every Frechet number.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import torch
from torch import nn

from .. import evaluation as E
from ..run_context import RunContext
from .denoiser import DenoiserResult
from .latent_stats import LatentStatsResult


log = logging.getLogger(__name__)


@attrs.frozen
class EvaluationResult:
    metrics: dict[str, Any]  # flat: metric -> number or label (feature network, protocol choices)
    originals: torch.Tensor  # the held-out images and their reconstructions, for the grid
    reconstructions: torch.Tensor
    samples: torch.Tensor | None  # decoded samples in [-1, 1], None without a denoiser
    spectrum: dict | None  # the latent spectrum report


def evaluation_stage(run: RunContext, autoencoder: nn.Module, stats: LatentStatsResult,
                     denoiser: DenoiserResult | None, train_set, test_set) -> EvaluationResult:
    with run.timed("evaluation"):
        return _evaluate(run, autoencoder, stats, denoiser, train_set, test_set)


def _evaluate(run: RunContext, autoencoder, stats, denoiser, train_set, test_set) -> EvaluationResult:
    acc = run.accelerator
    ev = run.recipe.evaluation
    metrics: dict[str, Any] = {}
    x, y = E.reconstruct(acc, autoencoder, test_set, ev.reconstruction_images, ev.batch_size,
                         latent=ev.reconstruction_latent, seed=run.seed("reconstruction"))
    metrics.update(E.reconstruction_metrics(x, y))
    metrics["recon_latent"] = ev.reconstruction_latent  # stamped next to every reconstruction metric
    network, why_not = (E.load_feature_network(ev.feature_network, run.resolved.recipe_dir, acc.device)
                        if ev.frechet else (None, "evaluation.frechet = false"))
    metrics["feature_network"] = network.describe()["name"] if network is not None else "none"
    if network is None:
        log.info(f"[evaluation] no Frechet/KID: {why_not}")
    if network is not None and x.shape[0] >= 2:
        metrics.update(E.frechet_metrics(x, y, prefix="r", network=network, kid_subset=ev.kid_subset_size,
                                         batch_size=ev.batch_size))
    spectrum = None
    n_spec = min(ev.spectrum_images, len(test_set))
    if n_spec:
        from specmatch.analysis import spectrum_scalars

        images = torch.stack([test_set[i][0] for i in range(n_spec)]).to(acc.device)
        spectrum = E.latent_spectrum(autoencoder, images)
        metrics.update(spectrum_scalars(spectrum))
    samples = None
    if denoiser is not None and ev.num_samples > 0:
        sampler = run.build("sampler")
        samples = E.generate(acc, sampler, denoiser.model, stats.normalizer, n=ev.num_samples,
                             latent_shape=stats.latent_shape, batch_size=ev.batch_size, seed=run.seed("samples"),
                             num_classes=run.upstream.get("num_classes", 0) if denoiser.conditional else 0,
                             objective=run.build("objective"))
        metrics["gen_samples"] = float(samples.shape[0])
        if network is not None and samples.shape[0] >= 2:
            picks = E.reference_indices(len(train_set), samples.shape[0], run.seed("fid_reference"))
            real = torch.stack([train_set[i][0] for i in picks]).to(acc.device)
            metrics["gen_reference"] = f"{len(picks)} random training images"
            metrics.update(E.frechet_metrics(real, samples, prefix="gen_", network=network,
                                             kid_subset=ev.kid_subset_size, batch_size=ev.batch_size))
    return EvaluationResult(metrics=metrics, originals=x, reconstructions=y, samples=samples, spectrum=spectrum)
