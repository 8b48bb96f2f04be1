"""Typed structuring of TOML data into attrs records, with every problem reported by key path.

cattrs does the structuring (``forbid_extra_keys=True``, detailed validation); this module adds strict leaf
types (``"32"`` is not an int, ``3.7`` is not an int, ``1`` is not a bool), a walker that turns cattrs'
exception groups into :class:`Problem` records with dotted paths, and range/choice checks declared with
:func:`specmatch.core.specs.param` (checked here, so all of them are reported at once).
"""

from __future__ import annotations

import math
from typing import Any, get_args, get_origin

import attrs
import cattrs
from cattrs.cols import homogenous_tuple_structure_factory, list_structure_factory, mapping_structure_factory
from cattrs.gen import make_hetero_tuple_structure_fn
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)

from .errors import Problem


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


class _LeafTypeError(TypeError):
    pass


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _LeafTypeError(f"expected an integer, got {_describe(value)}")
    return value


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _LeafTypeError(f"expected a number, got {_describe(value)}")
    return float(value)


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise _LeafTypeError(f"expected true or false, got {_describe(value)}")
    return value


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise _LeafTypeError(f"expected a string, got {_describe(value)}")
    return value


def fill_defaults(default: Any, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a table the user wrote) completed from ``default`` (a record instance), recursively.

    A sub-table's default can differ from its class defaults (``train.denoiser`` has its own learning rate);
    writing one key of that sub-table must not reset the others to the class defaults.
    """
    out = dict(data)
    for field in attrs.fields(type(default)):
        value = getattr(default, field.name)
        if field.name not in out:
            out[field.name] = converter.unstructure(value)
        elif attrs.has(type(value)) and isinstance(out[field.name], dict):
            out[field.name] = fill_defaults(value, out[field.name])
    return out


def _table_hook(inner: Any, cls: Any = None) -> Any:
    """Refuse non-tables before cattrs sees them (it would iterate a string, or fail with a Python message);
    sub-tables whose default is a record instance are completed from it (:func:`fill_defaults`)."""
    record_defaults = [(f.name, f.default) for f in attrs.fields(cls) if attrs.has(type(f.default))] \
        if cls is not None else []

    def hook(value: Any, cls: Any) -> Any:
        if not isinstance(value, dict):
            raise _LeafTypeError(f"expected a table, got {_describe(value)}")
        for name, default in record_defaults:
            if isinstance(value.get(name), dict):
                value = {**value, name: fill_defaults(default, value[name])}
        return inner(value, cls)

    return hook


def _array_factory(cls: Any, conv: cattrs.Converter) -> Any:
    """Arrays must be TOML arrays: ``"abc"`` is not ``("a", "b", "c")``; fixed-length tuples say how many."""
    args = get_args(cls)
    fixed = get_origin(cls) is tuple and bool(args) and args[-1] is not Ellipsis
    if fixed:
        inner = make_hetero_tuple_structure_fn(cls, conv, detailed_validation=True)
    elif get_origin(cls) is tuple:
        inner = homogenous_tuple_structure_factory(cls, conv)
    else:
        inner = list_structure_factory(cls, conv)

    def hook(value: Any, _: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            raise _LeafTypeError(f"expected an array, got {_describe(value)}")
        if fixed and len(value) != len(args):
            raise _LeafTypeError(f"expected an array of {len(args)} values, got {_describe(value)}")
        return inner(value, cls)

    return hook


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(Any, lambda v, _: v)
    # shape guards: registered last, so they take precedence over cattrs' own collection and attrs hooks
    conv.register_structure_hook_factory(
        attrs.has, lambda cls: _table_hook(conv.gen_structure_attrs_fromdict(cls), cls))
    conv.register_structure_hook_factory(
        lambda cls: get_origin(cls) is dict,
        lambda cls: _table_hook(mapping_structure_factory(cls, conv, dict, detailed_validation=True)))
    conv.register_structure_hook_factory(lambda cls: get_origin(cls) in (tuple, list), _array_factory)
    return conv


converter = _make_converter()


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _allowed_keys(cls: type) -> str:
    return ", ".join(f.name for f in attrs.fields(cls)) if attrs.has(cls) else ""


def _walk(exc: BaseException, path: str, out: list[Problem]) -> None:
    if isinstance(exc, ForbiddenExtraKeysError):
        allowed = _allowed_keys(exc.cl)
        for key in sorted(exc.extra_fields):
            out.append(Problem(join(path, key), f"unexpected key {key!r} (allowed: {allowed})"))
    elif isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            _walk(sub, join(path, note.name), out)
        for sub in without:
            _walk(sub, path, out)
    elif isinstance(exc, IterableValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            _walk(sub, join(path, note.index), out)
        for sub in without:
            _walk(sub, path, out)
    elif isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            _walk(sub, path, out)
    elif isinstance(exc, KeyError):
        out.append(Problem(path, "required key is missing"))
    elif isinstance(exc, _LeafTypeError):
        out.append(Problem(path, str(exc)))
    elif isinstance(exc, (TypeError, ValueError, AttributeError)):
        # e.g. a table where a list was expected; cattrs' own messages are terse, so add the expectation.
        out.append(Problem(path, f"invalid value: {exc}"))
    else:  # pragma: no cover - unexpected
        out.append(Problem(path, f"{type(exc).__name__}: {exc}"))


def check_ranges_value(value: Any, path: str) -> list[Problem]:
    if attrs.has(type(value)):
        return check_ranges(value, path)
    if isinstance(value, (list, tuple)):
        return [p for i, item in enumerate(value) for p in check_ranges_value(item, join(path, i))]
    return []


def check_ranges(obj: Any, path: str) -> list[Problem]:
    """Range and choice checks from ``param(..., ge=, le=, choices=)`` metadata, recursively."""
    problems: list[Problem] = []
    if not attrs.has(type(obj)):
        return problems
    for field in attrs.fields(type(obj)):
        value = getattr(obj, field.name)
        where = join(path, field.name)
        if attrs.has(type(value)):
            problems += check_ranges(value, where)
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if attrs.has(type(item)):
                    problems += check_ranges(item, join(where, i))
        problems += check_field(field, value, where)
    return problems


def check_field(field: attrs.Attribute, value: Any, where: str) -> list[Problem]:
    """The range and choice checks of one field's ``param`` metadata (numbers in arrays item by item)."""
    meta = field.metadata or {}
    problems = []
    items = value if isinstance(value, (list, tuple)) else [value]
    choices = meta.get("choices")
    if choices is not None:
        for item in items:  # an array field's choices apply to each item
            if item not in choices:
                problems.append(Problem(where, f"expected one of {', '.join(map(repr, choices))}; got {item!r}"))
    for item in items:
        if not isinstance(item, (int, float)) or isinstance(item, bool):
            continue
        if isinstance(item, float) and not math.isfinite(item):
            if meta.get("finite", True):  # nan passes every range test and inf overflows float32 math
                problems.append(Problem(where, f"expected a finite number; got {item!r}"))
            continue
        for key, ok, text in (("ge", lambda a, b: a >= b, ">="), ("gt", lambda a, b: a > b, ">"),
                              ("le", lambda a, b: a <= b, "<="), ("lt", lambda a, b: a < b, "<")):
            bound = meta.get(key)
            if bound is not None and not ok(item, bound):
                problems.append(Problem(where, f"expected a value {text} {bound}; got {item!r}"))
    return problems


