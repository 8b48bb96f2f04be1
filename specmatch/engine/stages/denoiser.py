"""Stage 3: train the latent denoiser with its objective on normalised latents, plus its terms (REPA).

Latents come from a cache of posterior moments (of each image and of its flip) by default, in memory or
memory-mapped from disk (``engine/latent_cache.py``), or are encoded every step. ``[[denoiser_regularizers]]``
terms are built after the denoiser (they may size a projector from its ``tap_widths``) and train with it; the
loss of one step is in ``engine/denoiser_loss.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

import attrs
import torch
from torch import nn

from specmatch.core.errors import SpecmatchError
from specmatch.core.fingerprint import components_hash
from specmatch.core.layout import MARKER_FILE, RunLayout, final_weights
from specmatch.nn import batch_noise

from ..autoencoder_loss import to_floats
from ..checkpoint import load_weights, stage_complete
from ..denoiser_loss import TermSlot, TrainableDenoiser, denoiser_loss, drop_labels
from ..contracts import check_objective
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
    if cfg.class_conditional and run.upstream.get("num_classes", 0) == 0:
        raise SpecmatchError(f"{run.resolved.source}: train.denoiser.class_conditional: set, but dataset "
                             f"{run.recipe.data.name!r} has no class labels (num_classes = 0); label the data "
                             f"(e.g. image-folder's class_from_subfolder = true) or set it to false")
    conditional = cfg.class_conditional
    denoiser = run.build("denoiser")
    if stage_complete(stage.folder, stage.key):
        load_weights(denoiser, final_weights(stage.folder))
        log.info(f"[denoiser] complete in {stage.folder}; reused")
        run.reused("denoiser", stage.folder)
        return DenoiserResult(model=denoiser.to(acc.device).eval(), conditional=conditional)
    with run.timed("denoiser", marker=stage.folder):
        model = _train(run, stage, denoiser, autoencoder, stats, train_set, conditional)
    return DenoiserResult(model=model, conditional=conditional)


def _terms(run: RunContext, denoiser: nn.Module) -> tuple[list[nn.Module], list[TermSlot], int | None]:
    """The built ``[[denoiser_regularizers]]``, their slots, and the one tap they read (None: no hidden)."""
    comps = run.resolved.denoiser_regularizers()
    if any("features" in c.spec.needs for c in comps) and run.upstream.get("alignment") is None:
        teacher = run.build("alignment")  # not built yet when only the denoiser's terms use it
        run.upstream["alignment"] = teacher.to(run.accelerator.device) if hasattr(teacher, "to") else teacher
    run.upstream["denoiser"] = denoiser
    terms, slots, tap = [], [], None
    for comp in comps:
        with seeded_init(run.recipe.run.seed, comp.path):
            terms.append(run.build_component(comp))
        slots.append(TermSlot(name=comp.spec.name, config=comp.config, needs=comp.spec.needs,
                              provider=comp.spec.provider))
        if "hidden" in comp.spec.needs:
            tap = getattr(comp.params, comp.spec.tap_param)  # validate made every term read the same tap
    return terms, slots, tap


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
            with run.timed("latent_cache"):
                self.data = _latent_cache(run, autoencoder, stats, train_set, keep_images)

    def __call__(self, batch, generator: torch.Generator):
        device, normalizer = self.device, self.normalizer
        if not self.cached:
            x = batch[0].to(device)
            return normalizer.encode(x, generator), batch[1].to(device), x if self.keep_images else None
        mean, std = batch[0].to(device).float(), batch[1].to(device).float()
        flip = batch_noise.randint(2, (mean.shape[0],), generator=generator, device=device)
        pick = torch.arange(mean.shape[0], device=device)
        mean, std = mean[pick, flip], std[pick, flip]
        eps = batch_noise.randn(mean.shape, generator=generator, device=device)
        images = None
        if self.keep_images:  # the teacher sees the same view the latent came from
            images = batch[3].to(device)
            images = torch.where(flip.bool()[:, None, None, None], images.flip(-1), images)
        return (mean + std * eps - normalizer.mean) / normalizer.std, batch[2].to(device), images


def _latent_cache(run: RunContext, autoencoder, stats: LatentStatsResult, train_set, keep_images: bool):
    """The posterior moments of the training set, in memory or on disk (``train.denoiser.latent_cache``)."""
    from .. import latent_cache as LC

    acc, cfg = run.accelerator, run.recipe.train.denoiser
    shape, batch = stats.latent_shape, run.recipe.evaluation.batch_size
    local = int(os.environ.get("LOCAL_WORLD_SIZE", acc.num_processes))
    mode, why = LC.choose_mode(cfg.latent_cache, LC.cache_bytes(len(train_set), shape), local_processes=local,
                               ram_fraction=cfg.latent_cache_ram_fraction, ram=LC.physical_memory())
    if acc.num_processes > 1:  # machines may differ in RAM: every process follows the main one
        from accelerate.utils import broadcast_object_list

        mode, why = broadcast_object_list([mode, why])
    log.info(f"[denoiser] latent cache: {mode} ({why})")
    images = train_set if keep_images else None
    if mode == "memory":
        return LC.encode_in_memory(acc, autoencoder, train_set, latent_shape=shape, batch_size=batch,
                                   keep_images=keep_images)
    owner = _autoencoder_layout(run)
    try:
        owner.latent_cache.mkdir(parents=True, exist_ok=True)
        writable = os.access(owner.latent_cache, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        raise SpecmatchError(f"{run.resolved.source}: train.denoiser.latent_cache: the disk cache goes to "
                             f"{owner.latent_cache}, which cannot be written; make it writable or set "
                             f"train.denoiser.latent_cache = 'memory'")
    about = _cache_identity(run, owner, len(train_set), shape)
    index = LC.build_disk_cache(acc, autoencoder, train_set, owner.latent_cache, key=LC.cache_key(about),
                                latent_shape=shape, batch_size=batch, about=about)
    return LC.DiskLatents(owner.latent_cache, index, images=images)


def _autoencoder_layout(run: RunContext) -> RunLayout:
    """The run folder that trained the autoencoder: this one, or the one ``autoencoder.from_run`` names."""
    reused = run.plan.stage("autoencoder").reused_from
    return RunLayout(reused) if reused is not None else run.layout


def _cache_identity(run: RunContext, owner: RunLayout, rows: int, shape) -> dict:
    """What decides the cached bytes: the autoencoder's weights, the data (table and plugin code), its size."""
    try:
        marker = json.loads((owner.autoencoder / MARKER_FILE).read_text())
        weights = {"stage_key": marker.get("key"),
                   "files": {k: v.get("sha256") for k, v in (marker.get("files") or {}).items()}}
    except (OSError, ValueError, UnicodeDecodeError, AttributeError):  # no marker: hash the weights themselves
        with final_weights(owner.autoencoder).open("rb") as f:
            weights = {"weights_sha256": hashlib.file_digest(f, "sha256").hexdigest()}
    data = run.resolved.to_dict()["data"]
    for setting in ("num_workers", "preflight"):  # how items are read, not what they are
        data.pop(setting, None)
    return {"autoencoder": weights, "data": data, "data_code": components_hash(run.resolved, ["data"]),
            "rows": rows, "latent_shape": list(shape), "views": "image, horizontal flip"}


