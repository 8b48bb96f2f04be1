"""Spectral functions of Spectrum Matching: the ESM loss and the DSM block low-pass.

Exact, fast re-implementations of the authors' official functions (``docs/spectral.md``, ``method.md``
sections 2-3):

* :func:`esm_loss` / :func:`esm_distributions` (``esm``) - the encoding spectrum matching loss: the latent's
  radial DCT power spectrum is matched to a flattened copy of the image's. Settings: :class:`SpectrumOptions`
  (``options``), given as a record or as keywords.
* :func:`radial_band_power`, :func:`radial_bin_index` (``radial``) - channel-averaged DCT power averaged in
  corner-normalised radial bins.
* :func:`image_to_latent_grid` (``resize``) - the fixed "blur then bicubic" map of an image to the latent grid.
* :func:`block_lowpass` / :func:`lowpass_mask` (``dsm``) - the decoding spectrum matching block-DCT low-pass.
* :func:`dct_2d` (``dct``) - the orthonormal 2-D DCT-II.

Every data-independent step is a cached matrix (``cache``), so a call is a few matrix products. All
functions are differentiable and run on any device.

**fp32 island.** The spectral statistics are computed in float32 at least: float16/bfloat16 inputs are
upcast inside, and :func:`radial_band_power`, :func:`esm_distributions`, :func:`esm_loss` and
:func:`image_to_latent_grid` return float32 for them (float64 inputs stay float64).
:func:`block_lowpass` also computes in float32 but returns the input's dtype, because its output is data.
"""

from specmatch.spectral.dct import dct_2d
from specmatch.spectral.dsm import block_lowpass, lowpass_mask
from specmatch.spectral.esm import esm_distributions, esm_loss
from specmatch.spectral.options import REFERENCE_BLUR, SpectralArgumentError, SpectrumOptions
from specmatch.spectral.radial import radial_band_power, radial_bin_index
from specmatch.spectral.resize import image_to_latent_grid

__all__ = [
    "SpectralArgumentError",
    "SpectrumOptions",
    "REFERENCE_BLUR",
    "radial_band_power",
    "esm_distributions",
    "esm_loss",
    "image_to_latent_grid",
    "block_lowpass",
    "lowpass_mask",
    "dct_2d",
    "radial_bin_index",
]
