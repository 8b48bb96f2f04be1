"""Recipes: TOML files in, one validated :class:`ResolvedRecipe` out, or one :class:`RecipeError` listing
every problem. Nothing is built and torch is not imported.

Phases (each collects problems; later phases run on what the earlier ones could read):

1. **syntax**: TOML parsing with line and column; ``extends`` chains (paths relative to the recipe; tables
   merge deeply, arrays replace); ``-o key.path=<TOML literal>`` overrides;
2. **shape**: the tables against :mod:`specmatch.core.schema` (unknown keys refused, strict types, ranges);
3. **resolution**: every component ``name`` against the registry (did-you-mean, installed names) and its
   ``params`` against the component's own parameter class;
4. **cross-checks**: regularizer ``needs``, pair transforms, and each plugin's ``specmatch_validate_recipe``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence, get_args, get_origin

import attrs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import Problem, RecipeError, SpecmatchError, merge_problems
from .layout import MODEL_FILE, RunLayout
from .kinds import KIND_OF_TABLE, KINDS
from .schema import Recipe
from .specs import ComponentSpec
from .structure import join, structure, unstructure

MAX_EXTENDS_DEPTH = 8
#: Deepest nesting of arrays and tables accepted; deeper data is refused before anything recurses over it.
MAX_NESTING = 32

#: key path (tuple of keys and indexes) -> folder of the recipe file that set it
Origins = dict


@attrs.frozen(kw_only=True)
class ResolvedComponent:
    """One component table of a recipe, with its spec and structured params."""

    path: str  # e.g. "regularizers[1]"
    kind: str
    config: Any  # the table's schema record (RegularizerConfig, ComponentConfig, ...)
    spec: ComponentSpec
    params: Any  # instance of the spec's params class (or None)
    source: str = ""  # the recipe file, for errors raised while building


@attrs.frozen(kw_only=True)
class ResolvedRecipe:
    source: Path
    recipe: Recipe
    components: dict[str, ResolvedComponent]
    warnings: tuple[str, ...] = ()
    from_run_recipe: dict[str, Any] | None = None  # the resolved recipe of autoencoder.from_run

    @property
    def recipe_dir(self) -> Path:
        return self.source.parent

    def component(self, path: str) -> ResolvedComponent | None:
        return self.components.get(path)

    def regularizers(self) -> list[ResolvedComponent]:
        paths = (f"regularizers[{i}]" for i in range(len(self.recipe.regularizers)))
        return [self.components[p] for p in paths if p in self.components]

    def autoencoder_uses_teacher(self) -> bool:
        """True when a regularizer aligns the latent with the ``[alignment]`` teacher (VA-VAE's VF loss)."""
        return any("features" in comp.spec.needs for comp in self.regularizers())

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved recipe: every default filled in, every params table complete."""
        data = unstructure(self.recipe)
        for path, comp in self.components.items():
            table = _get_path(data, path)
            if table is None:
                continue
            table["name"] = comp.spec.name  # canonical: an alias ('vf') and its name ('vavae') hash alike
            if comp.params is not None:
                table["params"] = unstructure(comp.params)
        data.pop("plugins", None) if not self.recipe.plugins.files else None
        return data

    def section_hash(self, *keys: str, unused: tuple[str, ...] = ()) -> str:
        """A stable hash of some top-level tables (``()`` = the whole recipe): what a stage depends on.

        Tables in ``unused`` hash as if absent (e.g. a teacher that only the denoiser uses).
        """
        data = self.to_dict()
        part = data if not keys else {k: None if k in unused else data.get(k) for k in keys}
        text = json.dumps(part, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_toml(self, header: str = "") -> str:
        import tomli_w

        return header + tomli_w.dumps(self.to_dict())


# -- phase 1: syntax, extends, overrides ---------------------------------------------------------------

def nesting_depth(value: Any) -> int:
    """How deeply arrays and tables nest in ``value`` (iteratively: deep data must not exhaust the stack)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_NESTING:
            break
        if isinstance(node, dict):
            stack += [(v, depth + 1) for v in node.values()]
        elif isinstance(node, list):
            stack += [(v, depth + 1) for v in node]
    return deepest


def parse_toml_text(text: str) -> dict[str, Any]:
    """``tomllib.loads`` that accepts a UTF-8 byte-order mark and refuses nesting deeper than MAX_NESTING.

    Raises ``ValueError`` with a user-facing message (``TOMLDecodeError`` is one).
    """
    try:
        data = tomllib.loads(text.removeprefix("\ufeff"))
    except RecursionError:
        raise ValueError(f"arrays or tables nest too deeply (more than {MAX_NESTING} levels)") from None
    if nesting_depth(data) > MAX_NESTING:
        raise ValueError(f"arrays or tables nest too deeply (more than {MAX_NESTING} levels)")
    return data


def read_toml(path: Path, key: str = "") -> tuple[dict[str, Any] | None, list[Problem]]:
    if "\0" in str(path):
        return None, [Problem(key, f"{str(path)!r} is not a valid path (it contains a NUL character)")]
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [Problem(key, f"file {path} does not exist")]
    except IsADirectoryError:
        return None, [Problem(key, f"{path} is a folder, not a recipe file")]
    except OSError as exc:
        return None, [Problem(key, f"cannot read {path}: {exc.strerror or exc}")]
    except UnicodeDecodeError as exc:
        return None, [Problem(key, f"{path} is not a UTF-8 text file (byte {exc.start} is not UTF-8); "
                                   f"a recipe is TOML text")]
    where = f" in {path}" if key else ""
    try:
        return parse_toml_text(text), []
    except ValueError as exc:
        return None, [Problem(key, f"invalid TOML{where}: {exc}")]


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; any other value (arrays, arrays of tables included) replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _leaf_keys(data: dict[str, Any], prefix: tuple = ()) -> Iterable[tuple]:
    """Key paths of every non-table value (an array is one value: ``extends`` replaces arrays whole)."""
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _leaf_keys(value, prefix + (key,))
        else:
            yield prefix + (key,)


def _with_extends(path: Path, data: dict[str, Any],
                  chain: tuple[Path, ...]) -> tuple[dict, Origins, list[Problem]]:
    """The file's data merged over its bases, and the folder each value comes from (for relative paths)."""
    base_ref = data.pop("extends", None)
    own = {key: path.parent for key in _leaf_keys(data)}
    if base_ref is None:
        return data, own, []
    if not isinstance(base_ref, str):
        return data, own, [Problem("extends", f"expected a path string, got {base_ref!r}")]
    if "\0" in base_ref:
        return data, own, [Problem("extends", f"{base_ref!r} is not a valid path (it contains a NUL character)")]
    base_path = (path.parent / base_ref).resolve()
    if base_path in chain:
        return data, own, [Problem("extends",
                                   f"circular extends: {' -> '.join(map(str, chain + (base_path,)))}")]
    if len(chain) > MAX_EXTENDS_DEPTH:
        return data, own, [Problem("extends", f"more than {MAX_EXTENDS_DEPTH} levels of extends")]
    base, problems = read_toml(base_path, "extends")
    if base is None:
        return data, own, problems
    base, origins, problems = _with_extends(base_path, base, chain + (base_path,))
    return deep_merge(base, data), {**origins, **own}, problems


def origin_of(origins: Origins, key: tuple) -> Path | None:
    """The folder of the file that set ``key`` (the longest recorded prefix of it), or None."""
    for n in range(len(key), 0, -1):
        if key[:n] in origins:
            return origins[key[:n]]
    return None


def rebase_path(value: Any, origin: Path | None, recipe_dir: Path) -> Any:
    """A relative path written in a base recipe, re-expressed relative to the leaf recipe's folder.

    Components resolve relative paths against the leaf's folder (``BuildContext.resolve_path``); a value a
    base set must keep pointing where the base meant it to. Other values pass through.
    """
    if isinstance(value, list):
        return [rebase_path(v, origin, recipe_dir) for v in value]
    if (not isinstance(value, str) or not value or origin is None or value.startswith("~")
            or Path(value).is_absolute() or origin == recipe_dir):
        return value
    try:
        return os.path.relpath(origin / value, recipe_dir)
    except ValueError:  # another drive (Windows): no relative form
        return str(origin / value)


def _schema_path_keys(cls: type, prefix: tuple = ()) -> Iterable[tuple]:
    """Key paths of the schema fields declared with ``param(path=True)``."""
    from typing import get_args

    for field in attrs.fields(cls):
        if field.metadata.get("path"):
            yield prefix + (field.name,)
        for tp in (field.type, *get_args(field.type)):
            if isinstance(tp, type) and attrs.has(tp):
                yield from _schema_path_keys(tp, prefix + (field.name,))


def _rebase_schema_paths(data: dict[str, Any], origins: Origins, recipe_dir: Path) -> None:
    from .structure import resolve_types_deep

    resolve_types_deep(Recipe)
    for key in _schema_path_keys(Recipe):
        node: Any = data
        for part in key[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and key[-1] in node:
            node[key[-1]] = rebase_path(node[key[-1]], origin_of(origins, key), recipe_dir)


_SEGMENT = re.compile(r"^([A-Za-z0-9_\-]+)((?:\[\d+\])*)$")


def _split_key(key: str) -> list[str | int] | None:
    parts: list[str | int] = []
    for raw in key.split("."):
        if raw.isdigit() and parts:  # regularizers.1.weight is regularizers[1].weight
            parts.append(int(raw))
            continue
        m = _SEGMENT.match(raw)
        if not m:
            return None
        parts.append(m.group(1))
        parts += [int(i) for i in re.findall(r"\[(\d+)\]", m.group(2))]
    return parts


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """``"train.autoencoder.steps=200"`` -> (["train", "autoencoder", "steps"], 200).

    The value is a TOML literal (``200``, ``1e-3``, ``"l2"``, ``[0, 8]``, ``{ delta = 0.6 }``); a bare word
    that is not valid TOML is taken as a string, so ``data.name=demo-photos`` works.
    """
    key, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"override {text!r} must look like key.path=value")
    parts = _split_key(key.strip())
    if not parts:
        raise ValueError(f"override {text!r}: {key.strip()!r} is not a dotted key path")
    value = value.strip()
    try:
        table = parse_toml_text(f"v = {value}")
    except tomllib.TOMLDecodeError:
        if re.fullmatch(r"[^\s\"'\[\]{}=,]+", value):
            return parts, value
        raise ValueError(f"override {text!r}: {value!r} is not a TOML value") from None
    except ValueError as exc:
        raise ValueError(f"override {key.strip()!r}: {exc}") from None
    if set(table) != {"v"}:  # "5\nextends = 'x'" would set a second key
        raise ValueError(f"override {key.strip()!r}: the value must be one TOML value; it continues after a "
                         f"newline ({value!r})")
    return parts, table["v"]


def _schema_tables() -> set[str]:
    """Top-level keys that are tables (``[train]``), not arrays (``[[regularizers]]``)."""
    from .structure import resolve_types_deep

    resolve_types_deep(Recipe)
    return {f.name for f in attrs.fields(Recipe) if get_origin(f.type) not in (tuple, list)
            and (attrs.has(f.type) or any(attrs.has(a) for a in get_args(f.type) if isinstance(a, type)))}


def _apply_override(data: dict[str, Any], parts: list[str | int], value: Any) -> str:
    if len(parts) > 1 and isinstance(parts[1], int) and parts[0] in _schema_tables():
        return f"{parts[0]} is a table, not an array: name a key, e.g. {parts[0]}.KEY"
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(part, int):
            if isinstance(node, dict):
                return f"{_key_text(parts[:i])} is a table, not an array: name a key, e.g. {_key_text(parts[:i])}.KEY"
            if not isinstance(node, list) or part >= len(node):
                return f"index {part} is out of range"
            node = node[part]
        else:
            if not isinstance(node, dict):
                return f"{_key_text(parts[:i])} is an array: use an index, e.g. {_key_text(parts[:i])}[0]"
            if part not in node or not isinstance(node[part], (dict, list)):
                node[part] = [] if isinstance(nxt, int) else {}
            node = node[part]
    last = parts[-1]
    if isinstance(last, int):
        if isinstance(node, dict):
            return f"{_key_text(parts[:-1])} is a table, not an array: name a key, e.g. {_key_text(parts[:-1])}.KEY"
        if not isinstance(node, list) or last >= len(node):
            return f"index {last} is out of range"
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        return f"{_key_text(parts[:-1])} is an array: use an index, e.g. {_key_text(parts[:-1])}[0]"
    return ""


def _key_text(parts: Sequence[str | int]) -> str:
    out = ""
    for p in parts:
        out = join(out, p)
    return out


def load_raw(path: str | Path, overrides: Iterable[str] = ()) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Phase 1: the merged, overridden TOML data of a recipe (relative paths that bases set, rebased)."""
    data, _, problems = load_raw_with_origins(path, overrides)
    return data, problems


def load_raw_with_origins(path: str | Path, overrides: Iterable[str] = ()
                          ) -> tuple[dict[str, Any] | None, Origins, list[Problem]]:
    """:func:`load_raw`, plus the folder of the file each value came from (``-o`` values: the recipe's).

    Schema paths (``plugins.files``, ``autoencoder.from_run``, ...) are rebased here; component params that
    are paths are rebased in :func:`resolve`, which knows their parameter classes.
    """
    path = Path(path)
    data, problems = read_toml(path)
    if data is None:
        return None, {}, problems
    leaf = path.resolve()
    data, origins, problems = _with_extends(leaf, data, (leaf,))
    if problems:  # without its base the recipe is incomplete: checking it would report spurious problems
        return None, {}, problems
    for text in overrides:
        try:
            parts, value = parse_override(text)
        except ValueError as exc:
            problems.append(Problem("-o", str(exc)))
            continue
        error = _apply_override(data, parts, value)
        if error:
            problems.append(Problem(_key_text(parts), f"cannot override ({error})"))
            continue
        key = tuple(parts)
        origins = {k: v for k, v in origins.items() if k[:len(key)] != key}
        origins[key] = leaf.parent
    _rebase_schema_paths(data, origins, leaf.parent)
    return data, origins, problems


# -- phases 2-4 ----------------------------------------------------------------------------------------

def _get_path(data: dict[str, Any], path: str) -> Any:
    m = re.fullmatch(r"([a-z_]+)(?:\[(\d+)\])?", path)
    if not m:
        return None
    node = data.get(m.group(1))
    if m.group(2) is not None:
        node = node[int(m.group(2))] if isinstance(node, list) and int(m.group(2)) < len(node) else None
    return node


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


def _differences_from_run(cfg: Any, run_ae: dict[str, Any]) -> list[str]:
    """What the recipe's own autoencoder name/params say differently from the run's recorded ones."""
    from .specs import normalise_name

    out = []
    if cfg.name and normalise_name(cfg.name) != normalise_name(run_ae["name"]):
        out.append(f"name {cfg.name!r} (the run has {run_ae['name']!r})")
    run_params = run_ae.get("params", {})
    for k, v in cfg.params.items():
        v = list(v) if isinstance(v, tuple) else v
        if k not in run_params:
            out.append(f"params.{k} = {v!r} (the run does not set it)")
        elif run_params[k] != v:
            out.append(f"params.{k} = {v!r} (the run has {run_params[k]!r})")
    return out


def _recorded_autoencoder(data: dict[str, Any], recipe_file: Path) -> tuple[dict | None, str]:
    """The ``[autoencoder]`` table another run recorded, or (None, what is wrong with it)."""
    run_ae = data.get("autoencoder")
    if not isinstance(run_ae, dict):
        return None, f"{recipe_file}: [autoencoder] is not a table ({type(run_ae).__name__}); not a recipe specmatch wrote"
    name, params = run_ae.get("name"), run_ae.get("params", {})
    if not isinstance(name, str) or not name.strip():
        return None, f"{recipe_file}: autoencoder.name is {name!r}; expected a registry name"
    if not isinstance(params, dict):
        return None, f"{recipe_file}: autoencoder.params is not a table ({type(params).__name__})"
    return {"name": name, "params": params}, ""


def _load_from_run(cfg: Any, recipe_dir: Path) -> tuple[dict | None, list[Problem]]:
    if not cfg.from_run:
        if not cfg.name:
            return None, [Problem("autoencoder.name", "required: a registry name, or set autoencoder.from_run")]
        return None, []
    problems = []
    if "\0" in cfg.from_run:
        return None, [Problem("autoencoder.from_run", f"{cfg.from_run!r} is not a valid path (NUL character)")]
    run_dir = (recipe_dir / Path(cfg.from_run).expanduser())
    layout = RunLayout(run_dir)
    data, read_problems = read_toml(layout.recipe, "autoencoder.from_run")
    if data is None:
        msg = f"{run_dir} is not a specmatch run folder (no readable recipe.toml)"
        return None, problems + [Problem("autoencoder.from_run", msg)]
    run_ae, why = _recorded_autoencoder(data, layout.recipe)
    if run_ae is None:
        return None, [Problem("autoencoder.from_run", why)]
    data = {**data, "autoencoder": run_ae}
    # name/params beside from_run (a resolved recipe repeats them; a base recipe may supply them through
    # extends) are fine as long as they agree with the run's autoencoder; a different choice is an error
    differences = _differences_from_run(cfg, run_ae)
    if differences:
        problems.append(Problem("autoencoder", f"differs from the autoencoder of {run_dir} "
                                               f"({run_ae['name']!r}): {'; '.join(differences)}; the weights "
                                               f"there are that autoencoder's, so remove these keys or drop "
                                               f"from_run"))
    if not (layout.autoencoder / MODEL_FILE).exists():
        problems.append(Problem("autoencoder.from_run",
                                f"{run_dir} has no trained autoencoder yet ({layout.autoencoder / MODEL_FILE})"))
    return data, problems


def _structure_recipe(raw: dict[str, Any]) -> tuple[Recipe | None, dict[str, Any], list[Problem]]:
    """Structure the top-level tables one by one, so one bad table does not hide the others' problems.

    Returns the Recipe (None if any table is invalid), the tables that did structure, and the problems.
    """
    from .structure import check_field, fill_defaults, resolve_types_deep

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


def _key_tuple(path: str) -> tuple:
    """``"regularizers[1]"`` -> ``("regularizers", 1)``."""
    m = re.fullmatch(r"([a-z_]+)(?:\[(\d+)\])?", path)
    assert m, path
    return (m.group(1),) if m.group(2) is None else (m.group(1), int(m.group(2)))


def _rebase_params(table: dict[str, Any], params_cls: type, key: tuple, origins: Origins,
                   recipe_dir: Path) -> dict[str, Any]:
    """The params table with its ``param(path=True)`` values rebased to the leaf recipe's folder."""
    out = dict(table)
    for field in attrs.fields(params_cls):
        if field.metadata.get("path") and field.name in out:
            origin = origin_of(origins, key + ("params", field.name))
            out[field.name] = rebase_path(out[field.name], origin, recipe_dir)
    return out


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
        from_run_data, run_problems = _load_from_run(ae_cfg, source.parent)
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
        try:
            params_cls = spec.params_class()
        except SpecmatchError as exc:
            problems.append(Problem(join(path, "params"), str(exc)))
            continue
        if params_cls is None:
            params = None
            if cfg.params:
                problems.append(Problem(join(path, "params"), f"{spec.name!r} takes no parameters"))
        else:
            table = _rebase_params(cfg.params, params_cls, _key_tuple(path), origins or {}, recipe_dir)
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
    problems.extend(check_facts(resolved, check_files=check_files))
    for result in registry.plugins.manager.hook.specmatch_validate_recipe(recipe=resolved):
        for item in result or ():
            if isinstance(item, Problem):
                problems.append(item)
            else:
                warnings.append(str(item))
    return problems, warnings


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


def is_base_recipe(relative_path: Path) -> bool:
    """Shared bases (``base*.toml``, ``_base*.toml`` or anything in such a folder) are extended, never run."""
    return any(part.startswith(("base", "_base")) for part in Path(relative_path).parts)


def plugin_files_of(raw: dict[str, Any] | None, source: Path) -> list[Path]:
    """Local plugin files a recipe asks for, resolved against the recipe's folder (``raw`` from
    :func:`load_raw`, where files a base lists are already relative to the leaf's folder)."""
    files = ((raw or {}).get("plugins") or {}).get("files") or []
    if not isinstance(files, list):
        return []
    return [(source.parent / f).expanduser() for f in files if isinstance(f, str)]


def load_recipe(path: str | Path, overrides: Iterable[str] = (), *, registry: Any = None,
                plugin_files: Iterable[str | Path] = (), disabled: Iterable[str] = (),
                allow_recipe_plugins: bool | None = None, check_files: bool = True) -> ResolvedRecipe:
    """Read, merge, override and validate a recipe. Raises :class:`RecipeError` listing every problem.

    Without a ``registry``, plugins come from the session (:mod:`specmatch.core.session`: the command
    line's ``--plugin-file`` and ``--disable-plugin``) plus ``plugin_files`` and ``disabled``. The recipe's
    own ``[plugins] files`` run code, so they load only when ``allow_recipe_plugins`` is true (``None``:
    the session's setting, ``--allow-recipe-plugins``); otherwise the recipe is refused before any of its
    files is imported.
    """
    from .session import get_registry, recipe_plugins_allowed

    source = Path(path)
    raw, origins, problems = load_raw_with_origins(source, overrides)
    if raw is None:
        raise RecipeError(str(source), problems)
    allowed = recipe_plugins_allowed() if allow_recipe_plugins is None else allow_recipe_plugins
    if registry is None:
        recipe_files = plugin_files_of(raw, source) if allowed else []
        registry = get_registry(plugin_files=[*plugin_files, *recipe_files], disabled=disabled)
    try:
        resolved = resolve(raw, source, registry, origins=origins, allow_recipe_plugins=allowed,
                           check_files=check_files)
    except RecipeError as exc:
        raise RecipeError(str(source), merge_problems(problems, exc.problems)) from None
    if problems:
        raise RecipeError(str(source), problems)
    return resolved
