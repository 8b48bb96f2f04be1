"""Documentation of recipe tables and component parameters: field rows (type, default, range, doc) and
ready-to-paste TOML, used by ``components info`` and ``docs/gen_recipe_reference.py``."""

from __future__ import annotations

from typing import Any, get_args, get_origin

import attrs
import tomli_w

from .core.kinds import KINDS
from .core.structure import resolve_types_deep
from .core.specs import ComponentSpec

def _toml_scalar(value: Any) -> str:
    return tomli_w.dumps({"v": value}).removeprefix("v = ").rstrip("\n")


def _toml_key(key: str) -> str:
    return tomli_w.dumps({key: 0}).rstrip("\n").removesuffix(" = 0")


def toml_literal(value: Any) -> str:
    """One value as a single-line TOML literal: ``1e-06``, ``"l1"``, ``[0, 8, 10, 12]``, ``{ delta = 1.0 }``.

    tomli_w writes scalars and keys; arrays and tables are joined here because tomli_w puts every non-empty
    array on several lines and a table under its own header, and a snippet line or a docs table cell must
    hold the value on one line.
    """
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(k)} = {toml_literal(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, (bool, int, float, str)):
        return _toml_scalar(value)
    raise TypeError(f"no TOML literal for {value!r}")


def toml_snippet(spec: ComponentSpec, rows: list[dict[str, Any]]) -> str:
    kind = KINDS[spec.kind]
    if kind.named_in:  # chosen by name in a list; params in the sibling <kind>_params table
        table, key = kind.named_in.split(".")
        lines = [f"[{table}]", f'{key} = ["{spec.name}"]  # with the others you want']
        values = [f"{r['name']} = {toml_literal(r['default'])}" for r in rows
                  if r["default"] not in ("(required)", None)]
        if values:
            lines += [f"[{table}.{kind.name}_params.{spec.name}]", *values]
        return "\n".join(lines)
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


def type_name(tp: Any) -> str:
    """A field type in recipe terms: ``int``, ``array of int``, ``array [float, float]``, ``table``, ``str
    (optional)`` (``Optional`` keys may be omitted; TOML has no null)."""
    if isinstance(tp, str):
        return tp
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return "any"
    if attrs.has(tp) or origin is dict or tp is dict:
        return "table"
    if origin in (tuple, list):
        if origin is list or (args and args[-1] is Ellipsis):
            if not args:
                return "array"
            return "array of tables" if attrs.has(args[0]) else f"array of {type_name(args[0])}"
        return f"array [{', '.join(type_name(a) for a in args)}]"
    if args and type(None) in args:  # Optional[X]
        rest = [a for a in args if a is not type(None)]
        return (type_name(rest[0]) if len(rest) == 1 else " | ".join(map(type_name, rest))) + " (optional)"
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def describe_fields(cls: type | None) -> list[dict[str, Any]]:
    """Rows for ``components info``: name, type, default, doc, and constraints."""
    rows = []
    if cls is None:
        return rows
    resolve_types_deep(cls)  # a plugin module with ``from __future__ import annotations`` has string types
    for field in attrs.fields(cls):
        if field.default is attrs.NOTHING:
            default: Any = "(required)"
        elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            default = field.default.factory()
        else:
            default = field.default
        tp = type_name(field.type)
        meta = dict(field.metadata)
        constraints = []
        for key, text in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if meta.get(key) is not None:
                constraints.append(f"{text} {meta[key]}")
        if meta.get("choices"):
            constraints.append("one of " + ", ".join(map(repr, meta["choices"])))
        rows.append({"name": field.name, "type": tp, "default": default,
                     "doc": meta.get("doc", ""), "constraints": "; ".join(constraints)})
    return rows
