"""Relative paths in recipes: which file set each value, and re-expressing paths a base recipe wrote
relative to the leaf recipe's folder (components resolve relative paths against the leaf's folder)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable, get_args

import attrs

from .schema import Recipe
from .structure import resolve_types_deep
from .toml_io import Origins


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
    for field in attrs.fields(cls):
        if field.metadata.get("path"):
            yield prefix + (field.name,)
        for tp in (field.type, *get_args(field.type)):
            if isinstance(tp, type) and attrs.has(tp):
                yield from _schema_path_keys(tp, prefix + (field.name,))


def rebase_schema_paths(data: dict[str, Any], origins: Origins, recipe_dir: Path) -> None:
    resolve_types_deep(Recipe)
    for key in _schema_path_keys(Recipe):
        node: Any = data
        for part in key[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and key[-1] in node:
            node[key[-1]] = rebase_path(node[key[-1]], origin_of(origins, key), recipe_dir)


def key_tuple(path: str) -> tuple:
    """``"regularizers[1]"`` -> ``("regularizers", 1)``."""
    m = re.fullmatch(r"([a-z_]+)(?:\[(\d+)\])?", path)
    assert m, path
    return (m.group(1),) if m.group(2) is None else (m.group(1), int(m.group(2)))


def rebase_params(table: dict[str, Any], params_cls: type, key: tuple, origins: Origins,
                   recipe_dir: Path) -> dict[str, Any]:
    """The params table with its ``param(path=True)`` values rebased to the leaf recipe's folder."""
    out = dict(table)
    for field in attrs.fields(params_cls):
        if field.metadata.get("path") and field.name in out:
            origin = origin_of(origins, key + ("params", field.name))
            out[field.name] = rebase_path(out[field.name], origin, recipe_dir)
    return out