def _train(run: RunContext, stage, denoiser: nn.Module, autoencoder, stats: LatentStatsResult, train_set,
           conditional: bool) -> nn.Module:
    acc = run.accelerator
    cfg = run.recipe.train.denoiser
    objective = run.build("objective")
    check_objective(objective, run.resolved.component("objective").spec)
    terms, slots, tap = _terms(run, denoiser)
    trainable = TrainableDenoiser(denoiser, terms, slots, tap)  # the terms' parameters train with it
    teacher = run.upstream.get("alignment") if any("features" in s.needs for s in slots) else None
    keep_images = teacher is not None or any("images" in s.needs for s in slots)
    begin_stage(acc)
    seed_stage_rng(run.recipe.run.seed, "denoiser", acc.process_index)
    opt, sched = make_optimizer(trainable.parameters(), cfg)
    model, opt = acc.prepare(trainable, opt)  # the scheduler steps once per optimizer step (see autoencoder)

    def plain_denoiser() -> nn.Module:
        return acc.unwrap_model(model).denoiser

    trainer = StageTrainer(accelerator=acc, name="denoiser", folder=stage.folder, key=stage.key, cfg=cfg,
                           seed=run.seed("denoiser"), log=MetricsLog(run.layout.curves, acc, "denoiser"),
                           log_every=run.recipe.run.log_every, resume=run.resume)
    trainer.track("denoiser", model=model, optimizer=opt, scheduler=sched)
    ema = trainer.add_ema(plain_denoiser(), cfg.ema_decay) if cfg.ema_decay else None
    trainer.restore()
    run.carried["denoiser"] = trainer.carried
    latents = _Latents(run, autoencoder, stats, train_set, keep_images=keep_images)
    null_class = getattr(denoiser, "null_class", None)

    def step_fn(batch, step, control, noise) -> dict[str, float]:
        z_all, y_all, images_all = latents(batch, noise)
        y_all = drop_labels(y_all, cfg.class_dropout, null_class, noise) if conditional else None
        with torch.no_grad():
            features_all = teacher(images_all) if teacher is not None else None
        model.train()
        logs: dict[str, float] = {"lr": sched.get_last_lr()[0]}
        for z, y, features, images in trainer.micro_batches(model, z_all, y_all, features_all, images_all):
            with acc.autocast():
                loss, parts = denoiser_loss(model, trainable, objective, z, y, step=step, generator=noise,
                                            features=features, images=images)
            acc.backward(loss / cfg.grad_accumulation)
            logs.update(to_floats({"loss/total": loss, **{f"loss/{k}": v for k, v in parts.items()}}))
            trainer.guard.observe(logs)
        trainer.update(step, logs, parameters=model.parameters(), optimizer=opt, scheduler=sched,
                       clip=cfg.grad_clip, ema=ema, ema_source=plain_denoiser())
        return logs

    trainer.run(latents.data, step_fn, num_workers=0 if cfg.cache_latents else run.recipe.data.num_workers)
    return trainer.save_final(plain_denoiser(), ema)
