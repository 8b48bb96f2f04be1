"""Finding, filtering and loading plugins, and remembering where each came from.

Start-up order (``load_plugins``):

1. a fresh ``pluggy.PluginManager`` with specmatch's hook specs;
2. built-in plugin modules (:data:`BUILTIN_PLUGINS`, imported by name like entry points, so core never
   imports ``specmatch.plugins`` itself), registered like any other plugin;
3. unless ``SPECMATCH_DISABLE_PLUGIN_AUTOLOAD`` is set: entry points of group ``specmatch``, de-duplicated by
   distribution, filtered by the allow-list (``SPECMATCH_PLUGINS``) and block-list
   (``SPECMATCH_DISABLE_PLUGINS`` / ``--disable-plugin``), sorted, each loaded inside ``try``;
4. local plugin files (``--plugin-file`` or a recipe's ``[plugins] files``);
5. per plugin: pluggy's ``check_pending`` right after registering it, so a ``@hookimpl`` that matches no
   hook spec (a typo, or a hook this specmatch does not have) breaks that plugin; ``optionalhook=True``
   implementations are exempt, as in pluggy. A function named like a hook but without ``@hookimpl`` (pluggy
   ignores it silently), and a plugin that implements no hook at all, break it too: it would register
   nothing, and the user would only see "unknown component" later.

A plugin that fails any step becomes a *broken* record (reason and traceback kept) instead of breaking the
others. Nothing here runs at ``import specmatch``: commands call ``load_plugins`` when they need it.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import importlib.util
import inspect
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable

import attrs
import pluggy

from . import hookspecs
from .markers import PROJECT_NAME
from .kinds import KINDS
from .specs import Provider

ENTRY_POINT_GROUP = "specmatch"
ENV_AUTOLOAD_OFF = "SPECMATCH_DISABLE_PLUGIN_AUTOLOAD"
ENV_DISABLE = "SPECMATCH_DISABLE_PLUGINS"
ENV_ALLOW = "SPECMATCH_PLUGINS"

#: The built-in plugin modules, in registration order (re-exported as ``specmatch.plugins.BUILTIN_PLUGINS``).
BUILTIN_PLUGINS: tuple[str, ...] = (
    "specmatch.plugins.datasets",
    "specmatch.plugins.autoencoders",
    # one module per latent regularizer, each holding its whole term
    "specmatch.regularizers.kl",
    "specmatch.regularizers.esm",
    "specmatch.regularizers.dsm",
    "specmatch.regularizers.vavae",
    "specmatch.regularizers.eqvae",
    "specmatch.regularizers.scale_equivariance",
    "specmatch.plugins.reconstruction",
    "specmatch.plugins.alignment",
    "specmatch.alignment.repa",
    "specmatch.plugins.diffusion",
    "specmatch.plugins.denoisers",
)


def _norm_dist(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def _env_list(var: str) -> list[str]:
    return [_norm_dist(x) for x in os.environ.get(var, "").split(",") if x.strip()]


def _autoload_disabled() -> bool:
    return os.environ.get(ENV_AUTOLOAD_OFF, "").strip().lower() not in ("", "0", "false", "no")


@attrs.frozen(kw_only=True)
class PluginRecord:
    """One plugin as ``plugins list`` shows it."""

    name: str  # registration name: "<dist>:<entry point>", a builtin module name, or "file:<path>"
    distribution: str
    version: str
    entry_point: str = ""
    location: str = ""
    builtin: bool = False
    editable: bool = False  # an editable install (its direct_url.json says so)
    status: str = "active"  # active | disabled | broken
    reason: str = ""
    details: str = ""  # traceback of a broken plugin

    @property
    def provider(self) -> Provider:
        return Provider(distribution=self.distribution, version=self.version, plugin=self.name,
                        builtin=self.builtin, location=self.location, editable=self.editable)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "distribution": self.distribution, "version": self.version,
            "entry_point": self.entry_point, "location": self.location, "builtin": self.builtin,
            "editable": self.editable, "status": self.status, "reason": self.reason,
        }


@attrs.define
class LoadedPlugins:
    """The plugin manager plus every plugin's record (active, disabled and broken)."""

    manager: pluggy.PluginManager
    records: list[PluginRecord]

    def record_of(self, plugin_name: str) -> PluginRecord | None:
        return next((r for r in self.records if r.name == plugin_name), None)

    def mark_broken(self, plugin_name: str, reason: str, details: str = "") -> None:
        """A plugin found broken after loading (a hook raised): its hooks are not called again."""
        if self.manager.get_plugin(plugin_name) is not None:
            self.manager.unregister(name=plugin_name)
        self.records[:] = [attrs.evolve(r, status="broken", reason=reason, details=details)
                           if r.name == plugin_name else r for r in self.records]

    @property
    def broken(self) -> list[PluginRecord]:
        return [r for r in self.records if r.status == "broken"]


