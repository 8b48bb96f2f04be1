"""The plan of a run: which stages a recipe asks for, where their outputs go, and what each depends on.

Each stage's key hashes exactly the recipe tables it depends on, and the code fingerprint of every component
those tables name (:mod:`specmatch.core.fingerprint`: spec version, plugin version, and the source of local
and editable plugins), so a changed recipe or plugin invalidates that stage and everything after it, and an
unchanged stage is reused on rerun.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from .fingerprint import components_hash
from .init_source import InitSource, init_source
from .layout import RunLayout
from .recipe import ResolvedRecipe

STAGES = ("autoencoder", "latent_stats", "denoiser", "evaluation")

#: recipe tables each stage's key hashes (besides the key of the stage before it, and its own training table
#: ``train.<stage>``); ``alignment`` counts for the stage whose loss terms use the teacher
_DEPENDS = {
    "autoencoder": ("data", "autoencoder", "regularizers", "perceptual", "adversarial", "alignment", "run"),
    "latent_stats": ("latent_stats",),
    "denoiser": ("denoiser", "objective", "denoiser_regularizers"),
    "evaluation": ("sampler", "evaluation"),
}

#: train.denoiser settings that change where the work happens, not its result
_NOT_IN_KEY = ("latent_cache", "latent_cache_ram_fraction")


@attrs.frozen(kw_only=True)
class Stage:
    name: str
    key: str  # hash of everything this stage depends on (including earlier stages' keys)
    folder: Path
    description: str
    reused_from: Path | None = None  # autoencoder/latent stats taken from another run
    init: InitSource | None = None  # the weights the autoencoder stage starts from (autoencoder.init)


@attrs.frozen(kw_only=True)
class Plan:
    output_dir: Path
    stages: tuple[Stage, ...]

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def render(self) -> str:
        lines = [f"# plan: outputs in {self.output_dir}"]
        for i, s in enumerate(self.stages, 1):
            extra = f" (reused from {s.reused_from})" if s.reused_from else ""
            lines.append(f"#  {i}. {s.name:<13} {s.description}{extra}  [key {s.key}]")
        return "\n".join(lines)


def make_plan(resolved: ResolvedRecipe, output_dir: Path) -> Plan:
    r = resolved.recipe
    stages = []
    key = ""
    ae_from = (resolved.recipe_dir / r.autoencoder.from_run) if r.autoencoder.from_run else None
    ae_train = r.train.autoencoder
    regs = ", ".join(f"{c.name}={c.weight:g}" for c in r.regularizers) or "none"
    # a teacher that only the denoiser's terms use (REPA) does not touch the autoencoder
    ae_key = resolved.section_hash(*_DEPENDS["autoencoder"],
                                   unused=() if resolved.autoencoder_uses_teacher() else ("alignment",))
    import hashlib
    import json

    def h(*parts: str) -> str:
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]

    # the autoencoder stage depends on its own training table only, not the denoiser's
    ae_table = resolved.to_dict()["train"]["autoencoder"]
    ae_paths = ["data", "autoencoder", *(c.path for c in resolved.regularizers()), "perceptual", "adversarial"]
    if resolved.autoencoder_uses_teacher():
        ae_paths.append("alignment")
    key = h(ae_key, json.dumps(ae_table, sort_keys=True), components_hash(resolved, ae_paths))
    init = init_source(r.autoencoder.init, resolved.recipe_dir) if ae_from is None else None
    if init is not None:  # the file's content, not only its path: other weights under the same name retrain
        key = h(key, "init", init.sha256)
    source = RunLayout(ae_from) if ae_from is not None else None
    if source is not None:  # where it lives and which training it holds: a retrained source invalidates us
        key = h("from_run", str(ae_from.resolve()), source.completed_key("autoencoder"))
    layout = RunLayout(output_dir)
    if init is not None:
        ae_what = f"fine-tune {r.autoencoder.name} from {init.file} for {ae_train.steps} steps"
    else:
        ae_what = f"train {r.autoencoder.name} for {ae_train.steps} steps"
    stages.append(Stage(name="autoencoder", key=key, folder=layout.stage_folder("autoencoder"), reused_from=ae_from,
                        init=init,
                        description=(f"{ae_what} "
                                     f"(batch {ae_train.batch_size}; regularizers: {regs})")
                        if ae_from is None else f"{r.autoencoder.name} trained in another run"))
    key = h(key, resolved.section_hash(*_DEPENDS["latent_stats"]))
    stages.append(Stage(name="latent_stats", key=key if source is None
                        else h("from_run", str(ae_from), source.completed_key("latent_stats")),
                        folder=layout.stage_folder("latent_stats"), reused_from=ae_from,
                        description=f"{r.latent_stats.mode} latent mean/std over {r.latent_stats.images} images"
                                    + (" (+flips)" if r.latent_stats.flips else "")))
    if r.denoiser is not None:
        dn = r.train.denoiser
        den_table = resolved.to_dict()["train"]["denoiser"]
        for where in _NOT_IN_KEY:  # where the latent cache lives changes no latent, so no retraining
            den_table.pop(where, None)
        den_tables = _DEPENDS["denoiser"]
        den_what = f"train {r.denoiser.name} with {r.objective.name} for {dn.steps} steps (batch {dn.batch_size})"
        if r.denoiser_regularizers:
            den_what += "; terms: " + ", ".join(f"{c.name}={c.weight:g}" for c in r.denoiser_regularizers)
        if resolved.denoiser_uses_teacher():
            den_tables += ("alignment",)
            den_what += f" (teacher {r.alignment.name})"
        den_paths = ["denoiser", "objective", *(c.path for c in resolved.denoiser_regularizers())]
        if resolved.denoiser_uses_teacher():
            den_paths.append("alignment")
        key = h(key, resolved.section_hash(*den_tables), json.dumps(den_table, sort_keys=True),
                components_hash(resolved, den_paths))
        stages.append(Stage(name="denoiser", key=key, folder=layout.stage_folder("denoiser"),
                            description=den_what))
    ev = r.evaluation
    key = h(key, resolved.section_hash(*_DEPENDS["evaluation"]), components_hash(resolved, ["sampler"]))
    what = f"PSNR/SSIM on {ev.reconstruction_images} held-out images"
    if r.denoiser is not None:
        what += f"; {ev.num_samples} samples with {r.sampler.name} -> FID/KID (N={ev.num_samples})"
    stages.append(Stage(name="evaluation", key=key, folder=layout.stage_folder("evaluation"), description=what))
    return Plan(output_dir=output_dir, stages=tuple(stages))
