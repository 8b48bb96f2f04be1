"""Reading recipe TOML: UTF-8 text with a nesting limit, files with user-facing errors, and ``extends``.

``extends = "base.toml"`` chains are followed (paths relative to the file that names them); tables merge key by
key, any other value (arrays included) replaces. One exception: a component table (``[denoiser]``,
``[sampler]``, ...) whose ``name`` the extending file changes does not inherit the base's ``params``, which
belong to the other component. Each value's origin (the folder of the file that set it) is
kept, so relative paths a base wrote can be rebased (:mod:`specmatch.core.recipe_paths`).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any, Iterable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import Problem

MAX_EXTENDS_DEPTH = 8
#: Deepest nesting of arrays and tables accepted; deeper data is refused before anything recurses over it.
MAX_NESTING = 32

TOMLDecodeError = tomllib.TOMLDecodeError

#: key path (tuple of keys and indexes) -> folder of the recipe file that set it
Origins = dict


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


def with_extends(path: Path, data: dict[str, Any],
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
    base, origins, problems = with_extends(base_path, base, chain + (base_path,))
    for table in _switched_components(base, data):
        del base[table]["params"]
        origins = {k: v for k, v in origins.items() if k[:2] != (table, "params")}
    return deep_merge(base, data), {**origins, **own}, problems


def _switched_components(base: dict[str, Any], data: dict[str, Any]) -> list[str]:
    """Single component tables (``[denoiser]``, ``[sampler]``, ...) where ``data`` names another component than
    ``base`` does and ``base`` has ``params``: those params are the other component's, so they are dropped.
    Arrays of tables (``[[regularizers]]``) are replaced whole anyway."""
    from .kinds import KINDS
    from .specs import normalise_name

    out = []
    for kind in KINDS.values():
        if kind.array:
            continue
        mine, theirs = data.get(kind.table), base.get(kind.table)
        if not (isinstance(mine, dict) and isinstance(theirs, dict) and "params" in theirs):
            continue
        new, old = mine.get("name"), theirs.get("name")
        if isinstance(new, str) and isinstance(old, str) and normalise_name(new) != normalise_name(old):
            out.append(kind.table)
    return out
