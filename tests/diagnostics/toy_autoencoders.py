"""Tiny autoencoders whose diagnostics are known by construction."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from specmatch.nn.posterior import DeterministicPosterior


class PoolAutoencoder(nn.Module):
    """encode = f x f average pooling (plus an optional 1x1 channel map), decode = nearest upsampling (and the
    map's pseudo-inverse). With no map: exactly scale-1/2 (2x2 area) and rot90 equivariant."""

    def __init__(self, factor: int = 2, channel_map: torch.Tensor | None = None, latent_conv: bool = False,
                 decoder_noise: float = 0.0):
        super().__init__()
        self.factor = factor
        self.channel_map = channel_map  # (C_latent, 3)
        self.decoder_noise = decoder_noise
        self.conv = None
        if latent_conv:  # a fixed random 3x3 kernel: neither scale nor rotation equivariant
            g = torch.Generator().manual_seed(1)
            self.conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)
            with torch.no_grad():
                self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g))

    def encode(self, x):
        z = F.avg_pool2d(x, self.factor) if self.factor > 1 else x
        if self.channel_map is not None:
            z = torch.einsum("lc,nchw->nlhw", self.channel_map.to(z.dtype), z)
        if self.conv is not None:
            z = self.conv(z)
        return DeterministicPosterior(z)

    def decode(self, z):
        if self.channel_map is not None:
            z = torch.einsum("cl,nlhw->nchw", torch.linalg.pinv(self.channel_map).to(z.dtype), z)
        x = F.interpolate(z, scale_factor=self.factor, mode="nearest") if self.factor > 1 else z
        if self.decoder_noise:
            g = torch.Generator().manual_seed(123)
            x = x + self.decoder_noise * torch.randn(x.shape, generator=g)
        return x


def blocky_images(n: int, side: int, block: int, seed: int = 0) -> torch.Tensor:
    """Random images in [-1, 1] constant on block x block squares."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, side // block, side // block, generator=g) * 2 - 1
    return F.interpolate(low, scale_factor=block, mode="nearest")


def small_features(images: torch.Tensor) -> torch.Tensor:
    """A stand-in feature network: 4x4 average-pooled pixels and squared pixels (96 features), float64."""
    x = images.float()
    return torch.cat([F.adaptive_avg_pool2d(x, 4).flatten(1), F.adaptive_avg_pool2d(x * x, 4).flatten(1)], 1).double()
