"""Built-in plugins. Each module is written exactly like a third-party plugin: ``@hookimpl`` functions that
return spec records, light at import (torch and model code are imported inside factories).

Core loads them by module name (``BUILTIN_PLUGINS``, defined in :mod:`specmatch.core.plugins`), so the
import arrows run one way: plugins import core, core never imports plugins."""

from specmatch.core.plugins import BUILTIN_PLUGINS

__all__ = ["BUILTIN_PLUGINS"]
