"""Recipes: TOML files in, one validated :class:`ResolvedRecipe` out, or one :class:`RecipeError` listing
every problem. Nothing is built and torch is not imported. This module composes the phases:

1. **syntax**: TOML parsing with line and column, ``extends`` chains (:mod:`.toml_io`), ``-o key.path=<TOML
   literal>`` overrides (:mod:`.overrides`), relative paths rebased to the leaf recipe (:mod:`.recipe_paths`);
2. **shape** and 3. **resolution** (:mod:`.resolve`): the tables against :mod:`.schema`, every component
   ``name`` against the registry and its ``params`` against the component's own parameter class;
4. **cross-checks** (:mod:`.cross_checks`, :mod:`.facts_check`) and each plugin's ``specmatch_validate_recipe``.

The result is a :class:`~specmatch.core.resolved.ResolvedRecipe`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import Problem, RecipeError, merge_problems
from .overrides import apply_overrides, parse_override
from .recipe_paths import rebase_schema_paths
from .resolve import RECIPE_PLUGINS_REFUSED, resolve
from .resolved import ResolvedComponent, ResolvedRecipe
from .toml_io import Origins, read_toml, with_extends

__all__ = ["RECIPE_PLUGINS_REFUSED", "ResolvedComponent", "ResolvedRecipe", "is_base_recipe",
           "load_raw_with_origins", "load_recipe", "parse_override", "plugin_files_of", "resolve"]


def load_raw_with_origins(path: str | Path, overrides: Iterable[str] = ()
                          ) -> tuple[dict[str, Any] | None, Origins, list[Problem]]:
    """Phase 1: the merged, overridden TOML data of a recipe, and the folder of the file each value came
    from (``-o`` values: the recipe's).

    Schema paths (``plugins.files``, ``autoencoder.from_run``, ...) are rebased here; component params that
    are paths are rebased in :func:`resolve`, which knows their parameter classes.
    """
    path = Path(path)
    data, problems = read_toml(path)
    if data is None:
        return None, {}, problems
    leaf = path.resolve()
    data, origins, problems = with_extends(leaf, data, (leaf,))
    if problems:  # without its base the recipe is incomplete: checking it would report spurious problems
        return None, {}, problems
    origins, problems = apply_overrides(data, origins, overrides, leaf.parent)
    rebase_schema_paths(data, origins, leaf.parent)
    return data, origins, problems


def is_base_recipe(relative_path: Path) -> bool:
    """Shared bases (``base*.toml``, ``_base*.toml`` or anything in such a folder) are extended, never run."""
    return any(part.startswith(("base", "_base")) for part in Path(relative_path).parts)


def plugin_files_of(raw: dict[str, Any] | None, source: Path) -> list[Path]:
    """Local plugin files a recipe asks for, resolved against the recipe's folder (``raw`` from
    :func:`load_raw_with_origins`, where files a base lists are already relative to the leaf's folder)."""
    files = ((raw or {}).get("plugins") or {}).get("files") or []
    if not isinstance(files, list):
        return []
    return [(source.parent / f).expanduser() for f in files if isinstance(f, str)]


def load_recipe(path: str | Path, overrides: Iterable[str] = (), *, registry: Any = None,
                registry_for: Callable[[list[Path]], Any] | None = None,
                plugin_files: Iterable[str | Path] = (), disabled: Iterable[str] = (),
                allow_recipe_plugins: bool | None = None, check_files: bool = True) -> ResolvedRecipe:
    """Read, merge, override and validate a recipe. Raises :class:`RecipeError` listing every problem.

    Without a ``registry``, ``registry_for(recipe_plugin_files)`` builds one once the recipe is read (the
    file is parsed once); by default plugins come from the session (:mod:`specmatch.core.session`: the
    command line's ``--plugin-file`` and ``--disable-plugin``) plus ``plugin_files`` and ``disabled``. The
    recipe's own ``[plugins] files`` run code, so they are passed on only when ``allow_recipe_plugins`` is
    true (``None``: the session's setting, ``--allow-recipe-plugins``); otherwise the recipe is refused
    before any of its files is imported.
    """
    from .session import get_registry, recipe_plugins_allowed

    source = Path(path)
    raw, origins, problems = load_raw_with_origins(source, overrides)
    if raw is None:
        raise RecipeError(str(source), problems)
    allowed = recipe_plugins_allowed() if allow_recipe_plugins is None else allow_recipe_plugins
    if registry is None:
        recipe_files = plugin_files_of(raw, source) if allowed else []
        if registry_for is None:
            registry = get_registry(plugin_files=[*plugin_files, *recipe_files], disabled=disabled)
        else:
            registry = registry_for(recipe_files)
    try:
        resolved = resolve(raw, source, registry, origins=origins, allow_recipe_plugins=allowed,
                           check_files=check_files)
    except RecipeError as exc:
        raise RecipeError(str(source), merge_problems(problems, exc.problems)) from None
    if problems:
        raise RecipeError(str(source), problems)
    return resolved
