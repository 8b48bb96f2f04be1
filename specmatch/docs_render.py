"""Rendering of component parameters as ready-to-paste TOML (used by ``components info`` and the docs)."""

from __future__ import annotations

import json
import re
from typing import Any

from .core.kinds import KINDS
from .core.specs import ComponentSpec

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_literal(value: Any) -> str:
    """One value as a single-line TOML literal: ``1e-06``, ``"l1"``, ``[0, 8, 10, 12]``, ``{ delta = 1.0 }``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # Python's int/float reprs are valid TOML (1e-06, 0.5, inf)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = (f"{k if _BARE_KEY.match(k) else json.dumps(k)} = {toml_literal(v)}" for k, v in value.items())
        return "{ " + ", ".join(items) + " }"
    raise TypeError(f"no TOML literal for {value!r}")


def toml_snippet(spec: ComponentSpec, rows: list[dict[str, Any]]) -> str:
    kind = KINDS[spec.kind]
    lines = [kind.header, f'name = "{spec.name}"']
    if kind.array:  # an entry of [[regularizers]] is usually written with its schedule
        lines += ["weight = 1.0", "start_step = 0"]
    params = []
    for r in rows:
        default = r["default"]
        if default == "(required)" or default is None:
            params.append(f"# {r['name']} = ...  ({r['doc']})")
            continue
        try:
            params.append(f"{r['name']} = {toml_literal(default)}")
        except TypeError:
            params.append(f"# {r['name']} = {default!r}")
    if params:
        lines.append(f"[{kind.table}.params]")
        lines += params
    return "\n".join(lines)
