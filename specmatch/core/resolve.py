"""Phases 2 and 3 of recipe validation: merged TOML data structured against the schema, every component
name resolved in the registry and its ``params`` structured against the component's own parameter class.
Every problem is collected; one :class:`RecipeError` lists them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import attrs

from .cross_checks import cross_check
from .errors import Problem, RecipeError, SpecmatchError, merge_problems
from .from_run import load_from_run
from .kinds import KIND_OF_TABLE, KINDS
from .recipe_paths import key_tuple, rebase_params
from .resolved import ResolvedComponent, ResolvedRecipe
from .schema import Recipe
from .spec_checks import check_params_defaults, lazy_reference_problems
from .structure import check_field, fill_defaults, join, resolve_types_deep, structure
from .toml_io import Origins


def _component_tables(tables: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(path, kind, config) of every component table that structured, in recipe order; defaults for omitted
    ones."""
    out = []
    for field in attrs.fields(Recipe):
        kind = KIND_OF_TABLE.get(field.name)
        if kind is None:
            continue
        table = kind.table
        value = tables.get(table, field.default if field.default is not attrs.NOTHING else None)
        if kind.array:
            out += [(join(table, i), kind.name, v) for i, v in enumerate(value or ()) if v is not None]
        elif value is not None:
            out.append((table, kind.name, value))
    return out


def _kind_defaults(tables: dict[str, Any], registry: Any) -> tuple[dict[str, Any], list[Problem]]:
    """Tables of a ``Kind.defaulted`` kind that omit ``name``, given the registry's declared default.

    The filled table is what the recipe would say had it named the default, so it hashes the same.
    """
    filled, problems = {}, []
    schema_defaults = {f.name: f.default for f in attrs.fields(Recipe)}
    for kind in KINDS.values():
        if not kind.defaulted:
            continue
        cfg = tables.get(kind.table, schema_defaults[kind.table])
        if cfg is None or cfg.name is not None:  # cfg None: the table did not structure (reported already)
            continue
        spec = registry.default(kind.name)
        if spec is None:
            problems.append(Problem(join(kind.table, "name"),
                                    f"no {kind.label} named, and no installed plugin declares a default one "
                                    f"(installed: {', '.join(registry.names(kind.name)) or 'none'})"))
            continue
        filled[kind.table] = attrs.evolve(cfg, name=spec.name)
    return filled, problems


def _structure_recipe(raw: dict[str, Any]) -> tuple[Recipe | None, dict[str, Any], list[Problem]]:
    """Structure the top-level tables one by one, so one bad table does not hide the others' problems.

    Returns the Recipe (None if any table is invalid), the tables that did structure, and the problems.
    """
    resolve_types_deep(Recipe)
    fields = {f.name: f for f in attrs.fields(Recipe)}
    array_tables = {k.table for k in KINDS.values() if k.array}
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for key in raw:
        if key not in fields:
            problems.append(Problem(key, f"unexpected key {key!r} (allowed: {', '.join(fields)})"))
    for name, field in fields.items():
        if name not in raw:
            if field.default is attrs.NOTHING:
                problems.append(Problem(name, f"required table [{name}] is missing"))
            continue
        if name in array_tables and isinstance(raw[name], dict):
            problems.append(Problem(name, f"expected an array of tables: write [[{name}]], not [{name}]"))
            continue
        if name in array_tables and isinstance(raw[name], list):  # element-wise, to keep the good ones
            item_cls = get_args(field.type)[0]
            items = []
            for i, item in enumerate(raw[name]):
                value, item_problems = structure(item, item_cls, join(name, i))
                problems += item_problems
                items.append(value)
            values[name] = tuple(items)
            continue
        data = raw[name]
        if attrs.has(type(field.default)) and isinstance(data, dict):  # e.g. [train] keeps train.denoiser's lr
            data = fill_defaults(field.default, data)
        value, field_problems = structure(data, field.type, name)
        if not field_problems:  # the field's own range/choice (e.g. version), not checked inside structure
            field_problems = check_field(field, value, name)
        problems += field_problems
        if not field_problems:
            values[name] = value
    recipe = None
    if not problems:
        recipe = Recipe(**values)
    return recipe, values, problems


#: Why ``[plugins] files`` is refused without the opt-in (a recipe from someone else must not run code).
RECIPE_PLUGINS_REFUSED = (
    "the recipe names local plugin files, which run Python code when loaded; refused unless you trust this "
    "recipe: pass --allow-recipe-plugins (before the command, e.g. `specmatch --allow-recipe-plugins "
    "validate ...`), or load the file yourself with --plugin-file")


