"""What a spec promises about its own code, checked as early as it can be known, without torch.

A spec is a plugin author's statement; these checks catch the statements that contradict the code they
point at, and name the component and its plugin:

- every default of the params class passes the class's own declaration (type, range, choices): a default
  of 16.0 for an ``int`` field, or 0 for a field declared ``ge=1``, would otherwise be blamed on the
  user's recipe, or printed by ``components info`` as a snippet ``validate`` rejects;
- a regularizer's ``transforms_pair`` flag agrees with its having a ``transform_pair`` method (otherwise the
  method is silently never called, or the engine calls a method that is not there);
- a lazy ``"package.module:attribute"`` reference names a module that exists (found, not imported).

At registration only what is knowable without importing is checked: a params class given as an object, a
factory given as a class. Lazy references are checked when a recipe uses the component (``validate``) and,
for the built object, when the engine builds it; the messages are the same.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from typing import Any

import attrs

from .errors import PluginError


class SpecContractError(PluginError):
    """A spec contradicts its own code; the registry marks the providing plugin broken with this reason."""


def who(spec: Any) -> str:
    """``sampler 'midpoint' (from specmatch-extras 0.1.0 [specmatch-extras:extras])``."""
    where = ""
    if spec.provider is not None:
        where = f" (from {spec.provider} [{spec.provider.plugin}])"
    return f"{spec.kind} {spec.name!r}{where}"


def params_default_problems(params_cls: type) -> list[str]:
    """``"steps: expected an integer, got 16.0 (float)"`` for each default its own declaration refuses.

    Each default goes through exactly what a recipe value goes through (strict type, then range and choices),
    field by field, so a required key (no default) does not hide the others.
    """
    from .structure import check_field, converter, resolve_types_deep, structure

    resolve_types_deep(params_cls)
    problems = []
    for field in attrs.fields(params_cls):
        default = field.default
        if default is attrs.NOTHING:
            continue  # a required key: the recipe must give it
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory(None) if default.takes_self else default.factory()
        value, found = structure(converter.unstructure(default), field.type, field.name)
        if not found:
            found = check_field(field, value, field.name)
        problems += [p.render() for p in found]
    return problems


def check_params_defaults(spec: Any, params_cls: type | None) -> None:
    """Raise :class:`SpecContractError` when a default of ``params_cls`` fails its own declaration."""
    if params_cls is None or not attrs.has(params_cls):
        return
    problems = params_default_problems(params_cls)
    if problems:
        raise SpecContractError(
            f"{who(spec)}: its params class {params_cls.__name__} has defaults that fail their own declaration "
            f"({'; '.join(problems)}); fix the default or the declaration in the plugin")


def check_pair_transform(spec: Any, built_or_class: Any) -> None:
    """A regularizer's ``transforms_pair`` flag must agree with its ``transform_pair`` method."""
    if spec.kind != "regularizer":
        return
    has_method = callable(getattr(built_or_class, "transform_pair", None))
    if has_method and not spec.transforms_pair:
        raise SpecContractError(
            f"{who(spec)}: has a transform_pair method, but its RegularizerSpec does not say "
            f"transforms_pair=True, so the method would never be called; add transforms_pair=True to the spec")
    if spec.transforms_pair and not has_method:
        raise SpecContractError(
            f"{who(spec)}: its RegularizerSpec says transforms_pair=True, but the built regularizer has no "
            f"transform_pair(z, target, ctx) method; add the method or drop the flag")


def check_at_registration(spec: Any) -> None:
    """Everything knowable about ``spec`` without importing anything (see the module docstring)."""
    if not isinstance(spec.params, str):
        check_params_defaults(spec, spec.params if attrs.has(spec.params) else None)
    if isinstance(spec.factory, type):
        check_pair_transform(spec, spec.factory)


def find_module_spec(name: str) -> Any:
    """The ``ModuleSpec`` that ``import name`` would use, or ``None``; imports nothing (unlike
    ``importlib.util.find_spec``, not even the parent packages: a plugin package's ``__init__`` may import
    torch)."""
    if name in sys.modules:
        return getattr(sys.modules[name], "__spec__", None) or importlib.machinery.ModuleSpec(name, None)
    parts = name.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
        for i in range(1, len(parts)):
            if spec is None or spec.submodule_search_locations is None:
                return None
            full = ".".join(parts[: i + 1])
            if full in sys.modules:
                spec = getattr(sys.modules[full], "__spec__", None)
            elif ".".join(parts[:i]) in sys.modules:
                spec = importlib.util.find_spec(full)  # the parent is imported already: costs nothing
            else:
                spec = importlib.machinery.PathFinder.find_spec(full, list(spec.submodule_search_locations))
    except (ImportError, ValueError):
        return None
    return spec


def module_exists(name: str) -> bool:
    """Whether ``import name`` could find the module, without importing it (see :func:`find_module_spec`)."""
    return find_module_spec(name) is not None


def lazy_reference_problems(spec: Any) -> list[str]:
    """One message per lazy reference of ``spec`` (factory, params, facts) whose module cannot be found."""
    out = []
    for what in ("factory", "params", "facts"):
        ref = getattr(spec, what)
        if not isinstance(ref, str):
            continue
        module, sep, attr = ref.partition(":")
        if not sep or not module or not attr:
            out.append(f"{who(spec)}: its {what} {ref!r} is not a 'package.module:attribute' reference")
        elif not module_exists(module):
            out.append(f"{who(spec)}: its {what} {ref!r} names the module {module!r}, which cannot be found "
                       f"(a typo in the spec, or the plugin's package is not fully installed)")
    return out
