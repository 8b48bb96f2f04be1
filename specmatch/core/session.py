"""The per-process plugin session: plugins are discovered once, on first use, never at import."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .plugins import LoadedPlugins, load_plugins
from .registry import Registry

_CACHE: dict[tuple, Registry] = {}


def get_registry(*, plugin_files: Iterable[str | Path] = (), disabled: Iterable[str] = (),
                 autoload: bool | None = None) -> Registry:
    """The registry for these plugin settings, built once per process (environment switches included)."""
    import os

    files = tuple(str(Path(f).expanduser().resolve()) for f in plugin_files)
    env = tuple(os.environ.get(v, "") for v in ("SPECMATCH_DISABLE_PLUGIN_AUTOLOAD", "SPECMATCH_DISABLE_PLUGINS",
                                                 "SPECMATCH_PLUGINS"))
    key = (files, tuple(sorted(disabled)), autoload, env)
    if key not in _CACHE:
        plugins: LoadedPlugins = load_plugins(plugin_files=files, disabled=disabled, autoload=autoload)
        _CACHE[key] = Registry.build(plugins)
    return _CACHE[key]


def clear_cache() -> None:
    """Forget discovered plugins (tests that install or remove plugins call this)."""
    _CACHE.clear()
