"""Stage 3: train the latent denoiser with its objective on normalised latents (optionally with REPA).

Latents come from a cache of posterior moments (of each image and of its flip) by default, or are encoded
every step. With ``[repa]`` the denoiser's tokens after block ``repa.depth`` are aligned with the
``[alignment]`` teacher's features of the same clean image (``engine/representation_alignment.py``).
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import torch
from torch import nn

from specmatch.core.layout import final_weights

from ..autoencoder_loss import to_floats
from ..checkpoint import load_weights, stage_complete
from ..run_context import RunContext
from ..runtime import seed_stage_rng, seeded_init
from ..training import MetricsLog, StageTrainer, begin_stage, make_optimizer
from .latent_stats import LatentStatsResult


log = logging.getLogger(__name__)


@attrs.frozen
class DenoiserResult:
    model: nn.Module  # on the accelerator's device, in eval mode: the EMA copy when the stage keeps one
    conditional: bool  # trained with class labels


def denoiser_stage(run: RunContext, autoencoder: nn.Module, stats: LatentStatsResult, train_set
                   ) -> DenoiserResult:
    stage = run.plan.stage("denoiser")
    acc = run.accelerator
    cfg = run.recipe.train.denoiser
    conditional = cfg.class_conditional and run.upstream.get("num_classes", 0) > 0
    denoiser = run.build("denoiser")
    if stage_complete(stage.folder, stage.key):
        load_weights(denoiser, final_weights(stage.folder))
        log.info(f"[denoiser] complete in {stage.folder}; reused")
        return DenoiserResult(model=denoiser.to(acc.device).eval(), conditional=conditional)
    with run.timed("denoiser"):
        model = _train(run, stage, denoiser, autoencoder, stats, train_set, conditional)
    return DenoiserResult(model=model, conditional=conditional)


def _alignment(run: RunContext, denoiser: nn.Module):
    """REPA's teacher, projector and loss, or None without ``[repa]``."""
    if run.recipe.repa is None:
        return None
    from ..representation_alignment import RepresentationAlignment

    teacher = run.upstream.get("alignment")  # already built when the autoencoder stage trained with it
    if teacher is None:
        teacher = run.build("alignment")
    teacher = teacher.to(run.accelerator.device) if hasattr(teacher, "to") else teacher
    with seeded_init(run.recipe.run.seed, "repa.projector"):
        return RepresentationAlignment(run.recipe.repa, teacher, denoiser, recipe=str(run.resolved.source))


class _Latents:
    """Normalised latents, labels and the matching clean images (None unless REPA needs them) of a batch.

    Cached: sampled from the moments of the image or of its flip, chosen at random; encoded: as is.
    """

    def __init__(self, run: RunContext, autoencoder, stats: LatentStatsResult, train_set, keep_images: bool):
        self.device = run.accelerator.device
        self.normalizer = stats.normalizer
        self.keep_images = keep_images
        self.cached = run.recipe.train.denoiser.cache_latents
        self.data = train_set
        if self.cached:
            from ..latents import encode_moments

            with run.timed("latent_cache"):
                self.data = encode_moments(run.accelerator, autoencoder, train_set,
                                           batch_size=run.recipe.evaluation.batch_size, keep_images=keep_images)

    def __call__(self, batch, generator: torch.Generator):
        device, normalizer = self.device, self.normalizer
        if not self.cached:
            x = batch[0].to(device)
            return normalizer.encode(x, generator), batch[1].to(device), x if self.keep_images else None
        mean, std = batch[0].to(device).float(), batch[1].to(device).float()
        flip = torch.randint(0, 2, (mean.shape[0],), generator=generator, device=generator.device).to(device)
        pick = torch.arange(mean.shape[0], device=device)
        mean, std = mean[pick, flip], std[pick, flip]
        eps = torch.randn(mean.shape, generator=generator, device=generator.device).to(device)
        images = None
        if self.keep_images:  # the teacher sees the same view the latent came from
            images = batch[3].to(device)
            images = torch.where(flip.bool()[:, None, None, None], images.flip(-1), images)
        return (mean + std * eps - normalizer.mean) / normalizer.std, batch[2].to(device), images


def _train(run: RunContext, stage, denoiser: nn.Module, autoencoder, stats: LatentStatsResult, train_set,
           conditional: bool) -> nn.Module:
    acc = run.accelerator
    cfg = run.recipe.train.denoiser
    objective = run.build("objective")
    repa = _alignment(run, denoiser)
    trainable = repa.wrap(denoiser) if repa is not None else denoiser  # the projector trains with it
    begin_stage(acc)
    seed_stage_rng(run.recipe.run.seed, "denoiser", acc.process_index)
    opt, sched = make_optimizer(trainable.parameters(), cfg)
    model, opt = acc.prepare(trainable, opt)  # the scheduler steps once per optimizer step (see autoencoder)

    def plain_denoiser() -> nn.Module:
        unwrapped = acc.unwrap_model(model)
        return unwrapped.denoiser if repa is not None else unwrapped

    trainer = StageTrainer(accelerator=acc, name="denoiser", folder=stage.folder, key=stage.key, cfg=cfg,
                           seed=run.seed("denoiser"), log=MetricsLog(run.layout.curves, acc, "denoiser"),
                           log_every=run.recipe.run.log_every, resume=run.resume)
    trainer.track("denoiser", model=model, optimizer=opt, scheduler=sched)
    ema = trainer.add_ema(plain_denoiser(), cfg.ema_decay) if cfg.ema_decay else None
    trainer.restore()
    latents = _Latents(run, autoencoder, stats, train_set, keep_images=repa is not None)

    def loss_of(z, y, features, noise: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        kwargs = {"y": y} if conditional else {}
        if repa is None:
            return objective.loss(model, z, generator=noise, **kwargs)
        projected = []

        def velocity_of(x_t, t, **kw):  # the objective sees a plain denoiser
            velocity, tokens = model(x_t, t, **kw)
            projected.append(tokens)
            return velocity

        loss, parts = objective.loss(velocity_of, z, generator=noise, **kwargs)
        parts["repa"] = repa.loss(projected[-1], features)
        return loss + run.recipe.repa.weight * parts["repa"], parts

    def step_fn(batch, step, control, noise) -> dict[str, float]:
        z_all, y_all, images = latents(batch, noise)
        features_all = repa.teacher_features(images) if repa is not None else None
        model.train()
        logs: dict[str, float] = {"lr": sched.get_last_lr()[0]}
        for z, y, features in trainer.micro_batches(model, z_all, y_all, features_all):
            with acc.autocast():
                loss, parts = loss_of(z, y, features, noise)
            acc.backward(loss / cfg.grad_accumulation)
            logs.update(to_floats({"loss/total": loss, **{f"loss/{k}": v for k, v in parts.items()}}))
            trainer.guard.observe(logs)
        trainer.update(step, logs, parameters=model.parameters(), optimizer=opt, scheduler=sched,
                       clip=cfg.grad_clip, ema=ema, ema_source=plain_denoiser())
        return logs

    trainer.run(latents.data, step_fn, num_workers=0 if cfg.cache_latents else run.recipe.data.num_workers)
    return trainer.save_final(plain_denoiser(), ema)
