"""The ``[repa]`` table in the denoiser stage: teacher, projector and projection loss in one place.

The math lives in :mod:`specmatch.alignment.repa`; this module checks the recipe against the built models
(block index, widths) and gives the pipeline three calls: ``wrap`` the denoiser, ``teacher_features`` of a
batch of clean images, and the ``loss`` of projected tokens against them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from specmatch.alignment.repa import AlignedDenoiser, TokenProjector, alignment_targets, negative_cosine
from specmatch.core.errors import SpecmatchError


class RepresentationAlignment:
    def __init__(self, cfg: Any, teacher: nn.Module, denoiser: nn.Module, *, recipe: str = "recipe"):
        """``recipe`` names the recipe file in error messages."""
        self.cfg, self.teacher, self.recipe = cfg, teacher, recipe
        depth = getattr(denoiser, "depth", None)
        if depth is not None and cfg.depth > depth:
            raise SpecmatchError(f"{recipe}: repa.depth: the denoiser has {depth} blocks; expected a block index in "
                                 f"1..{depth}, got {cfg.depth}")
        width = getattr(denoiser, "hidden_size", None)
        if width is None:
            raise SpecmatchError(f"{recipe}: repa: denoiser {type(denoiser).__name__} has no `hidden_size` attribute "
                                 f"(the width of the tokens to align)")
        feature_dim = getattr(teacher, "feature_dim", 0)
        if not feature_dim:
            raise SpecmatchError(f"{recipe}: alignment: teacher {type(teacher).__name__} reports no `feature_dim`")
        self.projector = TokenProjector(cfg.projector, width, feature_dim, width=cfg.projector_width)
        self.dog = {"sigma_low": cfg.dog_sigma_low, "kernel_low": cfg.dog_kernel_low,
                    "sigma_high": cfg.dog_sigma_high, "kernel_high": cfg.dog_kernel_high}

    def wrap(self, denoiser: nn.Module) -> AlignedDenoiser:
        return AlignedDenoiser(denoiser, self.projector, self.cfg.depth)

    @torch.no_grad()
    def teacher_features(self, images: Tensor) -> Tensor:
        """Clean images (B, 3, H, W) in [-1, 1] -> teacher features (B, D, gh, gw), float32, no gradient."""
        return self.teacher(images)

    def loss(self, projected: Tensor, features: Tensor) -> Tensor:
        """Projection loss of projected tokens (B, N, D) against teacher features on a square token grid."""
        side = math.isqrt(projected.shape[1])
        if side * side != projected.shape[1]:
            raise SpecmatchError(f"{self.recipe}: repa: the denoiser has {projected.shape[1]} tokens; a square grid is expected")
        targets = alignment_targets(features, (side, side), target_filter=self.cfg.target_filter, dog=self.dog)
        return negative_cosine(projected, targets)
