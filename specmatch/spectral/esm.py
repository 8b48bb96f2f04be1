"""ESM, encoding spectrum matching (the authors' ``utils_DCT.latent_spectral_reg_dct``, method.md s2).

The latent's radial DCT power spectrum is matched to a copy of the image's, flattened by the tilt
``(k + 1) ** delta``. Only the latent receives gradient; the image side runs without autograd.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from specmatch.spectral.cache import cached_operator
from specmatch.spectral.dct import dct_2d_unchecked
from specmatch.spectral.options import SpectralArgumentError, SpectrumOptions, check_tensor, compute_dtype
from specmatch.spectral.radial import band_power
from specmatch.spectral.resize import image_dct_on_grid


@cached_operator
def _tilt(n_bins: int, delta: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Step 4 factors ``(k + 1) ** delta`` for k = 0 .. n_bins - 1."""
    return torch.arange(1, n_bins + 1, dtype=torch.float64).pow(delta).to(device=device, dtype=dtype)


def _tail_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """dtype of the tiny (B, n_bins) tail: tilt, log, normalise and KL.

    The KL of two close distributions is ill-conditioned: merely rounding p and q to float32 moves an ESM loss
    of 0.01 by ~5e-6 relative. The tail costs nothing, so it runs in float64 where the device has it.
    """
    return torch.float64 if device.type in ("cpu", "cuda") else dtype


def _to_distribution(bands: torch.Tensor, options: SpectrumOptions) -> torch.Tensor:
    """Steps 5-6: optional ``log(1 + s + eps)``, then ``s / (sum_k s_k + eps)``.

    The authors write ``max(s, 0)``; band powers are means of powers clamped at eps > 0, so s >= 0 (and so is
    ``log(1 + s + eps)``) and that clamp never acts. It is left out.
    """
    if options.log_power:
        bands = torch.log1p(bands + options.eps)
    return bands / (bands.sum(dim=1, keepdim=True) + options.eps)


def _check_inputs(image: torch.Tensor, latent: torch.Tensor) -> None:
    check_tensor("image", image)
    check_tensor("latent", latent)
    if image.shape[0] != latent.shape[0]:
        raise SpectralArgumentError(
            f"image and latent need the same batch size, got image {tuple(image.shape)} "
            f"and latent {tuple(latent.shape)}"
        )


def _distributions(image: torch.Tensor, latent: torch.Tensor, options: SpectrumOptions):
    """Target p (no gradient) and latent q, both (B, n_bins) in the tail dtype."""
    _check_inputs(image, latent)
    _, _, h, w = latent.shape
    dtype = compute_dtype(image, latent)
    tail = _tail_dtype(latent.device, dtype)
    with torch.no_grad():
        coeffs = image_dct_on_grid(image.detach().to(dtype), h, w, options.blur_at(h))
        target_bands = band_power(coeffs, options).to(tail) * _tilt(options.n_bins, options.delta, latent.device, tail)
        p = _to_distribution(target_bands, options)
    q = _to_distribution(band_power(dct_2d_unchecked(latent.to(dtype)), options).to(tail), options)
    return p, q


def esm_distributions(
    image: torch.Tensor, latent: torch.Tensor, options: Optional[SpectrumOptions] = None, **fields
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Target and latent radial spectrum distributions of ESM (method.md s2.2 steps 1-6).

    Args:
        image: (B, 3, H, W) images in [-1, 1]. Treated as a constant (no gradient).
        latent: (B, C, h, w) latent (the sampled posterior in the authors' training). Carries the gradient.
        options: a :class:`SpectrumOptions` (``loss`` is not used here).
        **fields: :class:`SpectrumOptions` fields that replace those of ``options`` (or of the defaults).

    Returns:
        ``(p, q)``: target p (B, n_bins), detached, and latent q (B, n_bins), each ``s / (sum s + eps)``.
        float32 for half inputs (fp32 island), float64 for float64 inputs.
    """
    p, q = _distributions(image, latent, SpectrumOptions.resolve(options, fields))
    dtype = compute_dtype(image, latent)
    return p.to(dtype), q.to(dtype)


def esm_loss(
    image: torch.Tensor, latent: torch.Tensor, options: Optional[SpectrumOptions] = None, **fields
) -> torch.Tensor:
    """The ESM loss (the authors' ``latent_spectral_reg_dct``), a scalar; only ``latent`` receives gradient.

    ``loss="kl"``: ``mean_b sum_k p_k (log(p_k + eps) - log(q_k + eps))`` = KL(target || latent).
    ``loss="l2"``: ``mean((q - p)^2)`` over batch and bins. Arguments as :func:`esm_distributions`, e.g.
    ``esm_loss(x, z, delta=1.0, n_bins=16)`` or ``esm_loss(x, z, SpectrumOptions(delta=0.6))``.
    Returns float32 for half inputs (fp32 island), float64 for float64 inputs.
    """
    options = SpectrumOptions.resolve(options, fields)
    p, q = _distributions(image, latent, options)
    if options.loss == "l2":
        value = F.mse_loss(q, p)
    else:
        eps = options.eps
        value = (p * (torch.log(p + eps) - torch.log(q + eps))).sum(dim=1).mean()
    return value.to(compute_dtype(image, latent))
