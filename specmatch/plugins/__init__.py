"""Built-in plugins. Each module is written exactly like a third-party plugin: ``@hookimpl`` functions that
return spec records, light at import (torch and model code are imported inside factories)."""

BUILTIN_PLUGINS: tuple[str, ...] = (
    "specmatch.plugins.datasets",
    "specmatch.plugins.autoencoders",
    "specmatch.plugins.regularizers",
    "specmatch.plugins.reconstruction",
    "specmatch.plugins.alignment",
    "specmatch.plugins.diffusion",
)
