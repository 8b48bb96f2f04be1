"""Cross-checks over component facts: what a run would refuse (often hours in), refused by ``validate``.

Each component's spec may declare ``facts(params) -> Facts`` (:class:`specmatch.core.specs.Facts`); the
checks here are generic over those facts and never name a component, so a third-party component gets the
same checks as a built-in one by declaring its facts. Nothing here imports torch.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

import attrs

from .errors import ParamError, Problem
from .init_source import resolve_path
from .specs import BuildContext, Facts, default_adaptive_layer
from .structure import join

if TYPE_CHECKING:  # pragma: no cover
    from .recipe import ResolvedComponent, ResolvedRecipe

#: run.trackers name -> the module it needs (as the engine's accelerate set-up does).
TRACKER_MODULES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "aim": "aim"}


def param_path(comp: "ResolvedComponent", param: str) -> str:
    """Key path of one of a component's params (``""``: the params table). A component chosen by a list of
    names (``Kind.named_in``, e.g. ``evaluation.metrics``) keeps its params in ``<table>.<kind>_params.<name>``."""
    from .kinds import KINDS

    kind = KINDS.get(comp.kind)
    if kind is not None and kind.named_in and comp.path.startswith(kind.named_in + "["):
        table = join(join(kind.named_in.split(".")[0], f"{kind.name}_params"), comp.spec.name)
    else:
        table = join(comp.path, "params")
    return table + (f".{param}" if param and not param.startswith("[") else param)


def _facts(resolved: "ResolvedRecipe") -> tuple[dict[str, Facts], list[Problem]]:
    facts, problems = {}, []
    for path, comp in resolved.components.items():
        try:
            facts[path] = comp.spec.facts_for(comp.params, BuildContext(recipe_dir=resolved.recipe_dir))
        except ParamError as exc:
            problems.append(Problem(param_path(comp, exc.param), exc.message))
    return facts, problems


def _latent_shape(resolved: "ResolvedRecipe", facts: dict[str, Facts]) -> tuple[list[Problem], Any]:
    """(problems, (C, H, W) or None): the autoencoder's latent for the dataset's images."""
    ae, data = facts.get("autoencoder"), facts.get("data")
    if ae is None or data is None or data.resolution is None or not ae.downsample_factor:
        return [], None
    f, r = ae.downsample_factor, data.resolution
    if r % f:
        comp = resolved.components["data"]
        has_key = comp.params is not None and "resolution" in attrs.fields_dict(type(comp.params))
        where = param_path(comp, "resolution" if has_key else "")
        return [Problem(where, f"expected a multiple of the autoencoder's downsampling factor {f}; got {r}")], None
    if ae.latent_channels is None:
        return [], None
    return [], (ae.latent_channels, r // f, r // f)


def _check_latent(resolved: "ResolvedRecipe", facts: dict[str, Facts], shape: tuple[int, int, int]) -> list[Problem]:
    problems = []
    for path, fact in facts.items():
        if fact.check_latent is None:
            continue
        comp = resolved.components[path]
        try:
            fact.check_latent(shape)
        except ParamError as exc:
            problems.append(Problem(param_path(comp, exc.param), f"{exc.message} (latent {shape[0]}x{shape[1]}x"
                                                                 f"{shape[2]} from the autoencoder and data)"))
    return problems


def _check_adaptive(resolved: "ResolvedRecipe") -> list[Problem]:
    """An adaptive factor differentiates the term with respect to a reference layer: the term must use it."""
    problems = []
    for comp in resolved.regularizers():
        adaptive, layers = comp.config.adaptive, comp.spec.adaptive_layers
        if adaptive is None or layers is None:
            continue
        layer = adaptive.layer or default_adaptive_layer(comp.spec.needs)
        where = join(comp.path, "adaptive")
        if not layers:
            problems.append(Problem(where, f"{comp.spec.name!r} has no loss term of its own (it transforms the "
                                           f"reconstruction pair), so it cannot have an adaptive weight; remove "
                                           f"adaptive"))
        elif layer not in layers:
            default = "" if adaptive.layer else " (the default for terms without teacher features)"
            problems.append(Problem(join(where, "layer"), f"the {comp.spec.name!r} term does not depend on "
                                                          f"{layer}{default}, so its adaptive factor cannot be "
                                                          f"computed; expected one of "
                                                          f"{', '.join(map(repr, sorted(layers)))}"))
    return problems


def _check_denoiser(resolved: "ResolvedRecipe", facts: dict[str, Facts]) -> list[Problem]:
    problems = []
    recipe = resolved.recipe
    den = facts.get("denoiser")
    for comp in resolved.denoiser_regularizers():
        tap = getattr(comp.params, comp.spec.tap_param or "", None)
        if den is not None and den.depth is not None and isinstance(tap, int) and tap > den.depth:
            problems.append(Problem(param_path(comp, comp.spec.tap_param),
                                    f"the denoiser has {den.depth} alignment taps; expected a tap index in "
                                    f"1..{den.depth}, got {tap}"))
    data = facts.get("data")
    if recipe.denoiser is not None and recipe.train.denoiser.class_conditional and data is not None \
            and data.labelled is False:
        name = resolved.components["data"].spec.name
        problems.append(Problem("train.denoiser.class_conditional",
                                f"set, but dataset {name!r} has no class labels with these params; use a "
                                f"labelled dataset (e.g. image-folder with class_from_subfolder = true) or "
                                f"leave it false"))
    sampler = facts.get("sampler")
    if (recipe.denoiser is not None and sampler is not None and sampler.needs_labels
            and not recipe.train.denoiser.class_conditional):
        comp = resolved.components["sampler"]
        problems.append(Problem(param_path(comp, sampler.needs_labels),
                                "needs class labels (classifier-free guidance), but the denoiser is "
                                "unconditional; set train.denoiser.class_conditional = true with a labelled "
                                "dataset, or leave it at its default"))
    return problems


def _check_files(resolved: "ResolvedRecipe", facts: dict[str, Facts]) -> list[Problem]:
    """Every file a component will read, and the FID network, exist now rather than after training."""
    problems = []
    for path, fact in facts.items():
        comp = resolved.components[path]
        for need in fact.files:
            if not need.path or "\0" in need.path:
                continue
            target = resolve_path(need.path, resolved.recipe_dir)
            ok = target.is_dir() if need.folder else target.is_file()
            if not ok:
                kind = "folder" if need.folder else "file"
                problems.append(Problem(param_path(comp, need.param), f"{need.what}: {kind} {target} does not "
                                                                      f"exist"))
    for key in ("feature_network", "reference"):
        value = getattr(resolved.recipe.evaluation, key)
        if value and "\0" not in value and not resolve_path(value, resolved.recipe_dir).is_file():
            problems.append(Problem(f"evaluation.{key}",
                                    f"file {resolve_path(value, resolved.recipe_dir)} does not exist"))
    return problems


def _check_trackers(resolved: "ResolvedRecipe") -> list[Problem]:
    problems = []
    for i, name in enumerate(resolved.recipe.run.trackers):
        module = TRACKER_MODULES.get(name)
        if module is not None and importlib.util.find_spec(module) is None:  # finds, does not import
            problems.append(Problem(f"run.trackers[{i}]", f"{name!r} needs the package {module!r}, which is not "
                                                          f"installed (pip install {module})"))
    return problems


def check_facts(resolved: "ResolvedRecipe", *, check_files: bool = True) -> list[Problem]:
    """Every problem the components' facts reveal (see the module docstring)."""
    facts, problems = _facts(resolved)
    shape_problems, shape = _latent_shape(resolved, facts)
    problems += shape_problems
    if shape is not None:
        problems += _check_latent(resolved, facts, shape)
    problems += _check_adaptive(resolved)
    problems += _check_denoiser(resolved, facts)
    problems += _check_trackers(resolved)
    if check_files:
        problems += _check_files(resolved, facts)
    return problems