def _check_run_name(name: str) -> list[Problem]:
    """``run.name`` is the folder ``runs/<name>``: one plain folder name, never a path out of ``runs/``."""
    bad = [c for c in ("/", "\\", ":") if c in name]
    if name.strip() in ("", ".", "..") or bad or any(ord(c) < 32 for c in name) or name.startswith("~"):
        why = (f"it contains {', '.join(map(repr, bad))}" if bad else
               "it contains a control character" if any(ord(c) < 32 for c in name) else
               "it starts with '~'" if name.startswith("~") else "it names no folder of its own")
        return [Problem("run.name", f"expected one folder name for runs/<name> (any characters except '/', "
                                    f"'\\', ':' and control characters; not '', '.', '..' or a leading '~'); got "
                                    f"{name!r}: {why}. Use --output-dir to write elsewhere")]
    return []


def resolve(raw: dict[str, Any], source: Path, registry: Any, *, origins: Origins | None = None,
            allow_recipe_plugins: bool = False, check_files: bool = True) -> ResolvedRecipe:
    """Phases 2-4 on merged TOML data; raises :class:`RecipeError` with every problem.

    ``origins`` (from :func:`load_raw_with_origins`) rebases component paths that a base recipe set;
    ``allow_recipe_plugins`` accepts ``[plugins] files`` (their code runs); ``check_files`` checks that
    every file the components will read exists.
    """
    label = str(source)
    recipe_dir = source.parent.resolve()
    recipe, tables, problems = _structure_recipe(raw)

    from_run_data = None
    ae_cfg = tables.get("autoencoder")
    if ae_cfg is not None:
        from_run_data, run_problems = load_from_run(ae_cfg, source.parent)
        problems += run_problems
        if from_run_data is not None:  # the earlier run's autoencoder table stands in for this one's
            ae = from_run_data.get("autoencoder", {})
            tables["autoencoder"] = attrs.evolve(ae_cfg, name=ae.get("name", ""), params=ae.get("params", {}))
            if recipe is not None:
                recipe = attrs.evolve(recipe, autoencoder=tables["autoencoder"])

    defaults, default_problems = _kind_defaults(tables, registry)
    problems += default_problems
    tables.update(defaults)
    if recipe is not None and defaults:
        recipe = attrs.evolve(recipe, **defaults)

    plugins_cfg = tables.get("plugins")
    if plugins_cfg is not None and plugins_cfg.files and not allow_recipe_plugins:
        problems.append(Problem("plugins.files", RECIPE_PLUGINS_REFUSED))
    for i, file in enumerate(plugins_cfg.files if plugins_cfg is not None else ()):
        if not (source.parent / Path(file).expanduser()).is_file():
            problems.append(Problem(f"plugins.files[{i}]", f"file {source.parent / file} does not exist"))
    run_cfg = tables.get("run")
    if run_cfg is not None:
        problems += _check_run_name(run_cfg.name)

    components: dict[str, ResolvedComponent] = {}
    for path, kind, cfg in _component_tables(tables):
        if not cfg.name:
            if path != "autoencoder":  # the autoencoder's was reported above (neither name nor from_run)
                problems.append(Problem(join(path, "name"), f"expected a registry name; got '' (installed: "
                                                            f"{', '.join(registry.names(kind)) or 'none'})"))
            continue
        spec = registry.find(kind, cfg.name)
        if spec is None:
            problems.append(Problem(join(path, "name"), registry.unknown_message(kind, cfg.name)))
            continue
        lazy_problems = lazy_reference_problems(spec)
        if lazy_problems:  # a typo in the plugin: found now, not when the stage that builds it starts
            problems += [Problem(join(path, "name"), msg) for msg in lazy_problems]
            continue
        try:
            params_cls = spec.params_class()
            if isinstance(spec.params, str):  # an object params class was checked at registration
                check_params_defaults(spec, params_cls)
        except SpecmatchError as exc:
            problems.append(Problem(join(path, "params"), str(exc)))
            continue
        if params_cls is None:
            params = None
            if cfg.params:
                problems.append(Problem(join(path, "params"), f"{spec.name!r} takes no parameters"))
        else:
            table = rebase_params(cfg.params, params_cls, key_tuple(path), origins or {}, recipe_dir)
            params, param_problems = structure(table, params_cls, join(path, "params"))
            problems += param_problems
        components[path] = ResolvedComponent(path=path, kind=kind, config=cfg, spec=spec, params=params,
                                              source=label)

    if problems or recipe is None:
        raise RecipeError(label, merge_problems(problems))
    resolved = ResolvedRecipe(source=source, recipe=recipe, components=components,
                              from_run_recipe=from_run_data)
    cross, warnings = cross_check(resolved, registry, check_files=check_files)
    if cross:
        raise RecipeError(label, merge_problems(cross))
    return attrs.evolve(resolved, warnings=tuple(warnings))
