"""The per-process plugin session: plugins are discovered once, on first use, never at import.

The command line records its plugin options here (:func:`configure`), so every recipe the process loads,
including the ones the engine loads itself (``analyze`` reads a run folder's recipe), sees the same
``--plugin-file``, ``--disable-plugin`` and ``--allow-recipe-plugins`` choices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .plugins import LoadedPlugins, load_plugins
from .registry import Registry

_CACHE: dict[tuple, Registry] = {}
_SETTINGS: dict[str, tuple | bool] = {"plugin_files": (), "disabled": (), "allow_recipe_plugins": False}


def configure(*, plugin_files: Iterable[str | Path] = (), disabled: Iterable[str] = (),
              allow_recipe_plugins: bool = False) -> None:
    """Process-wide plugin options (the command line's), added to every :func:`get_registry` call."""
    _SETTINGS.update(plugin_files=tuple(str(f) for f in plugin_files), disabled=tuple(disabled),
                     allow_recipe_plugins=allow_recipe_plugins)


def recipe_plugins_allowed() -> bool:
    """True when the user opted in to running a recipe's ``[plugins] files`` (``--allow-recipe-plugins``)."""
    return bool(_SETTINGS["allow_recipe_plugins"])


def get_registry(*, plugin_files: Iterable[str | Path] = (), disabled: Iterable[str] = (),
                 autoload: bool | None = None) -> Registry:
    """The registry for these plugin settings, built once per process (environment switches included)."""
    import os

    wanted = [*_SETTINGS["plugin_files"], *plugin_files]  # type: ignore[misc]
    files = tuple(dict.fromkeys(str(Path(f).expanduser().resolve()) for f in wanted))
    blocked = tuple(sorted({*_SETTINGS["disabled"], *disabled}))  # type: ignore[misc]
    env = tuple(os.environ.get(v, "") for v in ("SPECMATCH_DISABLE_PLUGIN_AUTOLOAD", "SPECMATCH_DISABLE_PLUGINS",
                                                 "SPECMATCH_PLUGINS"))
    key = (files, blocked, autoload, env)
    if key not in _CACHE:
        plugins: LoadedPlugins = load_plugins(plugin_files=files, disabled=blocked, autoload=autoload)
        _CACHE[key] = Registry.build(plugins)
    return _CACHE[key]


def clear_cache() -> None:
    """Forget discovered plugins and the command line's settings (tests that install or remove plugins)."""
    _CACHE.clear()
    configure()
