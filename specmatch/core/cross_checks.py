"""Phase 4 of recipe validation: checks that span tables, and every plugin's ``specmatch_validate_recipe``."""

from __future__ import annotations

import traceback
from typing import Any

from .errors import Problem
from .resolved import ResolvedRecipe
from .structure import join


def cross_check(resolved: ResolvedRecipe, registry: Any, *,
                check_files: bool = True) -> tuple[list[Problem], list[str]]:
    """Phase 4: checks that span tables, plus every plugin's ``specmatch_validate_recipe``."""
    from .facts_check import check_facts

    problems: list[Problem] = []
    warnings: list[str] = []
    recipe = resolved.recipe
    transforming = []
    for comp in resolved.regularizers():
        spec = comp.spec
        if "features" in spec.needs and recipe.alignment is None:
            problems.append(Problem(comp.path, f"{spec.name!r} needs teacher features, but the recipe has no "
                                               f"[alignment] table (see `specmatch components list --kind "
                                               f"alignment`)"))
        if spec.transforms_pair:
            transforming.append(spec.name)
    for comp in resolved.regularizers() + resolved.denoiser_regularizers():
        cfg = comp.config
        if cfg.end_step is not None and cfg.end_step <= cfg.start_step:
            problems.append(Problem(join(comp.path, "end_step"),
                                    f"expected end_step > start_step ({cfg.start_step}); got {cfg.end_step}"))
    if len(transforming) > 1:
        warnings.append(f"several regularizers transform the (latent, target) pair: {', '.join(transforming)}; "
                        f"they are applied in recipe order")
    if recipe.train.denoiser.class_conditional and recipe.denoiser is None:
        problems.append(Problem("train.denoiser.class_conditional", "set, but the recipe has no [denoiser]"))
    problems.extend(_check_denoiser_terms(resolved))
    problems.extend(check_facts(resolved, check_files=check_files))
    plugin_problems, plugin_warnings = _plugin_checks(resolved, registry)
    return problems + plugin_problems, warnings + plugin_warnings


def _plugin_checks(resolved: ResolvedRecipe, registry: Any) -> tuple[list[Problem], list[str]]:
    """Every plugin's ``specmatch_validate_recipe``, one plugin at a time: one that raises is marked broken
    (and not called again), and the others' checks still run. Its own components cannot be vouched for, so a
    recipe that uses them is refused; any other recipe only gets a warning."""
    problems: list[Problem] = []
    warnings: list[str] = []
    plugins = registry.plugins
    caller = plugins.manager.hook.specmatch_validate_recipe
    for impl in reversed(caller.get_hookimpls()):  # pluggy's call order: last registered first
        try:
            result = impl.function(**{arg: resolved for arg in impl.argnames})
            items = list(result or ())
        except Exception as exc:
            reason = f"hook specmatch_validate_recipe failed: {type(exc).__name__}: {exc}"
            plugins.mark_broken(impl.plugin_name, reason, traceback.format_exc())
            continue
        for item in items:
            if isinstance(item, Problem):
                problems.append(item)
            else:
                warnings.append(str(item))
    for record in plugins.broken:
        used = [c for c in resolved.components.values()
                if c.spec.provider is not None and c.spec.provider.plugin == record.name]
        for comp in used:
            problems.append(Problem(join(comp.path, "name"), f"{comp.kind} {comp.spec.name!r} comes from plugin "
                                                             f"{record.name}, which is broken: {record.reason}"))
        if not used and record.reason.startswith("hook specmatch_validate_recipe failed"):
            warnings.append(f"plugin {record.name} ({record.distribution} {record.version}) is broken: "
                            f"{record.reason}; its checks were skipped (this recipe uses none of its components)")
    return problems, warnings


def _check_denoiser_terms(resolved: ResolvedRecipe) -> list[Problem]:
    """Denoiser regularizers need a denoiser, the teacher and hidden states they declare, and one shared tap."""
    recipe = resolved.recipe
    problems: list[Problem] = []
    denoiser = resolved.components.get("denoiser")
    taps: dict[int, str] = {}
    for comp in resolved.denoiser_regularizers():
        spec, name = comp.spec, repr(comp.spec.name)
        if recipe.denoiser is None:
            problems.append(Problem(comp.path, f"{name} is a denoiser regularizer, but the recipe has no [denoiser]"))
            continue
        if "features" in spec.needs and recipe.alignment is None:
            problems.append(Problem(comp.path, f"{name} needs teacher features: add an [alignment] table (see "
                                               f"`specmatch components list --kind alignment`)"))
        if "hidden" in spec.needs:
            if denoiser is not None and not getattr(denoiser.spec, "alignable", False):
                problems.append(Problem(comp.path, f"{name} needs hidden states, but denoiser "
                                                   f"{denoiser.spec.name!r} offers none (its spec is not "
                                                   f"alignable)"))
            tap = getattr(comp.params, spec.tap_param or "", None)
            if isinstance(tap, int):
                taps.setdefault(tap, comp.path)
    if len(taps) > 1:
        where = ", ".join(f"{path} taps {tap}" for tap, path in taps.items())
        problems.append(Problem("denoiser_regularizers", f"the denoiser offers one tap per step; expected every "
                                                         f"term to read the same one; got {where}"))
    return problems
