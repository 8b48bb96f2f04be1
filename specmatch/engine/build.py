"""Building components from a resolved recipe, in the engine's build order:
dataset, autoencoder, alignment target, regularizers, (then, per stage) perceptual, discriminator,
denoiser, objective, sampler. Factories run on the CPU in float32; the engine moves what it trains."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from specmatch.core.errors import ParamError, Problem, RecipeError, SpecmatchError
from specmatch.core.recipe import ResolvedComponent, ResolvedRecipe
from specmatch.core.spec_checks import check_pair_transform, who
from specmatch.core.specs import BuildContext

log = logging.getLogger(__name__)


class ComponentBuildError(SpecmatchError):
    """A factory raised while building a component from the recipe's values (exit 2, like a bad recipe)."""

    exit_code = 2


def build(comp: ResolvedComponent, ctx: BuildContext) -> Any:
    """Run the component's factory and check the result against its spec.

    A :class:`ParamError` (a value the user chose) becomes a :class:`RecipeError` at
    ``<table>.params.<param>``; other specmatch errors pass through. A ``ValueError`` (Python's "right type,
    unusable value") becomes a :class:`ComponentBuildError` naming the component, its plugin, the
    ``<table>.params`` key path and the message (exit 2, traceback in the run log). Anything else is a bug in
    the factory and keeps its traceback, with the component named.
    """
    from specmatch.core.facts_check import param_path

    factory = comp.spec.factory_callable()
    try:
        built = factory(comp.params, ctx)
    except ParamError as exc:
        raise RecipeError(comp.source or "recipe", [Problem(param_path(comp, exc.param), exc.message)]) from None
    except SpecmatchError:
        raise
    except ValueError as exc:
        log.debug(f"factory of {comp.path} raised", exc_info=exc)  # the run log keeps the traceback
        where = f"{comp.source}: " if comp.source else ""
        raise ComponentBuildError(
            f"{where}{param_path(comp, '')}: building {who(comp.spec)} failed: {type(exc).__name__}: {exc} "
            f"(a value in this table; if not, a bug in the plugin's factory: the traceback is in the run log)"
        ) from exc
    except Exception as exc:
        raise RuntimeError(f"building {comp.path} ({who(comp.spec)}) failed: {type(exc).__name__}: {exc}") from exc
    _check_built(comp, built)
    return built


def _check_built(comp: ResolvedComponent, built: Any) -> None:
    """What only the built object can show: a lazy factory's class, and the denoiser's output checks."""
    if comp.kind == "regularizer":
        check_pair_transform(comp.spec, built)
    elif comp.kind == "denoiser":
        from .contracts import install_denoiser_check

        install_denoiser_check(built, comp.spec)


def context(resolved: ResolvedRecipe, output_dir: Path, upstream: dict[str, Any]) -> BuildContext:
    return BuildContext(recipe_dir=resolved.recipe_dir, output_dir=output_dir, upstream=upstream,
                        seed=resolved.recipe.run.seed)


def autoencoder_component(resolved: ResolvedRecipe) -> ResolvedComponent:
    comp = resolved.component("autoencoder")
    assert comp is not None
    return comp
