"""Built-in plugins. Each module is written exactly like a third-party plugin: ``@hookimpl`` functions that
return spec records, light at import (torch and model code are imported inside factories)."""

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
    "specmatch.plugins.diffusion",
)
