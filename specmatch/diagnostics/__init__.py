"""Diffusability diagnostics of an autoencoder, one module per diagnostic (registered as ``diagnostic``
plugins in :mod:`specmatch.plugins.diagnostics`; definitions, sources and costs in docs/evaluation.md):

* ``latent_spectrum`` - radial DCT band distributions of images and latents (method.md s8), ``spectrum.png``.
* ``lowpass_rfid`` - FID and PSNR of decode(lowpass_k(z)) against lowpass_k(x) (DSM's block-DCT mask).
* ``noised_reconstruction`` - PSNR and rFID of decode(z + sigma * std_z * eps) over a sigma grid.
* ``equivariance`` - encoder and decoder relative errors under scale 1/2 and rot90.
* ``channel_eigenspectrum`` - eigenvalues, effective rank and condition number of the channel covariance.
* ``latent_pca`` - the 3-component PCA of latents as RGB (``latent_pca.png``) and its explained variance.

Shared helpers (batched encoding and decoding, rFID from images) are in ``common``.
"""
