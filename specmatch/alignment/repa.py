"""REPA: align a denoiser's hidden tokens with a frozen teacher's features (Yu et al., arXiv 2410.06940).

    L = L_denoise + weight * L_proj,     L_proj = -mean_{b, n} cos(projector(h_{b,n}), y_{b,n})

h are the denoiser's tokens after block ``depth`` (REPA: 8), the projector is trained with the denoiser and
dropped afterwards, and y are the teacher's features of the clean image at the token positions. Only token
*directions* enter a cosine, so a band-pass on y (``target_filter = "dog"``, method.md §7) changes which
spatial structure the denoiser is asked to carry.

Grids: the teacher's feature grid rarely equals the denoiser's token grid (an f16 latent at patch 2 has 8x8
tokens, DINOv2-B/14 at 224 px has 16x16). The target map is resampled to the token grid: area averaging when
it shrinks (every teacher token counts once), bilinear when it grows. The DoG is applied before resampling, on
the teacher's own grid, where its sigmas are defined.
"""

from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from .dog import dog_filter

__all__ = ["TokenProjector", "AlignedDenoiser", "alignment_targets", "resample_grid", "negative_cosine"]

PROJECTORS = ("mlp", "conv")
TARGET_FILTERS = ("none", "dog")


class TokenProjector(nn.Module):
    """Maps denoiser tokens (B, N, D) to the teacher's width (B, N, D_t).

    ``"mlp"`` is REPA's per-token projector: Linear(D, W) - SiLU - Linear(W, W) - SiLU - Linear(W, D_t).
    ``"conv"`` is a 3x3 convolution over the token grid (iREPA's spatial projector; the grid must be square).
    """

    def __init__(self, kind: str, in_dim: int, out_dim: int, *, width: int = 2048):
        super().__init__()
        if kind not in PROJECTORS:
            raise ValueError(f"projector must be one of {PROJECTORS}, got {kind!r}")
        self.kind = kind
        if kind == "mlp":
            self.net = nn.Sequential(nn.Linear(in_dim, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                                     nn.Linear(width, out_dim))
        else:
            self.net = nn.Conv2d(in_dim, out_dim, kernel_size=3, padding=1)

    def forward(self, tokens: Tensor) -> Tensor:
        if self.kind == "mlp":
            return self.net(tokens)
        b, n, d = tokens.shape
        side = int(round(n**0.5))
        if side * side != n:
            raise ValueError(f"the conv projector needs a square token grid, got {n} tokens")
        grid = tokens.transpose(1, 2).reshape(b, d, side, side)
        return self.net(grid).flatten(2).transpose(1, 2)


class AlignedDenoiser(nn.Module):
    """A denoiser and its projector as one trainable module (one optimizer, one DDP wrapper, one checkpoint).

    ``forward(x, t, y=None) -> (velocity, projected tokens (B, N, D_t))``. Only ``denoiser`` is kept after
    training; sampling never sees the projector.
    """

    def __init__(self, denoiser: nn.Module, projector: TokenProjector, depth: int):
        super().__init__()
        self.denoiser, self.projector, self.depth = denoiser, projector, depth

    def forward(self, x: Tensor, t: Tensor, y: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        kwargs = {} if y is None else {"y": y}
        velocity, hidden = self.denoiser(x, t, return_hidden_at=self.depth, **kwargs)
        return velocity, self.projector(hidden)


def resample_grid(features: Tensor, grid: tuple[int, int]) -> Tensor:
    """(B, D, gh, gw) -> (B, D, *grid): area average when shrinking, bilinear when growing, identity if equal."""
    if tuple(features.shape[-2:]) == tuple(grid):
        return features
    if features.shape[-2] >= grid[0] and features.shape[-1] >= grid[1]:
        return F.interpolate(features, size=grid, mode="area")
    return F.interpolate(features, size=grid, mode="bilinear", align_corners=False)


def alignment_targets(features: Tensor, grid: tuple[int, int], *, target_filter: str = "none",
                      dog: Optional[dict] = None) -> Tensor:
    """Teacher features (B, D, gh, gw) -> per-token targets (B, N = grid[0]*grid[1], D), row-major like DiT.

    ``target_filter = "dog"`` applies :func:`specmatch.alignment.dog.dog_filter` (keyword arguments in
    ``dog``) on the teacher's grid first.
    """
    if target_filter not in TARGET_FILTERS:
        raise ValueError(f"target_filter must be one of {TARGET_FILTERS}, got {target_filter!r}")
    if target_filter == "dog":
        features = dog_filter(features, **(dog or {}))
    return resample_grid(features, grid).flatten(2).transpose(1, 2)


def negative_cosine(projected: Tensor, targets: Tensor) -> Tensor:
    """REPA's projection loss: minus the mean cosine similarity over batch and tokens, in float32."""
    if projected.shape != targets.shape:
        raise ValueError(f"projected tokens {tuple(projected.shape)} and targets {tuple(targets.shape)} differ")
    return -F.cosine_similarity(projected.float(), targets.float(), dim=-1).mean()
