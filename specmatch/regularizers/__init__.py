"""The built-in latent regularizers, one module per term.

Each term module holds everything about its term: the params class, the facts function (what ``validate``
checks, without torch), the ``nn.Module`` that the engine calls, the term's own math, the factory and the
``@hookimpl`` that registers it, exactly as a third-party plugin would (``specmatch.plugins.BUILTIN_PLUGINS``
lists the term modules). Importing a term module imports no torch: its math imports torch inside the
functions, and its ``nn.Module`` classes are defined on first use (:mod:`specmatch.regularizers.lazy`).

- :mod:`~specmatch.regularizers.kl`: SD-VAE's KL to N(0, I).
- :mod:`~specmatch.regularizers.esm`: Encoding Spectrum Matching (math in :mod:`specmatch.spectral`).
- :mod:`~specmatch.regularizers.dsm`: Decoding Spectrum Matching (math in :mod:`specmatch.spectral`).
- :mod:`~specmatch.regularizers.vavae`: VA-VAE's vision-foundation loss.
- :mod:`~specmatch.regularizers.eqvae`: EQ-VAE's scale-and-rotate pair transform.
- :mod:`~specmatch.regularizers.scale_equivariance`: decode a downsampled latent, match the downsampled image.
- :mod:`~specmatch.regularizers.draws`: the control draws they share (per-step generator only).
"""
