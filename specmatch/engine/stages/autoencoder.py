"""Stage 1: train the autoencoder with its regularizers (and perceptual and adversarial terms), or reuse it.

Reuse: a complete stage in this run folder (its ``stage.json`` key matches and its files are intact), or
``autoencoder.from_run``. Training: the objective of ``engine/autoencoder_loss.py``; with ``[adversarial]``,
from its ``start_step`` on, odd steps are discriminator turns (the authors' alternation).
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import torch
from torch import nn

from specmatch.core.layout import final_weights

from ..autoencoder_loss import AutoencoderObjective, RegularizerSlot, discriminator_loss, to_floats
from ..checkpoint import load_weights, stage_complete
from ..init_weights import load_init
from ..run_context import RunContext
from ..runtime import replay, seed_stage_rng
from ..training import MetricsLog, StageTrainer, begin_stage, make_optimizer


log = logging.getLogger(__name__)


@attrs.frozen
class AutoencoderResult:
    model: nn.Module  # on the accelerator's device, in eval mode: the EMA copy when the stage keeps one


def autoencoder_stage(run: RunContext, train_set, test_set) -> AutoencoderResult:
    stage = run.plan.stage("autoencoder")
    acc = run.accelerator
    comp = run.resolved.component("autoencoder")
    ae = run.build_component(comp)
    run.upstream["autoencoder"] = ae
    if stage.reused_from is not None:
        source = stage.reused_from / "autoencoder"
        load_weights(ae, final_weights(source))
        log.info(f"[autoencoder] reused from {source}")
        return AutoencoderResult(model=ae.to(acc.device).eval())
    if stage_complete(stage.folder, stage.key):
        load_weights(ae, final_weights(stage.folder))
        log.info(f"[autoencoder] complete in {stage.folder}; reused")
        run.reused("autoencoder", stage.folder)
        return AutoencoderResult(model=ae.to(acc.device).eval())
    with run.timed("autoencoder", marker=stage.folder):
        return AutoencoderResult(model=_train(run, stage, comp, ae, train_set, test_set))


def _objective(run: RunContext, ae: nn.Module) -> AutoencoderObjective:
    recipe = run.recipe
    teacher = None
    if run.resolved.autoencoder_uses_teacher():  # a teacher only REPA uses is built in the denoiser stage
        teacher = run.build("alignment")
        run.upstream["alignment"] = teacher
    regularizers, slots = [], []
    for i, comp in enumerate(run.resolved.regularizers()):
        regularizers.append(run.build_component(comp))
        slots.append(RegularizerSlot(name=comp.spec.name, config=comp.config, needs=comp.spec.needs,
                                     transforms_pair=comp.spec.transforms_pair, index=i,
                                     provider=comp.spec.provider))
    perceptual = run.build("perceptual")
    if perceptual is not None:
        perceptual.requires_grad_(False)
    device = run.accelerator.device
    return AutoencoderObjective(
        ae, regularizers, slots, pixel_loss=recipe.train.autoencoder.pixel_loss,
        sample_posterior=recipe.train.autoencoder.sample_posterior, perceptual=perceptual,
        perceptual_weight=recipe.perceptual.weight if perceptual else 0.0,
        teacher=teacher.to(device) if hasattr(teacher, "to") else teacher, adversarial_cfg=recipe.adversarial)


def _discriminator(run: RunContext) -> nn.Module | None:
    disc = run.build("adversarial")
    acc = run.accelerator
    if disc is not None and acc.num_processes > 1 and acc.device.type != "cpu":
        # BatchNorm statistics over the global batch, as the authors' multi-GPU training has them
        # (SyncBatchNorm needs an accelerator device; CPU processes keep per-process statistics)
        disc = nn.SyncBatchNorm.convert_sync_batchnorm(disc)
    return disc


def _train(run: RunContext, stage, comp, ae: nn.Module, train_set, test_set) -> nn.Module:
    acc = run.accelerator
    cfg = run.recipe.train.autoencoder
    adv = run.recipe.adversarial
    if stage.init is not None:  # before the EMA copy and the optimizer see the weights (a resume overwrites them)
        load_init(ae, stage.init)
    objective = _objective(run, ae)
    disc = _discriminator(run)
    begin_stage(acc)
    seed_stage_rng(run.recipe.run.seed, "autoencoder", acc.process_index)
    opt, sched = make_optimizer(objective.parameters(), cfg)
    # the scheduler is stepped by us once per optimizer step: accelerate's wrapper would step it once per
    # process, so a warm-up would end N times sooner on N processes
    objective, opt = acc.prepare(objective, opt)
    d_opt = d_sched = None
    if disc is not None:
        d_opt, d_sched = make_optimizer(disc.parameters(), cfg, lr=adv.lr)
        disc, d_opt = acc.prepare(disc, d_opt)
    trainer = StageTrainer(accelerator=acc, name="autoencoder", folder=stage.folder, key=stage.key, cfg=cfg,
                           seed=run.seed("autoencoder"), log=MetricsLog(run.layout.curves, acc, "autoencoder"),
                           log_every=run.recipe.run.log_every, resume=run.resume)
    trainer.track("autoencoder", model=objective, optimizer=opt, scheduler=sched)
    if disc is not None:
        trainer.track("discriminator", model=disc, optimizer=d_opt, scheduler=d_sched)

    def unwrapped() -> AutoencoderObjective:
        return acc.unwrap_model(objective)

    ema = trainer.add_ema(unwrapped().autoencoder, cfg.ema_decay) if cfg.ema_decay else None
    trainer.restore()
    run.carried["autoencoder"] = trainer.carried
    diagnostics = _Diagnostics(run, test_set)

    def generator_turn(x, step, control, noise) -> dict[str, float]:
        logs: dict[str, float] = {"lr": sched.get_last_lr()[0]}
        objective.train()
        for (micro,) in trainer.micro_batches(objective, x):
            # every micro-batch replays the step's control draws: one DSM level (or EQ-VAE transform) per
            # optimizer step, as the authors draw one per iteration for the whole batch
            with acc.autocast():
                loss, terms, _, _ = objective(micro, step=step, cpu_generator=replay(control),
                                              device_generator=noise, discriminator=disc)
            acc.backward(loss / cfg.grad_accumulation)
            values = to_floats(terms)
            trainer.guard.observe(values)
            logs.update(values)
        trainer.update(step, logs, parameters=objective.parameters(), optimizer=opt, scheduler=sched,
                       clip=cfg.grad_clip, ema=ema, ema_source=unwrapped().autoencoder)
        if d_opt is not None:
            d_opt.zero_grad(set_to_none=True)  # the generator term left gradients in the discriminator
        return logs

    def discriminator_turn(x, step, control, noise) -> dict[str, float]:
        logs: dict[str, float] = {"lr": d_sched.get_last_lr()[0]}
        # a discriminator turn needs only encode -> pair transforms -> decode; no regularizer term
        with acc.autocast():
            x_hat, target = unwrapped().reconstruct_pair(x, step=step, cpu_generator=control,
                                                         device_generator=noise)
            d_loss = discriminator_loss(disc, target, x_hat)
        acc.backward(d_loss)
        logs["loss/discriminator"] = float(d_loss.detach())
        trainer.guard.observe({"loss/discriminator": logs["loss/discriminator"]})
        # the authors clip the discriminator too (its N(0, 0.2) init makes its gradients steep)
        trainer.update(step, logs, parameters=disc.parameters(), optimizer=d_opt, scheduler=d_sched,
                       clip=adv.grad_clip, grad_key="grad_norm/discriminator")
        opt.zero_grad(set_to_none=True)
        return logs

    def step_fn(batch, step, control, noise) -> dict[str, float]:
        x = batch[0].to(acc.device, non_blocking=True)
        d_turn = disc is not None and step >= adv.start_step and step % 2 == 1
        logs = (discriminator_turn if d_turn else generator_turn)(x, step, control, noise)
        logs.update(diagnostics.at(step, unwrapped().autoencoder))
        return logs

    trainer.run(train_set, step_fn, num_workers=run.recipe.data.num_workers)
    init = stage.init.record() if stage.init is not None else {}
    return trainer.save_final(unwrapped().autoencoder, ema, {"component": comp.spec.name, **init}, record=init)


class _Diagnostics:
    """Every ``analyze_every`` steps, the scalars of the ``[evaluation] diagnostics`` whose spec declares
    ``during_training`` (cheap ones: latent-spectrum, channel-eigenspectrum), on a fixed batch of held-out
    images, logged as ``diag/<name>/<scalar>``."""

    def __init__(self, run: RunContext, test_set):
        self.every = run.recipe.train.autoencoder.analyze_every
        self.main = run.accelerator.is_main_process
        self.images: Any = None
        self.diagnostics: list[tuple[str, Any]] = []
        if self.every and self.main:
            n = min(run.recipe.evaluation.spectrum_images or 32, len(test_set))
            self.images = torch.stack([test_set[i][0] for i in range(n)]).to(run.accelerator.device)
            for i in range(len(run.recipe.evaluation.diagnostics)):
                comp = run.resolved.component(f"evaluation.diagnostics[{i}]")
                if comp.spec.during_training:
                    self.diagnostics.append((comp.spec.name, run.build_component(comp)))

    def at(self, step: int, model: nn.Module) -> dict[str, float]:
        if not (self.every and (step + 1) % self.every == 0 and self.main and self.diagnostics):
            return {}
        model.eval()
        out: dict[str, float] = {}
        with torch.no_grad():
            for name, diagnostic in self.diagnostics:
                report = diagnostic.run(model, self.images)
                out.update({f"diag/{name}/{k}": float(v) for k, v in diagnostic.scalars(report).items()})
        model.train()
        return out
