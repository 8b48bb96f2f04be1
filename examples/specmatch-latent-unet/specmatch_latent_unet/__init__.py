"""specmatch-latent-unet: an example specmatch plugin package.

Importing this package is cheap (no torch); specmatch finds the plugin through the ``specmatch`` entry point
declared in ``pyproject.toml``, which names :mod:`specmatch_latent_unet.plugin`.
"""

__version__ = "0.1.0"
