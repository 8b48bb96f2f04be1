"""Building components from a resolved recipe, in the engine's build order:
dataset, autoencoder, alignment target, regularizers, (then, per stage) perceptual, discriminator,
denoiser, objective, sampler. Factories run on the CPU in float32; the engine moves what it trains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from specmatch.core.errors import ParamError, Problem, RecipeError, SpecmatchError
from specmatch.core.recipe import ResolvedComponent, ResolvedRecipe
from specmatch.core.specs import BuildContext


def build(comp: ResolvedComponent, ctx: BuildContext) -> Any:
    """Run the component's factory. A :class:`ParamError` (a value the user chose) becomes a
    :class:`RecipeError` at ``<table>.params.<param>`` (exit 2, no traceback); other specmatch errors pass
    through; anything else is a bug in the factory and keeps its traceback, with the component named."""
    factory = comp.spec.factory_callable()
    try:
        return factory(comp.params, ctx)
    except ParamError as exc:
        from specmatch.core.facts_check import param_path

        raise RecipeError(comp.source or "recipe", [Problem(param_path(comp, exc.param), exc.message)]) from None
    except SpecmatchError:
        raise
    except Exception as exc:
        raise RuntimeError(f"building {comp.path} ({comp.kind} {comp.spec.name!r} from {comp.spec.provider}) "
                           f"failed: {type(exc).__name__}: {exc}") from exc


def context(resolved: ResolvedRecipe, output_dir: Path, upstream: dict[str, Any]) -> BuildContext:
    return BuildContext(recipe_dir=resolved.recipe_dir, output_dir=output_dir, upstream=upstream,
                        seed=resolved.recipe.run.seed)


def autoencoder_component(resolved: ResolvedRecipe) -> ResolvedComponent:
    comp = resolved.component("autoencoder")
    assert comp is not None
    return comp