def resolve_types_deep(cls: type, _seen: set | None = None) -> None:
    """Resolve string annotations (``from __future__ import annotations``) of ``cls`` and nested records."""
    seen = _seen if _seen is not None else set()
    if cls in seen or not attrs.has(cls):
        return
    seen.add(cls)
    attrs.resolve_types(cls)
    for field in attrs.fields(cls):
        for arg in (field.type, *getattr(field.type, "__args__", ())):
            for inner in (arg, *getattr(arg, "__args__", ())):
                if isinstance(inner, type) and attrs.has(inner):
                    resolve_types_deep(inner, seen)


def structure(data: Any, cls: Any, path: str) -> tuple[Any, list[Problem]]:
    """Structure ``data`` into ``cls``; return ``(object or None, problems)`` with every problem found."""
    if not attrs.has(cls):  # a plain type (int, tuple[...], Optional[...]) of a top-level key
        for arg in getattr(cls, "__args__", ()):
            if isinstance(arg, type) and attrs.has(arg):
                resolve_types_deep(arg)
        try:
            obj = converter.structure(data, cls)
        except Exception as exc:
            problems = []
            _walk(exc, path, problems)
            return None, problems or [Problem(path, str(exc))]
        return obj, check_ranges_value(obj, path)
    resolve_types_deep(cls)
    if not isinstance(data, dict):
        return None, [Problem(path, f"expected a table, got {_describe(data)}")]
    try:
        obj = converter.structure(data, cls)
    except Exception as exc:  # collected into problems; never a traceback for user input
        problems: list[Problem] = []
        _walk(exc, path, problems)
        return None, problems or [Problem(path, str(exc))]
    return obj, check_ranges(obj, path)


def unstructure(obj: Any) -> Any:
    """attrs records to plain data, dropping ``None`` values (TOML has no null)."""
    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return clean(converter.unstructure(obj))
