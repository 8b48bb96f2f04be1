"""Phase 4 of recipe validation: checks that span tables, and every plugin's ``specmatch_validate_recipe``."""

from __future__ import annotations

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
        cfg = comp.config
        if cfg.end_step is not None and cfg.end_step <= cfg.start_step:
            problems.append(Problem(join(comp.path, "end_step"),
                                    f"expected end_step > start_step ({cfg.start_step}); got {cfg.end_step}"))
    if len(transforming) > 1:
        warnings.append(f"several regularizers transform the (latent, target) pair: {', '.join(transforming)}; "
                        f"they are applied in recipe order")
    if recipe.train.denoiser.class_conditional and recipe.denoiser is None:
        problems.append(Problem("train.denoiser.class_conditional", "set, but the recipe has no [denoiser]"))
    problems.extend(_check_repa(resolved))
    problems.extend(_check_evaluation(resolved, check_files))
    problems.extend(check_facts(resolved, check_files=check_files))
    for result in registry.plugins.manager.hook.specmatch_validate_recipe(recipe=resolved):
        for item in result or ():
            if isinstance(item, Problem):
                problems.append(item)
            else:
                warnings.append(str(item))
    return problems, warnings


def _check_evaluation(resolved: ResolvedRecipe, check_files: bool) -> list[Problem]:
    """A known protocol whose pinned values the recipe does not contradict (metric names resolve earlier), and
    a reference file holding the ADM keys the run reads."""
    from specmatch.metrics.protocols import protocol_problems

    from .schema import EvaluationConfig

    evaluation = resolved.recipe.evaluation
    problems = [Problem(join("evaluation", key), message)
                for key, message in protocol_problems(evaluation, EvaluationConfig())]
    path = resolved.recipe_dir / evaluation.reference if evaluation.reference else None
    if check_files and path is not None and path.is_file():
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in ("mu", "sigma") if k not in data.files]
        except (OSError, ValueError) as exc:
            missing = None
            problems.append(Problem("evaluation.reference", f"{path} is not an .npz file ({exc})"))
        if missing:
            problems.append(Problem("evaluation.reference", f"{path} has no {' or '.join(missing)} array (the ADM "
                                                            f"layout: mu (d,) and sigma (d, d); see `specmatch "
                                                            f"stats`)"))
    return problems


def _check_repa(resolved: ResolvedRecipe) -> list[Problem]:
    """``[repa]`` needs a denoiser that exposes hidden states, a teacher, and odd DoG kernels."""
    repa = resolved.recipe.repa
    if repa is None:
        return []
    problems = []
    denoiser = resolved.component("denoiser")
    if denoiser is None:
        problems.append(Problem("repa", "set, but the recipe has no [denoiser] to align"))
    elif not denoiser.spec.alignable:
        problems.append(Problem("repa", f"denoiser {denoiser.spec.name!r} does not expose hidden states "
                                        f"(its spec is not alignable)"))
    if resolved.recipe.alignment is None:
        problems.append(Problem("repa", "needs a teacher: add an [alignment] table (see `specmatch components "
                                        "list --kind alignment`)"))
    if repa.target_filter == "dog":
        for key in ("dog_kernel_low", "dog_kernel_high"):
            if getattr(repa, key) % 2 == 0:
                problems.append(Problem(f"repa.{key}", f"expected an odd kernel size; got {getattr(repa, key)}"))
        if repa.dog_sigma_high <= repa.dog_sigma_low:
            problems.append(Problem("repa.dog_sigma_high", f"expected more than dog_sigma_low "
                                                           f"({repa.dog_sigma_low}) for a band-pass; got "
                                                           f"{repa.dog_sigma_high}"))
    return problems
