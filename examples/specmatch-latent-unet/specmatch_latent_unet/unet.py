"""The latent-unet denoiser (torch; imported only when a run builds it).

Two levels: level 1 at the latent's resolution with ``channels`` features, level 2 at half resolution with
``channels * mult``. Each residual block is GroupNorm, SiLU, 3x3 conv, then GroupNorm whose output is scaled
and shifted per channel by the time + class embedding, SiLU, dropout, 3x3 conv, plus a skip (1x1 conv when
the width changes). The decoder concatenates the encoder's level-1 output (the U-Net skip). The last conv is
zero-initialised, so a fresh network predicts exactly zero.

The denoiser contract (docs/plugins.md, ``specmatch_denoisers``):

- ``forward(x, t, y=None, *, return_hidden_at=None)``; ``t`` (B,) or a scalar in [0, 1], 1 = noise;
- ``y`` in 0..num_classes, where index ``num_classes`` is the null class (``null_class``); ``y=None`` means
  the null class; an unconditional network given labels raises ``ValueError``; no label dropout here;
- taps ``tap_widths`` = (encoder level 1, middle at level 2, decoder level 1); ``return_hidden_at=k``
  returns ``(prediction, feature map (B, tap_widths[k-1], gh, gw))``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (B,) -> (B, dim): cos and sin of t at geometric frequencies 1 .. 1/10000."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    return nn.functional.pad(emb, (0, dim % 2))


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)          # per-channel scale and shift
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        scale, shift = self.emb(nn.functional.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(nn.functional.silu(h)))
        return self.skip(x) + h


class LatentUNet(nn.Module):
    def __init__(self, *, latent_channels: int, num_classes: int = 0, channels: int = 32, mult: int = 2,
                 blocks: int = 1, norm_groups: int = 8, time_scale: float = 1000.0, dropout: float = 0.0):
        super().__init__()
        wide = channels * mult
        self.latent_channels, self.num_classes, self.time_scale = latent_channels, num_classes, time_scale
        self.null_class = num_classes if num_classes > 0 else None
        self.tap_widths = (channels, wide, channels)
        emb_dim = 4 * channels
        self.time_dim = channels
        self.time_mlp = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # num_classes + 1 rows: the last one is the null class (classifier-free guidance's unconditional input)
        self.class_embed = nn.Embedding(num_classes + 1, emb_dim) if num_classes > 0 else None

        def stack(first_in: int, width: int) -> nn.ModuleList:
            return nn.ModuleList(ResBlock(first_in if i == 0 else width, width, emb_dim, norm_groups, dropout)
                                 for i in range(blocks))

        self.conv_in = nn.Conv2d(latent_channels, channels, 3, padding=1)
        self.enc1 = stack(channels, channels)
        self.down = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.enc2 = stack(channels, wide)
        self.middle = stack(wide, wide)
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(wide, wide, 3, padding=1))
        self.dec1 = stack(wide + channels, channels)
        self.norm_out = nn.GroupNorm(norm_groups, channels)
        self.conv_out = nn.Conv2d(channels, latent_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def _labels(self, y: torch.Tensor | None, batch: int, device) -> torch.Tensor | None:
        if self.class_embed is None:
            if y is not None:
                raise ValueError("this latent-unet is unconditional (num_classes = 0) but was given labels")
            return None
        if y is None:
            return torch.full((batch,), self.null_class, dtype=torch.long, device=device)
        return y.to(device=device, dtype=torch.long)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float, y: torch.Tensor | None = None, *,
                return_hidden_at: int | None = None):
        if return_hidden_at is not None and not 1 <= return_hidden_at <= len(self.tap_widths):
            raise ValueError(f"return_hidden_at must be in 1..{len(self.tap_widths)}; got {return_hidden_at}")
        batch = x.shape[0]
        t = torch.as_tensor(t, device=x.device)
        t = t.expand(batch) if t.ndim == 0 else t
        emb = self.time_mlp(timestep_embedding(t * self.time_scale, self.time_dim).to(x.dtype))
        labels = self._labels(y, batch, x.device)
        if labels is not None:
            emb = emb + self.class_embed(labels)

        taps = []
        h = self.conv_in(x)
        for block in self.enc1:
            h = block(h, emb)
        skip = h
        taps.append(h)
        h = self.down(h)
        for block in (*self.enc2, *self.middle):
            h = block(h, emb)
        taps.append(h)
        h = torch.cat([self.up(h), skip], dim=1)
        for block in self.dec1:
            h = block(h, emb)
        taps.append(h)
        out = self.conv_out(nn.functional.silu(self.norm_out(h)))
        if return_hidden_at is None:
            return out
        return out, taps[return_hidden_at - 1]
