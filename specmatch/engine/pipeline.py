"""``specmatch run``: the stages of a plan, in order, each reused when its outputs are complete.

Stages: autoencoder training -> latent statistics -> denoiser training -> evaluation. Outputs in the run
folder: ``recipe.toml``, ``metrics.json``, ``metrics.jsonl``, ``autoencoder/`` (model, EMA, latent stats),
``denoiser/`` (model, EMA), ``samples.png``, ``reconstructions.png``, ``summary.md``.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from specmatch import __version__
from specmatch.core.plan import Plan
from specmatch.core.recipe import ResolvedRecipe

from . import build as B
from .autoencoder_loss import AutoencoderObjective, RegularizerSlot, discriminator_loss, to_floats
from .checkpoint import (
    final_weights,
    load_weights,
    mark_stage_complete,
    save_weights,
    stage_complete,
    write_json_atomic,
)
from .latents import LatentNormalizer, compute_latent_stats, load_latent_stats, save_latent_stats
from .run_lock import RunLock
from .runtime import make_accelerator, replay, seed_stage_rng, seeded_init
from .training import MetricsLog, NonFiniteGuard, StageTrainer, begin_stage, make_optimizer


def _provenance(resolved: ResolvedRecipe) -> str:
    providers = sorted({f"{c.spec.provider}" for c in resolved.components.values()})
    return (f"# specmatch {__version__}\n# source: {resolved.source}\n# components from: {'; '.join(providers)}\n"
            f"# recipe hash: {resolved.section_hash()}\n")


def _micro_batches(x: torch.Tensor, n: int) -> list[torch.Tensor]:
    return list(x.chunk(n)) if n > 1 else [x]


class Pipeline:
    def __init__(self, resolved: ResolvedRecipe, plan: Plan, *, resume: bool = True):
        self.resolved, self.plan, self.resume = resolved, plan, resume
        self.recipe = resolved.recipe
        self.out = plan.output_dir
        self.out.mkdir(parents=True, exist_ok=True)
        self.acc = make_accelerator(self.recipe.run, project_dir=str(self.out))
        self.upstream: dict[str, Any] = {}
        self.metrics: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self.log_path = self.out / "metrics.jsonl"

    # -- helpers -------------------------------------------------------------------------------------------
    def ctx(self):
        return B.context(self.resolved, self.out, self.upstream)

    def build(self, path: str):
        comp = self.resolved.component(path)
        return None if comp is None else self.build_component(comp)

    def build_component(self, comp):
        """Build one component with its initial weights drawn from (run seed, component path) only."""
        from .runtime import seeded_init

        with seeded_init(self.recipe.run.seed, comp.path):
            return B.build(comp, self.ctx())

    def seed(self, *parts) -> int:
        from .runtime import derive_seed

        return derive_seed(self.recipe.run.seed, *parts)

    # -- stages ----------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from accelerate.utils import set_seed

        acc = self.acc
        set_seed(self.recipe.run.seed)
        if acc.is_main_process:
            (self.out / "recipe.toml").write_text(self.resolved.to_toml(header=_provenance(self.resolved)))
        if self.recipe.run.trackers:
            acc.init_trackers(self.recipe.run.name, config={"recipe_hash": self.resolved.section_hash()})
        data = self.build("data")
        if self.recipe.data.preflight:  # every process: cheap, and all fail together instead of at a barrier
            from specmatch.data.check import preflight_datasets

            preflight_datasets(data).raise_if_bad()
        self.train_set, self.test_set = data["train"], data["test"]
        self.upstream["num_classes"] = getattr(self.train_set, "num_classes", 0)
        self.upstream["dataset"] = data

        self.autoencoder_stage()
        self.latent_stats_stage()
        if self.recipe.denoiser is not None:
            self.denoiser_stage()
        self.evaluation_stage()
        if self.recipe.run.trackers:
            acc.end_training()
        return self.metrics

    def _timed(self, name: str, t0: float) -> None:
        self.timings[name] = time.perf_counter() - t0

    def autoencoder_stage(self) -> None:
        stage = self.plan.stage("autoencoder")
        acc = self.acc
        ae_comp = B.autoencoder_component(self.resolved)
        ae = self.build_component(ae_comp)
        self.upstream["autoencoder"] = ae
        if stage.reused_from is not None:
            src = stage.reused_from / "autoencoder"
            load_weights(ae, final_weights(src))
            self.ae = ae.to(acc.device).eval()
            acc.print(f"[autoencoder] reused from {src}")
            return
        folder = stage.folder
        final = folder / "model.safetensors"
        if stage_complete(folder, stage.key) and final.exists():
            load_weights(ae, final_weights(folder))
            self.ae = ae.to(acc.device).eval()
            acc.print(f"[autoencoder] complete in {folder}; reused")
            return
        t0 = time.perf_counter()
        cfg = self.recipe.train.autoencoder
        teacher = None
        if self.resolved.autoencoder_uses_teacher():  # a teacher only REPA uses is built in the denoiser stage
            teacher = self.build("alignment")
            self.upstream["alignment"] = teacher
        regs, slots = [], []
        for i, comp in enumerate(self.resolved.regularizers()):
            regs.append(self.build_component(comp))
            slots.append(RegularizerSlot(name=comp.spec.name, config=comp.config, needs=comp.spec.needs,
                                         transforms_pair=comp.spec.transforms_pair, index=i))
        perceptual = self.build("perceptual")
        if perceptual is not None:
            perceptual.requires_grad_(False)
        disc = self.build("adversarial")
        if disc is not None and acc.num_processes > 1 and acc.device.type != "cpu":
            # BatchNorm statistics over the global batch, as the authors' multi-GPU training has them
            # (SyncBatchNorm needs an accelerator device; CPU processes keep per-process statistics)
            disc = torch.nn.SyncBatchNorm.convert_sync_batchnorm(disc)
        objective = AutoencoderObjective(
            ae, regs, slots, pixel_loss=cfg.pixel_loss, sample_posterior=cfg.sample_posterior,
            perceptual=perceptual, perceptual_weight=self.recipe.perceptual.weight if perceptual else 0.0,
            teacher=teacher.to(acc.device) if hasattr(teacher, "to") else teacher,
            adversarial_cfg=self.recipe.adversarial)
        begin_stage(acc)
        seed_stage_rng(self.recipe.run.seed, "autoencoder", acc.process_index)
        opt, sched = make_optimizer(objective.parameters(), cfg)
        objective, opt, sched = acc.prepare(objective, opt, sched)
        d_opt = d_sched = None
        if disc is not None:
            d_opt, d_sched = make_optimizer(disc.parameters(), cfg, lr=self.recipe.adversarial.lr)
            disc, d_opt, d_sched = acc.prepare(disc, d_opt, d_sched)
        trainer = StageTrainer(accelerator=acc, name="autoencoder", folder=folder, key=stage.key, cfg=cfg,
                               seed=self.seed("autoencoder"), log=MetricsLog(self.log_path, acc, "autoencoder"),
                               log_every=self.recipe.run.log_every, resume=self.resume)
        trainer.track("autoencoder", model=objective, optimizer=opt, scheduler=sched)
        if disc is not None:
            trainer.track("discriminator", model=disc, optimizer=d_opt, scheduler=d_sched)
        ema = trainer.add_ema(acc.unwrap_model(objective).autoencoder, cfg.ema_decay) if cfg.ema_decay else None
        trainer.restore()
        guard = NonFiniteGuard(acc, "autoencoder", cfg.max_nonfinite_steps)
        adv = self.recipe.adversarial
        analyze_every = cfg.analyze_every
        analysis_images = None
        if analyze_every:
            n = min(self.recipe.evaluation.spectrum_images or 32, len(self.test_set))
            analysis_images = torch.stack([self.test_set[i][0] for i in range(n)]).to(acc.device)

        def step_fn(batch, step, cpu_gen, dev_gen):
            x = batch[0].to(acc.device, non_blocking=True)
            # paper schedule: once the adversarial term starts, odd steps update only the discriminator
            d_turn = disc is not None and step >= adv.start_step and step % 2 == 1
            logs: dict[str, float] = {"lr": sched.get_last_lr()[0] if not d_turn else d_sched.get_last_lr()[0]}
            if not d_turn:
                objective.train()
                for micro in _micro_batches(x, cfg.grad_accumulation):
                    # every micro-batch replays the step's control draws: one DSM level (or EQ-VAE transform)
                    # per optimizer step, as the authors draw one per iteration for the whole batch
                    with acc.autocast():
                        loss, step_logs, _, _ = objective(micro, step=step, cpu_generator=replay(cpu_gen),
                                                          device_generator=dev_gen,
                                                          discriminator=disc if disc is not None else None)
                    acc.backward(loss / cfg.grad_accumulation)
                    values = to_floats(step_logs)
                    guard.observe(values)
                logs.update(values)
                if cfg.grad_clip > 0:
                    logs["grad_norm"] = float(acc.clip_grad_norm_(objective.parameters(), cfg.grad_clip))
                    guard.observe({"grad_norm": logs["grad_norm"]})
                if not guard.skip(step):
                    opt.step()
                    sched.step()
                    if ema is not None:
                        ema.update(acc.unwrap_model(objective).autoencoder, step=step)
                opt.zero_grad(set_to_none=True)
                if disc is not None:
                    d_opt.zero_grad(set_to_none=True)  # the generator term left gradients in D
            else:
                # a discriminator turn needs only encode -> pair transforms -> decode; no regularizer term
                with acc.autocast():
                    x_hat, target = acc.unwrap_model(objective).reconstruct_pair(
                        x, step=step, cpu_generator=cpu_gen, device_generator=dev_gen)
                    d_loss = discriminator_loss(disc, target, x_hat)
                acc.backward(d_loss)
                logs["loss/discriminator"] = float(d_loss.detach())
                guard.observe({"loss/discriminator": logs["loss/discriminator"]})
                if adv.grad_clip > 0:  # the authors clip the discriminator too (its N(0, 0.2) init is steep)
                    logs["grad_norm/discriminator"] = float(acc.clip_grad_norm_(disc.parameters(), adv.grad_clip))
                    guard.observe({"grad_norm/discriminator": logs["grad_norm/discriminator"]})
                if not guard.skip(step):
                    d_opt.step()
                    d_sched.step()
                d_opt.zero_grad(set_to_none=True)
                opt.zero_grad(set_to_none=True)
            logs["skipped_steps"] = guard.skipped
            if analyze_every and (step + 1) % analyze_every == 0 and acc.is_main_process:
                from .evaluation import latent_spectrum

                model = acc.unwrap_model(objective).autoencoder
                model.eval()
                from specmatch.analysis import spectrum_scalars

                spec = latent_spectrum(model, analysis_images)
                model.train()
                logs.update({f"diag/{k}": v for k, v in spectrum_scalars(spec).items()})
            return logs

        trainer.run(self.train_set, step_fn, num_workers=self.recipe.data.num_workers)
        model = acc.unwrap_model(objective).autoencoder
        if acc.is_main_process:
            meta = {"component": ae_comp.spec.name, "stage_key": stage.key}
            save_weights(model, folder / "model.safetensors", meta)
            if ema is not None:
                save_weights(ema.module, folder / "ema.safetensors", meta)
            mark_stage_complete(folder, stage.key, {"steps": cfg.steps})
        acc.wait_for_everyone()
        if ema is not None:
            model = ema.module
        self.ae = model.eval()
        self._timed("autoencoder", t0)

    def latent_stats_stage(self) -> None:
        stage = self.plan.stage("latent_stats")
        acc = self.acc
        src = (stage.reused_from / "autoencoder") if stage.reused_from is not None else stage.folder
        path = src / "latent_stats.safetensors"
        marker_ok = stage.reused_from is not None or stage_complete(stage.folder / "latent_stats", stage.key)
        if not (marker_ok and path.exists()):
            if stage.reused_from is not None:
                from specmatch.core.errors import SpecmatchError

                raise SpecmatchError(f"autoencoder.from_run: {src} has no latent_stats.safetensors; rerun that "
                                     f"run to completion first")
            t0 = time.perf_counter()
            cfg = self.recipe.latent_stats
            stats = compute_latent_stats(acc, self.ae, self.train_set, images=cfg.images, flips=cfg.flips,
                                         mode=cfg.mode, subtract_mean=cfg.subtract_mean,
                                         batch_size=self.recipe.evaluation.batch_size, seed=self.recipe.run.seed)
            if acc.is_main_process:
                save_latent_stats(stats, path, {"mode": cfg.mode, "images": str(cfg.images),
                                                "flips": str(cfg.flips), "stage_key": stage.key})
                mark_stage_complete(stage.folder / "latent_stats", stage.key, files=[path])
            acc.wait_for_everyone()
            self._timed("latent_stats", t0)
        stats = load_latent_stats(path)
        self.normalizer = LatentNormalizer(self.ae, stats["mean"], stats["std"]).to(acc.device)
        c, h, w = self.ae.latent_channels, *self._latent_hw()
        self.upstream["latent_shape"] = (c, h, w)
        self.upstream["normalizer"] = self.normalizer
        self.metrics["latent_mean"] = float(stats["mean"].mean())
        self.metrics["latent_std"] = float(stats["std"].mean())

    def _latent_hw(self) -> tuple[int, int]:
        x = self.test_set[0][0]
        f = self.ae.downsample_factor
        return x.shape[-2] // f, x.shape[-1] // f

    def denoiser_stage(self) -> None:
        stage = self.plan.stage("denoiser")
        acc = self.acc
        folder = stage.folder
        cfg = self.recipe.train.denoiser
        denoiser = self.build("denoiser")
        self.objective = self.build("objective")
        self.sampler = self.build("sampler")
        final = folder / "model.safetensors"
        if stage_complete(folder, stage.key) and final.exists():
            load_weights(denoiser, final_weights(folder))
            self.denoiser = denoiser.to(acc.device).eval()
            acc.print(f"[denoiser] complete in {folder}; reused")
            return
        t0 = time.perf_counter()
        repa = None
        trainable = denoiser
        if self.recipe.repa is not None:
            from .representation_alignment import RepresentationAlignment

            teacher = self.upstream.get("alignment")  # already built when the autoencoder stage trained with it
            if teacher is None:
                teacher = self.build("alignment")
            teacher = teacher.to(acc.device) if hasattr(teacher, "to") else teacher
            with seeded_init(self.recipe.run.seed, "repa.projector"):
                repa = RepresentationAlignment(self.recipe.repa, teacher, denoiser,
                                               recipe=str(self.resolved.source))
            trainable = repa.wrap(denoiser)  # the projector trains (and checkpoints) with the denoiser
        begin_stage(acc)
        seed_stage_rng(self.recipe.run.seed, "denoiser", acc.process_index)
        opt, sched = make_optimizer(trainable.parameters(), cfg)
        model, opt, sched = acc.prepare(trainable, opt, sched)

        def denoiser_of(prepared):
            unwrapped = acc.unwrap_model(prepared)
            return unwrapped.denoiser if repa is not None else unwrapped

        trainer = StageTrainer(accelerator=acc, name="denoiser", folder=folder, key=stage.key, cfg=cfg,
                               seed=self.seed("denoiser"), log=MetricsLog(self.log_path, acc, "denoiser"),
                               log_every=self.recipe.run.log_every, resume=self.resume)
        trainer.track("denoiser", model=model, optimizer=opt, scheduler=sched)
        ema = trainer.add_ema(denoiser_of(model), cfg.ema_decay) if cfg.ema_decay else None
        trainer.restore()
        guard = NonFiniteGuard(acc, "denoiser", cfg.max_nonfinite_steps)
        normalizer = self.normalizer
        conditional = cfg.class_conditional and self.upstream["num_classes"] > 0
        train_data = self.train_set
        if cfg.cache_latents:
            from .latents import encode_moments

            t_cache = time.perf_counter()
            train_data = encode_moments(acc, self.ae, self.train_set, batch_size=self.recipe.evaluation.batch_size,
                                        keep_images=repa is not None)
            self._timed("latent_cache", t_cache)

        def latents_of(batch, generator):
            """Normalised latents, labels and the matching clean images (None unless REPA needs them).

            Cached: sampled from the moments of the image or of its flip, chosen at random; encoded: as is.
            """
            if not cfg.cache_latents:
                x = batch[0].to(acc.device)
                return normalizer.encode(x, generator), batch[1].to(acc.device), x if repa is not None else None
            mean, std = batch[0].to(acc.device).float(), batch[1].to(acc.device).float()
            flip = torch.randint(0, 2, (mean.shape[0],), generator=generator, device=generator.device)
            flip = flip.to(mean.device)
            pick = torch.arange(mean.shape[0], device=mean.device)
            mean, std = mean[pick, flip], std[pick, flip]
            eps = torch.randn(mean.shape, generator=generator, device=generator.device).to(mean.device)
            images = None
            if repa is not None:  # the teacher sees the same view the latent came from
                images = batch[3].to(acc.device)
                images = torch.where(flip.bool()[:, None, None, None], images.flip(-1), images)
            return (mean + std * eps - normalizer.mean) / normalizer.std, batch[2].to(acc.device), images

        def step_fn(batch, step, cpu_gen, dev_gen):
            z_all, y, images = latents_of(batch, dev_gen)
            features_all = repa.teacher_features(images) if repa is not None else None
            model.train()
            logs: dict[str, float] = {"lr": sched.get_last_lr()[0]}
            micro = cfg.grad_accumulation
            feature_chunks = _micro_batches(features_all, micro) if repa is not None else [None] * micro
            for z, ym, features in zip(_micro_batches(z_all, micro), _micro_batches(y, micro), feature_chunks):
                kwargs = {"y": ym} if conditional else {}
                with acc.autocast():
                    if repa is None:
                        loss, parts = self.objective.loss(model, z, generator=dev_gen, **kwargs)
                    else:
                        projected = []

                        def velocity_of(x_t, t, **kw):  # the objective sees a plain denoiser
                            velocity, tokens = model(x_t, t, **kw)
                            projected.append(tokens)
                            return velocity

                        loss, parts = self.objective.loss(velocity_of, z, generator=dev_gen, **kwargs)
                        parts["repa"] = repa.loss(projected[-1], features)
                        loss = loss + self.recipe.repa.weight * parts["repa"]
                acc.backward(loss / cfg.grad_accumulation)
                logs.update(to_floats({"loss/total": loss, **{f"loss/{k}": v for k, v in parts.items()}}))
                guard.observe(logs)
            if cfg.grad_clip > 0:
                logs["grad_norm"] = float(acc.clip_grad_norm_(model.parameters(), cfg.grad_clip))
                guard.observe({"grad_norm": logs["grad_norm"]})
            if not guard.skip(step):
                opt.step()
                sched.step()
                if ema is not None:
                    ema.update(denoiser_of(model), step=step)
            opt.zero_grad(set_to_none=True)
            logs["skipped_steps"] = guard.skipped
            return logs

        trainer.run(train_data, step_fn, num_workers=0 if cfg.cache_latents else self.recipe.data.num_workers)
        unwrapped = denoiser_of(model)
        if acc.is_main_process:
            save_weights(unwrapped, folder / "model.safetensors", {"stage_key": stage.key})
            if ema is not None:
                save_weights(ema.module, folder / "ema.safetensors", {"stage_key": stage.key})
            mark_stage_complete(folder, stage.key, {"steps": cfg.steps})
        acc.wait_for_everyone()
        self.denoiser = (ema.module if ema is not None else unwrapped).eval()
        self._timed("denoiser", t0)

    def evaluation_stage(self) -> None:
        from . import evaluation as E

        acc = self.acc
        ev = self.recipe.evaluation
        t0 = time.perf_counter()
        x, y = E.reconstruct(acc, self.ae, self.test_set, ev.reconstruction_images, ev.batch_size,
                             latent=ev.reconstruction_latent, seed=self.seed("reconstruction"))
        self.metrics.update(E.reconstruction_metrics(x, y))
        self.metrics["recon_latent"] = ev.reconstruction_latent  # stamped next to every reconstruction metric
        network, why_not = (E.load_feature_network(ev.feature_network, self.resolved.recipe_dir, acc.device)
                            if ev.frechet else (None, "evaluation.frechet = false"))
        self.metrics["feature_network"] = network.describe()["name"] if network is not None else "none"
        if network is None:
            acc.print(f"[evaluation] no Frechet/KID: {why_not}")
        if network is not None and x.shape[0] >= 2:
            self.metrics.update(E.frechet_metrics(x, y, prefix="r", network=network,
                                                  kid_subset=ev.kid_subset_size, batch_size=ev.batch_size))
        n_spec = min(ev.spectrum_images, len(self.test_set))
        if n_spec:
            imgs = torch.stack([self.test_set[i][0] for i in range(n_spec)]).to(acc.device)
            from specmatch.analysis import spectrum_scalars

            spec = E.latent_spectrum(self.ae, imgs)
            self.metrics.update(spectrum_scalars(spec))
            self.spectrum = spec
        samples = None
        if self.recipe.denoiser is not None and ev.num_samples > 0:
            samples = E.generate(acc, self.sampler, self.denoiser, self.normalizer, n=ev.num_samples,
                                 latent_shape=self.upstream["latent_shape"], batch_size=ev.batch_size,
                                 seed=self.seed("samples"),
                                 num_classes=self.upstream["num_classes"]
                                 if self.recipe.train.denoiser.class_conditional else 0)
            self.metrics["gen_samples"] = float(samples.shape[0])
            if network is not None and samples.shape[0] >= 2:
                picks = E.reference_indices(len(self.train_set), samples.shape[0], self.seed("fid_reference"))
                real = torch.stack([self.train_set[i][0] for i in picks])
                self.metrics["gen_reference"] = f"{len(picks)} random training images"
                self.metrics.update(E.frechet_metrics(real.to(acc.device), samples, prefix="gen_",
                                                      network=network, kid_subset=ev.kid_subset_size,
                                                      batch_size=ev.batch_size))
        self._timed("evaluation", t0)
        if acc.is_main_process:
            k = ev.sample_grid
            E.save_grid(E.interleave_rows(x[:k // 2], y[:k // 2], per_row=8), self.out / "reconstructions.png",
                        nrow=8)
            if samples is not None:
                E.save_grid(samples[:k], self.out / "samples.png")
            self.write_outputs()
        acc.wait_for_everyone()

    def write_outputs(self) -> None:
        flat = {k: v for k, v in self.metrics.items() if isinstance(v, (int, float, str))}
        flat.update({f"time_{k}_s": round(v, 2) for k, v in self.timings.items()})
        flat["processes"] = self.acc.num_processes
        write_json_atomic(self.out / "metrics.json", flat)
        if getattr(self, "spectrum", None):
            write_json_atomic(self.out / "spectrum.json", self.spectrum)
        lines = [f"# {self.recipe.run.name}", "", f"recipe hash `{self.resolved.section_hash()}`, "
                 f"specmatch {__version__}, {self.acc.num_processes} process(es) on {self.acc.device}", "",
                 "| metric | value |", "|---|---|"]
        for key, value in sorted(flat.items()):
            lines.append(f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |")
        (self.out / "summary.md").write_text("\n".join(lines) + "\n")


def run_pipeline(resolved: ResolvedRecipe, plan: Plan, *, resume: bool = True) -> dict[str, Any]:
    pipeline = Pipeline(resolved, plan, resume=resume)
    with RunLock(pipeline.out, enabled=pipeline.acc.is_main_process):
        metrics = pipeline.run()
    if pipeline.acc.is_main_process:
        print(metrics_table(metrics))
    return metrics


def metrics_table(metrics: dict[str, Any]) -> str:
    rows = [("metric", "value")]
    for key in sorted(metrics):
        v = metrics[key]
        rows.append((key, f"{v:.4g}" if isinstance(v, float) else str(v)))
    w = max(len(r[0]) for r in rows)
    return "\n".join(f"{a:<{w}}  {b}" for a, b in rows)
