"""The registry: an immutable ``kind -> name -> spec`` map built from the registered plugins.

Built once per command from :func:`specmatch.core.plugins.load_plugins`. Each registration hook is called
per plugin, so a plugin whose hook raises, or returns a spec that contradicts its own code
(:mod:`specmatch.core.spec_checks`), is reported as broken without hiding the others' components.
Two different specs for one ``(kind, name)`` (or alias) raise :class:`PluginConflictError` naming every
provider; the same spec returned twice by one distribution counts once.
"""

from __future__ import annotations

import difflib
import fnmatch
import traceback
from typing import Iterable, Iterator

import attrs

from .errors import PluginConflictError, SpecmatchError
from .plugins import LoadedPlugins, hook_kinds
from .kinds import KINDS, SPEC_CLASSES
from .spec_checks import SpecContractError, check_at_registration
from .specs import PLUGIN_API, ComponentSpec, normalise_name


class UnknownComponentError(SpecmatchError):
    """A recipe or command named a component that no active plugin provides."""


@attrs.frozen
class Registry:
    specs: tuple[ComponentSpec, ...]
    plugins: LoadedPlugins

    @classmethod
    def build(cls, plugins: LoadedPlugins) -> "Registry":
        kinds_by_hook = hook_kinds()
        collected: list[ComponentSpec] = []
        broken: dict[str, str] = {}
        for hook_name, kind in kinds_by_hook.items():
            caller = getattr(plugins.manager.hook, hook_name)
            for impl in caller.get_hookimpls():
                record = plugins.record_of(impl.plugin_name)
                assert record is not None, impl.plugin_name
                try:
                    result = impl.function()
                    specs = list(result) if result is not None else []
                    for spec in specs:
                        _check_spec(spec, kind, hook_name)
                        check_at_registration(attrs.evolve(spec, provider=record.provider))
                except SpecContractError as exc:  # the spec contradicts its code: the message says how
                    broken[impl.plugin_name] = (str(exc), traceback.format_exc())
                    continue
                except Exception as exc:
                    broken[impl.plugin_name] = (f"hook {hook_name} failed: {type(exc).__name__}: {exc}",
                                                traceback.format_exc())
                    continue
                collected.extend(attrs.evolve(s, provider=record.provider) for s in specs)
        if broken:
            for name in broken:  # its other hooks (specmatch_validate_recipe) must not run either
                plugins.manager.unregister(name=name)
            plugins.records[:] = [
                attrs.evolve(r, status="broken", reason=broken[r.name][0], details=broken[r.name][1])
                if r.name in broken else r for r in plugins.records
            ]
            collected = [s for s in collected if s.provider.plugin not in broken]
        return cls(specs=tuple(_deduplicate(collected)), plugins=plugins)

    # -- lookups -------------------------------------------------------------------------------------
    def of_kind(self, kind: str) -> list[ComponentSpec]:
        return sorted((s for s in self.specs if s.kind == kind), key=lambda s: s.name)

    def names(self, kind: str) -> list[str]:
        return [s.name for s in self.of_kind(kind)]

    def find(self, kind: str, name: str) -> ComponentSpec | None:
        wanted = normalise_name(name)
        for spec in self.specs:
            if spec.kind == kind and (spec.name == wanted or wanted in spec.aliases):
                return spec
        return None

    def default(self, kind: str) -> ComponentSpec | None:
        """The spec a plugin declared ``default_for_kind`` for ``kind`` (at most one: checked at build)."""
        return next((s for s in self.specs if s.kind == kind and s.default_for_kind), None)

    def get(self, kind: str, name: str) -> ComponentSpec:
        spec = self.find(kind, name)
        if spec is None:
            raise UnknownComponentError(self.unknown_message(kind, name))
        return spec

    def unknown_message(self, kind: str, name: str) -> str:
        label = KINDS[kind].label if kind in KINDS else kind
        names = self.names(kind)
        all_names = names + [a for s in self.of_kind(kind) for a in s.aliases]
        close = difflib.get_close_matches(normalise_name(name), all_names, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        installed = ", ".join(names) if names else "none"
        msg = (f"unknown {label} {name!r}{hint} (installed: {installed}; "
               f"see `specmatch components list --kind {kind}`)")
        if self.plugins.broken:
            which = ", ".join(f"{r.name} ({r.reason})" for r in self.plugins.broken)
            msg += f"; note: broken plugins may have provided it: {which}"
        return msg

    def search(self, kind: str | None = None, pattern: str | None = None) -> list[ComponentSpec]:
        out = [s for s in self.specs if kind is None or s.kind == kind]
        if pattern:
            out = [s for s in out if fnmatch.fnmatch(s.name, pattern) or any(fnmatch.fnmatch(a, pattern)
                                                                              for a in s.aliases)]
        return sorted(out, key=lambda s: (list(KINDS).index(s.kind) if s.kind in KINDS else 99, s.name))


def _check_spec(spec: object, kind: str, hook_name: str) -> None:
    expected = SPEC_CLASSES[kind]
    if not isinstance(spec, expected):
        raise TypeError(f"{hook_name} must return {expected.__name__} records, got {spec!r}")
    if spec.default_for_kind and not KINDS[kind].defaulted:
        raise TypeError(f"{kind} {spec.name!r} declares default_for_kind, but a recipe must always name its "
                        f"{KINDS[kind].label} ({KINDS[kind].header} has no default)")
    if spec.api > PLUGIN_API:
        raise TypeError(f"{kind} {spec.name!r} needs plugin API {spec.api}; this specmatch supports "
                        f"{PLUGIN_API} (upgrade specmatch)")


def _identity(spec: ComponentSpec) -> tuple:
    """What makes two registrations 'the same spec' (provider distribution included)."""
    return (attrs.evolve(spec, provider=None), spec.provider.distribution if spec.provider else None)


def _deduplicate(specs: Iterable[ComponentSpec]) -> Iterator[ComponentSpec]:
    by_key: dict[tuple[str, str], list[ComponentSpec]] = {}
    for spec in specs:
        for key_name in (spec.name, *spec.aliases):
            by_key.setdefault((spec.kind, key_name), []).append(spec)
    conflicts = []
    for (kind, name), group in sorted(by_key.items()):
        distinct: dict[tuple, ComponentSpec] = {}
        for spec in group:
            distinct.setdefault(_identity(spec), spec)
        if len(distinct) > 1:
            conflicts.append((kind, name, list(distinct.values())))
    defaults: dict[str, dict[tuple, ComponentSpec]] = {}
    for spec in specs:
        if spec.default_for_kind:
            defaults.setdefault(spec.kind, {}).setdefault(_identity(spec), spec)
    messages = [_conflict_message(*c) for c in conflicts]
    messages += [_default_conflict_message(kind, list(group.values()))
                 for kind, group in sorted(defaults.items()) if len(group) > 1]
    if messages:
        raise PluginConflictError("\n".join(messages))
    seen = set()
    for spec in specs:
        ident = _identity(spec)
        if ident not in seen:
            seen.add(ident)
            yield spec


def _default_conflict_message(kind: str, specs: list[ComponentSpec]) -> str:
    listed = " and ".join(f"{s.name!r} from {s.provider} [{s.provider.plugin}]" for s in specs)
    return (f"several {KINDS[kind].label}s declare default_for_kind: {listed}; a recipe that omits "
            f"{KINDS[kind].header} would be ambiguous, so at most one may (disable or uninstall the others)")


def _conflict_message(kind: str, name: str, specs: list[ComponentSpec]) -> str:
    providers = [s.provider for s in specs]
    listed = " and ".join(f"{p} [{p.plugin}]" for p in providers)
    external = [p for p in providers if not p.builtin]
    target = external[-1] if external else providers[-1]
    if target.plugin.startswith("file:"):  # local files are not distributions: the block-list cannot name them
        remedy = f"remove the plugin file {target.location} (--plugin-file or the recipe's [plugins] files)"
    else:
        remedy = f"uninstall one or set SPECMATCH_DISABLE_PLUGINS={target.distribution}"
    return f"{KINDS[kind].label} {name!r} is provided by {listed}; {remedy}"