def _specmatch_version() -> str:
    from specmatch import __version__

    return __version__


def _hook_names() -> set[str]:
    return {name for name in dir(hookspecs) if name.startswith("specmatch_")}


def _unknown_hook_problems(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    """Empty unless ``check_pending`` rejects ``plugin``; then one message per unknown hook, with a suggestion."""
    try:
        pm.check_pending()  # earlier plugins passed this check, so only ``plugin`` can fail it
        return []
    except pluggy.PluginValidationError:
        pass
    known = sorted(_hook_names())
    problems = []
    # check_pending stops at the first unknown hook; name them all
    for caller in pm.get_hookcallers(plugin):
        if caller.has_spec() or all(impl.optionalhook for impl in caller.get_hookimpls()
                                    if impl.plugin is plugin):
            continue
        close = difflib.get_close_matches(caller.name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"declares unknown hook {caller.name!r}{hint}")
    return problems


def _unmarked_hooks(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    """Hook-named functions of ``plugin`` that lack ``@hookimpl``: pluggy skips them without a word."""
    out = []
    for name in sorted(_hook_names()):
        value = getattr(plugin, name, None)
        if callable(value) and pm.parse_hookimpl_opts(plugin, name) is None:
            out.append(name)
    return out


def _would_register(plugin: Any, hook: str) -> str:
    """`` (which would register sampler 'x')``: what an unmarked registration hook returns, for the message."""
    if hook not in hook_kinds():
        return ""
    try:
        names = [f"{getattr(s, 'kind', '?')} {getattr(s, 'name', s)!r}" for s in getattr(plugin, hook)() or ()]
    except Exception:  # noqa: BLE001 - only decorates the message; the missing marker is the problem
        return ""
    return f" (which would register {', '.join(names)})" if names else ""


def _registers_nothing_problem(pm: pluggy.PluginManager, plugin: Any) -> str:
    """Why ``plugin`` would contribute nothing (``""`` when it implements at least one hook properly)."""
    unmarked = _unmarked_hooks(pm, plugin)
    if unmarked:
        listed = ", ".join(f"{name}{_would_register(plugin, name)}" for name in unmarked)
        head = "registers nothing: " if not pm.get_hookcallers(plugin) else ""
        return (f"{head}{listed} {'is' if len(unmarked) == 1 else 'are'} defined without @hookimpl, so "
                f"specmatch never calls {'it' if len(unmarked) == 1 else 'them'} (likely cause: the decorator was "
                f"forgotten; add `from specmatch import hookimpl` and `@hookimpl` above each hook function)")
    if not pm.get_hookcallers(plugin):
        return ("registers nothing: it has no @hookimpl function (likely cause: the entry point or plugin file "
                "names a module other than the one with the hooks)")
    return ""


def _module_location(obj: Any) -> str:
    try:
        return str(inspect.getfile(obj))
    except TypeError:
        return ""


def _requires_problem(dist: md.Distribution) -> str:
    """Non-empty when the distribution's ``Requires-Dist: specmatch...`` excludes this specmatch."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import Version

    for line in dist.requires or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if _norm_dist(req.name) != PROJECT_NAME or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        mine = _specmatch_version()
        if req.specifier and not req.specifier.contains(Version(mine), prereleases=True):
            return f"requires specmatch{req.specifier} but specmatch {mine} is installed"
    return ""


def _is_editable(dist: md.Distribution) -> bool:
    """True for ``pip install -e`` (PEP 610's ``direct_url.json`` with ``dir_info.editable``)."""
    import json

    try:
        info = json.loads(dist.read_text("direct_url.json") or "{}")
    except (ValueError, OSError):
        return False
    return bool(isinstance(info, dict) and isinstance(info.get("dir_info"), dict)
                and info["dir_info"].get("editable"))


def _entry_points() -> list[md.EntryPoint]:
    eps = md.entry_points(group=ENTRY_POINT_GROUP)
    seen: set[tuple[str, str]] = set()
    unique = []
    for ep in eps:
        dist = _norm_dist(ep.dist.name) if ep.dist is not None else "unknown"
        key = (dist, ep.name)
        if key in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(key)
        unique.append(ep)
    return sorted(unique, key=lambda ep: (_norm_dist(ep.dist.name) if ep.dist else "", ep.name))


def _load_file(path: Path) -> ModuleType:
    module_name = "specmatch_local_" + "".join(c if c.isalnum() else "_" for c in str(path.resolve()))
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def _register(pm: pluggy.PluginManager, plugin: Any, record: PluginRecord) -> PluginRecord:
    """Register one plugin object; any failure turns its record into a broken one."""
    try:
        pm.register(plugin, name=record.name)
    except Exception as exc:  # pluggy validation (bad hook signature) or a duplicate name
        return attrs.evolve(record, status="broken", reason=f"{type(exc).__name__}: {exc}",
                            details=traceback.format_exc())
    problems = _unknown_hook_problems(pm, plugin)
    nothing = _registers_nothing_problem(pm, plugin)
    if nothing:
        problems.append(nothing)
    if problems:
        pm.unregister(plugin)
        return attrs.evolve(record, status="broken", reason="; ".join(problems))
    return record


def load_plugins(*, plugin_files: Iterable[str | Path] = (), disabled: Iterable[str] = (),
                 autoload: bool | None = None, builtins: bool = True) -> LoadedPlugins:
    """Discover and register plugins; see the module docstring for the order."""
    pm = new_manager()
    records: list[PluginRecord] = []
    version = _specmatch_version()
    blocked = set(_env_list(ENV_DISABLE)) | {_norm_dist(d) for d in disabled}
    allowed = set(_env_list(ENV_ALLOW))

    for module_name in BUILTIN_PLUGINS if builtins else ():
        record = PluginRecord(name=module_name, distribution=PROJECT_NAME, version=version, builtin=True)
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # a broken built-in is a bug, but still must not hide the others
            records.append(attrs.evolve(record, status="broken", reason=f"{type(exc).__name__}: {exc}",
                                        details=traceback.format_exc()))
            continue
        records.append(_register(pm, module, attrs.evolve(record, location=_module_location(module))))

    if autoload is None:
        autoload = not _autoload_disabled()
    if autoload:
        for ep in _entry_points():
            dist_name = ep.dist.name if ep.dist is not None else "unknown"
            dist_version = ep.dist.version if ep.dist is not None else "?"
            nd = _norm_dist(dist_name)
            record = PluginRecord(name=f"{nd}:{ep.name}", distribution=nd, version=dist_version,
                                  entry_point=f"{ep.name} = {ep.value}",
                                  editable=_is_editable(ep.dist) if ep.dist is not None else False)
            if nd in blocked or record.name in blocked:
                records.append(attrs.evolve(record, status="disabled", reason="blocked by the disable list"))
                continue
            if allowed and nd not in allowed and record.name not in allowed:
                records.append(attrs.evolve(record, status="disabled", reason=f"not in {ENV_ALLOW}"))
                continue
            skew = _requires_problem(ep.dist) if ep.dist is not None else ""
            if skew:
                records.append(attrs.evolve(record, status="broken", reason=skew))
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                records.append(attrs.evolve(record, status="broken",
                                            reason=f"import failed: {type(exc).__name__}: {exc}",
                                            details=traceback.format_exc()))
                continue
            records.append(_register(pm, plugin, attrs.evolve(record, location=_module_location(plugin))))

    seen_files: set[Path] = set()
    for file in plugin_files:
        path = Path(file).expanduser().resolve()
        if path in seen_files:  # e.g. both --plugin-file and the recipe's [plugins] files name it
            continue
        seen_files.add(path)
        record = PluginRecord(name=f"file:{path}", distribution=f"local file {path.name}", version="-",
                              location=str(path))
        if not path.is_file():
            records.append(attrs.evolve(record, status="broken", reason=f"plugin file {path} does not exist"))
            continue
        try:
            module = _load_file(path)
        except Exception as exc:
            records.append(attrs.evolve(record, status="broken",
                                        reason=f"import failed: {type(exc).__name__}: {exc}",
                                        details=traceback.format_exc()))
            continue
        records.append(_register(pm, module, record))

    return LoadedPlugins(manager=pm, records=records)


def hook_kinds() -> dict[str, str]:
    """hook name -> kind name."""
    return {k.hook: k.name for k in KINDS.values()}
