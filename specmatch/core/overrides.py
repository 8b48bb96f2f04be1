"""The ``-o key.path=<TOML literal>`` grammar of the command line, applied to merged recipe data."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Sequence, get_args, get_origin

import attrs

from .errors import Problem
from .schema import Recipe
from .structure import join, resolve_types_deep
from .toml_io import Origins, TOMLDecodeError, parse_toml_text


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
    except TOMLDecodeError:
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
    resolve_types_deep(Recipe)
    return {f.name for f in attrs.fields(Recipe) if get_origin(f.type) not in (tuple, list)
            and (attrs.has(f.type) or any(attrs.has(a) for a in get_args(f.type) if isinstance(a, type)))}


def apply_override(data: dict[str, Any], parts: list[str | int], value: Any) -> str:
    if len(parts) > 1 and isinstance(parts[1], int) and parts[0] in _schema_tables():
        return f"{parts[0]} is a table, not an array: name a key, e.g. {parts[0]}.KEY"
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(part, int):
            if isinstance(node, dict):
                return f"{key_text(parts[:i])} is a table, not an array: name a key, e.g. {key_text(parts[:i])}.KEY"
            if not isinstance(node, list) or part >= len(node):
                return f"index {part} is out of range"
            node = node[part]
        else:
            if not isinstance(node, dict):
                return f"{key_text(parts[:i])} is an array: use an index, e.g. {key_text(parts[:i])}[0]"
            if part not in node or not isinstance(node[part], (dict, list)):
                node[part] = [] if isinstance(nxt, int) else {}
            node = node[part]
    last = parts[-1]
    if isinstance(last, int):
        if isinstance(node, dict):
            return f"{key_text(parts[:-1])} is a table, not an array: name a key, e.g. {key_text(parts[:-1])}.KEY"
        if not isinstance(node, list) or last >= len(node):
            return f"index {last} is out of range"
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        return f"{key_text(parts[:-1])} is an array: use an index, e.g. {key_text(parts[:-1])}[0]"
    return ""


def key_text(parts: Sequence[str | int]) -> str:
    out = ""
    for p in parts:
        out = join(out, p)
    return out


def apply_overrides(data: dict[str, Any], origins: Origins, overrides: Iterable[str],
                    recipe_dir: Path) -> tuple[Origins, list[Problem]]:
    """Apply ``-o`` overrides to ``data`` in place; an overridden value's origin becomes the leaf's folder."""
    problems = []
    for text in overrides:
        try:
            parts, value = parse_override(text)
        except ValueError as exc:
            problems.append(Problem("-o", str(exc)))
            continue
        error = apply_override(data, parts, value)
        if error:
            problems.append(Problem(key_text(parts), f"cannot override ({error})"))
            continue
        key = tuple(parts)
        origins = {k: v for k, v in origins.items() if k[:len(key)] != key}
        origins[key] = recipe_dir
    return origins, problems
