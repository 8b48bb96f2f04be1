"""The wavelet-energy latent regularizer (torch; imported only when a run builds it).

A single-level orthonormal 2-D Haar transform splits each 2x2 block ``[[a, b], [c, d]]`` of a latent
channel into four coefficients::

    ll = (a + b + c + d) / 2     low-pass in both directions
    lh = (a + b - c - d) / 2     low along the width, high along the height: horizontal edges
    hl = (a - b + c - d) / 2     high along the width, low along the height: vertical edges
    hh = (a - b - c + d) / 2     high in both directions: diagonals

The transform is orthonormal, so the four bands hold exactly the energy (sum of squares) of the input.
With ``levels > 1`` the ``ll`` band is split again. The loss is the share of the latent's energy that sits in
the chosen high bands, summed over levels: 0 for a latent that is constant on 2**levels blocks, 1 for one
made only of detail. It is scale-invariant, so it shapes the latent's spectrum without shrinking it.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

BANDS = ("lh", "hl", "hh")


def haar_dwt2(x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One level of the orthonormal 2-D Haar transform.

    Args:
        x: (..., H, W) with even H and W.
    Returns:
        ``ll`` (..., H/2, W/2) and ``{"lh", "hl", "hh"}`` bands of the same shape.
    """
    height, width = x.shape[-2:]
    if height % 2 or width % 2:
        raise ValueError(f"the Haar transform needs even sides; got {height}x{width}")
    a = x[..., 0::2, 0::2]  # top-left of every 2x2 block
    b = x[..., 0::2, 1::2]  # top-right
    c = x[..., 1::2, 0::2]  # bottom-left
    d = x[..., 1::2, 1::2]  # bottom-right
    ll = (a + b + c + d) / 2
    bands = {"lh": (a + b - c - d) / 2, "hl": (a - b + c - d) / 2, "hh": (a - b - c + d) / 2}
    return ll, bands


def high_band_energy_ratio(z: torch.Tensor, *, levels: int = 1, bands: Iterable[str] = BANDS,
                           eps: float = 1e-12) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-sample share of ``z``'s energy in the chosen Haar high bands, summed over ``levels`` levels.

    Args:
        z: latents (B, C, H, W); H and W divisible by ``2**levels``.
        levels: decomposition levels (>= 1).
        bands: a subset of ``("lh", "hl", "hh")``.
        eps: guards the division for an all-zero latent.
    Returns:
        ``ratio`` (B,) in [0, 1], and per band its own share (B,) (the shares add up to ``ratio``).
    """
    bands = tuple(bands)
    height, width = z.shape[-2:]
    block = 2 ** levels
    if height % block or width % block:
        raise ValueError(f"wavelet-energy with levels={levels} needs latent sides divisible by {block}; "
                         f"got {height}x{width} (lower levels or change the resolution)")
    total = z.pow(2).flatten(1).sum(dim=1)
    per_band = {name: torch.zeros_like(total) for name in bands}
    ll = z
    for _ in range(levels):
        ll, highs = haar_dwt2(ll)
        for name in bands:
            per_band[name] = per_band[name] + highs[name].pow(2).flatten(1).sum(dim=1)
    denominator = total.clamp_min(eps)
    shares = {name: energy / denominator for name, energy in per_band.items()}
    ratio = sum(shares.values(), torch.zeros_like(total))
    return ratio, shares


class WaveletEnergyRegularizer(nn.Module):
    """:class:`specmatch.LatentRegularizer` penalising the high-band energy share of the sampled latent.

    ``loss`` returns the batch mean of :func:`high_band_energy_ratio` on ``inputs.z`` and logs each band's
    share. It has no parameters and no pair transform (its spec keeps ``transforms_pair=False``).
    """

    def __init__(self, *, levels: int = 1, bands: Iterable[str] = BANDS):
        super().__init__()
        bands = tuple(bands)
        if levels < 1:
            raise ValueError(f"levels must be >= 1; got {levels}")
        if not bands or set(bands) - set(BANDS) or len(set(bands)) != len(bands):
            raise ValueError(f"bands must be distinct items of {BANDS}; got {bands}")
        self.levels = levels
        self.bands = bands

    def loss(self, inputs: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ratio, shares = high_band_energy_ratio(inputs.z, levels=self.levels, bands=self.bands)
        return ratio.mean(), {f"energy_{name}": share.mean().detach() for name, share in shares.items()}
