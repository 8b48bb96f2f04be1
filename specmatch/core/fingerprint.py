"""What a component's code contributes to the stage keys, so a changed plugin re-runs the stages that use it.

A stage key hashes the recipe tables the stage depends on (:mod:`specmatch.core.plan`) and, for every
component those tables name, this fingerprint:

- kind and name, and the spec's own ``version`` (``ComponentSpec.version``, ``""`` when not declared);
- for a plugin distribution: its name and version (built-in components: neither, so a specmatch upgrade
  does not invalidate every run; their spec ``version`` marks deliberate changes);
- for a local plugin file, and for a distribution installed in editable mode (``pip install -e``, whose
  code changes without a new version): the bytes of its source files, namely

  - the plugin's module file (the local file, or the entry point's module);
  - for an editable install, every ``*.py`` file of the package folder that module belongs to (its
    top-level package, so helper modules count too);
  - the module files of the spec's ``factory``, ``params`` and ``facts`` (found without importing them).

Files outside those (data files, other installed packages) are not hashed. Besides the code, a stage key
holds the sha256 of every weights file its components declare they read (``Facts.files`` entries that are
files, not folders; a dataset's files excepted), so new weights under an old file name re-run the stage
(each file read once per process: :func:`specmatch.core.init_source.sha256_of`).
Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path
from typing import Any

from .init_source import resolve_path, sha256_of
from .spec_checks import find_module_spec
from .specs import BuildContext


def _module_file(ref: Any) -> Path | None:
    """The source file of a lazy ``"module:attr"`` reference or of an object's module (no import)."""
    if isinstance(ref, str):
        spec = find_module_spec(ref.partition(":")[0]) if ref.partition(":")[0] else None
        origin = getattr(spec, "origin", None)
        return Path(origin) if isinstance(origin, str) and origin.endswith(".py") else None
    if ref is None:
        return None
    try:
        return Path(inspect.getfile(ref))
    except TypeError:
        return None


def _package_root(module_file: Path) -> Path:
    """The top-level package folder holding ``module_file`` (the file itself for a lone module)."""
    folder, root = module_file.parent, None
    while (folder / "__init__.py").is_file():
        root, folder = folder, folder.parent
    return root if root is not None else module_file


def source_files(spec: Any) -> list[Path]:
    """The files whose bytes enter ``spec``'s fingerprint (empty unless local or editable)."""
    provider = spec.provider
    if provider is None or provider.builtin:
        return []
    local = provider.plugin.startswith("file:")
    if not (local or provider.editable):
        return []
    files: set[Path] = set()
    roots = [Path(provider.location)] if provider.location else []
    roots += [f for f in (_module_file(getattr(spec, what)) for what in ("factory", "params", "facts")) if f]
    for path in roots:
        if not path.is_file():
            continue
        files.add(path.resolve())
        if provider.editable:
            top = _package_root(path)
            if top.is_dir():
                files.update(p.resolve() for p in top.rglob("*.py") if "__pycache__" not in p.parts)
    return sorted(files)


def fingerprint(spec: Any) -> dict[str, Any]:
    """The JSON-able record that stands for ``spec``'s code in stage keys (see the module docstring)."""
    provider = spec.provider
    out: dict[str, Any] = {"kind": spec.kind, "name": spec.name, "version": spec.version}
    if provider is not None and not provider.builtin:
        out["distribution"] = provider.distribution
        out["distribution_version"] = provider.version
    files = source_files(spec)
    if files:
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")  # not the folder: runs move
        out["source_sha256"] = digest.hexdigest()
    return out


def weight_files(resolved: Any, path: str) -> list[Path]:
    """The files (not folders) a component declares it reads (``Facts.files``) that exist now, except a
    dataset's: the weights whose bytes decide what the component computes."""
    comp = resolved.components[path]
    if comp.kind == "data":  # data files can be huge; a dataset is keyed by its table (docs/engine.md)
        return []
    try:
        facts = comp.spec.facts_for(comp.params, BuildContext(recipe_dir=resolved.recipe_dir))
    except Exception:  # noqa: BLE001 - validate reports bad params; the key then holds the code only
        return []
    out = []
    for need in getattr(facts, "files", ()) or ():
        if need.folder or not need.path or "\0" in need.path:
            continue
        target = resolve_path(need.path, Path(resolved.recipe_dir))
        if target.is_file():
            out.append(target)
    return out


def components_hash(resolved: Any, paths: list[str]) -> str:
    """One hash over the fingerprints of the components at ``paths`` (missing paths are skipped) and the
    contents of the weights files they read (:func:`weight_files`), so other weights under the same file name
    re-run the stage."""
    parts: dict[str, Any] = {}
    for p in paths:
        if p not in resolved.components:
            continue
        parts[p] = fingerprint(resolved.components[p].spec)
        files = weight_files(resolved, p)
        if files:  # only then: keys of components that read no file stay as they were
            parts[p] = [parts[p], sorted(sha256_of(f) for f in files)]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
