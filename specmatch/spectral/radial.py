"""Radial power spectra: channel-averaged DCT power, averaged in corner-normalised radial bins."""

from __future__ import annotations

from typing import Optional

import torch

from specmatch.spectral.cache import cached_operator
from specmatch.spectral.dct import dct_2d_unchecked
from specmatch.spectral.options import SpectrumOptions, check_tensor, compute_dtype


def radial_bin_index(h: int, w: int, n_bins: int) -> torch.Tensor:
    """Corner-normalised radial bin of every DCT coefficient, an (h, w) int64 tensor with values in [0, n_bins).

    ``r = sqrt(u^2 + v^2)``, ``r_max = sqrt((h-1)^2 + (w-1)^2)`` (the corner, at least 1) and
    ``bin = min(floor(n_bins * r / r_max), n_bins - 1)``.

    Evaluated exactly in integers: ``floor(n r / r_max) = isqrt(floor(n^2 (u^2 + v^2) / r_max^2))``. The
    authors' float32 expression agrees everywhere except on coefficients lying exactly on a bin edge, which
    happens only for a few unusual (grid, n_bins) pairs (e.g. (9, 9) on 16x16 with 5 bins) and none used by
    the method; there float32 rounding, which differs between PyTorch's CPU and GPU kernels, decides the side.
    """
    u = torch.arange(h, dtype=torch.int64).view(h, 1)
    v = torch.arange(w, dtype=torch.int64).view(1, w)
    corner_sq = max((h - 1) ** 2 + (w - 1) ** 2, 1)
    ratio_sq = (n_bins**2 * (u**2 + v**2)) // corner_sq  # floor((n r / r_max)^2)
    # Integer square root via float64 sqrt, then corrected by one step either way (exact for any size).
    root = torch.sqrt(ratio_sq.to(torch.float64)).floor().to(torch.int64)
    root = root - (root * root > ratio_sq).to(torch.int64)
    root = root + ((root + 1) * (root + 1) <= ratio_sq).to(torch.int64)
    return root.clamp(max=n_bins - 1)


@cached_operator
def band_average_matrix(
    h: int, w: int, n_bins: int, drop_dc: bool, eps: float, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """(h*w, n_bins) matrix that turns a flattened power map into mean power per radial bin, cached.

    Entry ``(i, k)`` is ``1 / (n_k + eps)`` when coefficient ``i`` lies in bin ``k`` (``n_k`` = bin
    population, counted with DC) and 0 otherwise, so ``P.flatten(1) @ M`` is the authors' ``scatter_add`` sum
    divided by ``max(n_k, 1) + eps``; an empty bin gives 0. With ``drop_dc`` the DC row is zero, which is the
    same as setting ``P(0, 0) = 0`` before binning and also blocks the gradient there.
    """
    bins = radial_bin_index(h, w, n_bins).view(-1)
    counts = torch.bincount(bins, minlength=n_bins).to(torch.float64).clamp_min(1.0)
    m = torch.zeros(h * w, n_bins, dtype=torch.float64)
    m[torch.arange(h * w), bins] = 1.0 / (counts[bins] + eps)
    if drop_dc:
        m[0] = 0.0
    return m.to(device=device, dtype=dtype)


def band_power(coeffs: torch.Tensor, options: SpectrumOptions) -> torch.Tensor:
    """DCT coefficients (B, C, h, w) of the *uncentred* signal -> mean power per radial bin (B, n_bins).

    ``P = max(mean_c X^2, eps)``, then bin means. Centring by the spatial mean changes only the DC coefficient
    of an orthonormal DCT (it becomes 0), so instead of subtracting the mean the DC power is set directly:
    0 with ``remove_dc`` (the zero DC row of the binning matrix); else ``eps`` (the clamp of a zero) for
    ``center="mean"``; else the true DC power.
    """
    _, _, h, w = coeffs.shape
    n_bins, eps = options.n_bins, options.eps
    power = coeffs.square().mean(dim=1).clamp_min(eps).flatten(1)
    drop_dc = options.remove_dc or options.center == "mean"
    bands = power @ band_average_matrix(h, w, n_bins, drop_dc, eps, power.device, power.dtype)
    if options.center == "mean" and not options.remove_dc:
        # The centred DC power is the clamp value eps: add its share to bin 0 as a constant.
        dc_row = band_average_matrix(h, w, n_bins, False, eps, power.device, power.dtype)[0]
        bands = bands + eps * dc_row
    return bands


def radial_band_power(x: torch.Tensor, options: Optional[SpectrumOptions] = None, **fields) -> torch.Tensor:
    """Mean DCT power per corner-normalised radial bin (method.md s2.2 steps 2-3).

    Args:
        x: (B, C, h, w) signal (image or latent), any range.
        options: a :class:`SpectrumOptions`; ``n_bins``, ``center``, ``remove_dc`` and ``eps`` apply.
        **fields: :class:`SpectrumOptions` fields that replace those of ``options`` (or of the defaults).

    Returns:
        (B, n_bins) tensor ``s_k = sum_{bin(u,v)=k} P(u,v) / (max(n_k, 1) + eps)`` with
        ``P = max(mean_c DCT(x)^2, eps)`` (see :func:`radial_bin_index`). Empty bins are 0. float32 for half
        inputs (fp32 island), else ``x.dtype``. Differentiable.
    """
    options = SpectrumOptions.resolve(options, fields)
    check_tensor("x", x)
    return band_power(dct_2d_unchecked(x.to(compute_dtype(x))), options)
