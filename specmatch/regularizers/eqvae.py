"""EQ-VAE: reconstruct scaled and rotated images from equally transformed latents.

Source: zelaki/eqvae ``AutoencoderKL.training_step``; method.md §5.3. The autoencoder decodes a *transformed
latent* and compares it with the *same transform of the image*, so it learns that resampling the latent
resamples the picture. In the equivariance branch (taken with probability p_prior = 0.5) draw a scale s
uniformly from {8/32, ..., 31/32} and a quarter-turn count k uniformly from {1, 2, 3}; bilinearly resize the
latent by s, rotate it by k quarter turns, decode, and compare with the image resized and rotated the same
way. Details that follow the EQ-VAE code:

- Sizes use ``F.interpolate(scale_factor=s)`` semantics: out = floor(side * s). specmatch computes the latent
  size first and sets the image size to latent size x f (the downsampling factor), so image and latent stay
  exactly aligned even when side * s is not an integer (EQ-VAE's 256 px / f8 setting is always exact).
- Bilinear, align_corners False, **no antialiasing** for both (the image is decimated with aliasing, as in the
  original code). ``antialias=True`` is available.
- Rotation is ``torch.rot90(t, k, dims=(-1, -2))``: k quarter turns *clockwise* on screen. The set {1, 2, 3} is
  closed under reversing the direction, so only the naming differs from dims (-2, -1).

The term is a pair transform: the transformed pair feeds the whole reconstruction loss.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional, Sequence

import attrs

from specmatch import Facts, ParamError, RegularizerSpec, hookimpl, param
from specmatch.core.errors import SpecmatchError
from specmatch.regularizers.draws import draw_index, draw_uniform
from specmatch.regularizers.lazy import torch_classes

if TYPE_CHECKING:
    import torch
    from torch import Tensor


def eq_scales(min_scale_32: int) -> tuple[float, ...]:
    """The scale set {min_scale_32/32, ..., 31/32} (never 1: the branch always shrinks)."""
    return tuple(k / 32 for k in range(min_scale_32, 32))


#: EQ-VAE's scale set {8/32, 9/32, ..., 31/32}.
EQ_SCALES: tuple[float, ...] = eq_scales(8)
#: EQ-VAE's quarter-turn counts: 90, 180 and 270 degrees (never 0).
EQ_ROTATIONS: tuple[int, ...] = (1, 2, 3)

# Rotation plane as in the EQ-VAE code (clockwise quarter turns).
_ROT_DIMS = (-1, -2)


@attrs.frozen(kw_only=True)
class EQVAEParams:
    p_prior: float = param(0.5, doc="probability of the equivariance branch", ge=0, le=1)
    p_prior_s: float = param(0.25, doc="else: probability of reconstructing a downscaled image", ge=0, le=1)
    min_scale_32: int = param(8, doc="smallest scale in 32nds (scales 8/32 ... 31/32)", ge=1, le=31)
    rotations: tuple[int, ...] = param(EQ_ROTATIONS, doc="rot90 multiples to draw from (0 = none)", ge=0, le=3)


def eqvae_facts(params: EQVAEParams) -> Facts:
    if not params.rotations:
        raise ParamError("rotations", "expected at least one rot90 multiple")
    return Facts()


# -- the transform ---------------------------------------------------------------------------------------

@attrs.frozen
class SpatialTransform:
    """Resize by ``scale`` then rotate by ``rot90`` quarter turns (clockwise), on the last two dims.

    ``scale`` 1 and ``rot90`` 0 is the identity.
    """

    scale: float = attrs.field(default=1.0, converter=float)
    rot90: int = attrs.field(default=0, converter=int)

    @scale.validator
    def _check_scale(self, attribute, value):
        if not value > 0:
            raise SpecmatchError(f"SpatialTransform.scale must be > 0, got {value}")

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """(floor(height * scale), floor(width * scale)), at least 1: ``F.interpolate(scale_factor=...)`` sizes."""
        return max(1, math.floor(height * self.scale)), max(1, math.floor(width * self.scale))

    def apply(
        self,
        t: Tensor,
        *,
        size: Optional[tuple[int, int]] = None,
        mode: str = "bilinear",
        antialias: bool = False,
    ) -> Tensor:
        """Transform a (B, C, H, W) tensor.

        Args:
            t: images or latents.
            size: the resized (H', W') before rotation; default :meth:`resized_size`. :func:`eq_pair` passes the
                image size explicitly so it is exactly f times the latent size.
            mode: ``F.interpolate`` mode ("bilinear" in EQ-VAE).
            antialias: low-pass when shrinking (EQ-VAE: False).
        """
        import torch
        import torch.nn.functional as F

        out_size = tuple(size) if size is not None else self.resized_size(t.shape[-2], t.shape[-1])
        if out_size != tuple(t.shape[-2:]):
            align = False if mode in ("bilinear", "bicubic") else None
            t = F.interpolate(t, size=out_size, mode=mode, align_corners=align,
                              antialias=antialias and mode in ("bilinear", "bicubic"))
        if self.rot90 % 4:
            t = torch.rot90(t, self.rot90 % 4, dims=_ROT_DIMS)
        return t


def sample_eq_transform(
    generator: Optional[torch.Generator] = None,
    *,
    scales: Sequence[float] = EQ_SCALES,
    rotations: Sequence[int] = EQ_ROTATIONS,
) -> SpatialTransform:
    """Draw EQ-VAE's transform: a scale and a rotation, each uniform over its set, independently.

    Whether to take the equivariance branch at all (p_prior = 0.5) is the caller's draw. Uses only
    ``generator`` (CPU ``torch.Generator``), so runs are reproducible.
    """
    if not scales or not rotations:
        raise SpecmatchError("sample_eq_transform needs at least one scale and one rotation")
    scale = scales[draw_index(generator, len(scales))]
    return SpatialTransform(scale=scale, rot90=rotations[draw_index(generator, len(rotations))])


def eq_pair(
    z: Tensor,
    x: Tensor,
    transform: SpatialTransform,
    downsample_factor: int,
    *,
    mode: str = "bilinear",
    antialias: bool = False,
) -> tuple[Tensor, Tensor]:
    """Apply one :class:`SpatialTransform` to a latent (B, C, h, w) and its image (B, 3, f*h, f*w).

    The latent size is computed first (floor(h * s), floor(w * s)); the image is resized to exactly f times
    that, then both are rotated alike. Returns ``(z_t, x_t)``.
    """
    f = int(downsample_factor)
    h, w = z.shape[-2:]
    if tuple(x.shape[-2:]) != (h * f, w * f):
        raise SpecmatchError(
            f"eq_pair: image size {tuple(x.shape[-2:])} is not the latent size {(h, w)} times the downsampling "
            f"factor {f}")
    latent_size = transform.resized_size(h, w)
    image_size = (latent_size[0] * f, latent_size[1] * f)
    z_t = transform.apply(z, size=latent_size, mode=mode, antialias=antialias)
    x_t = transform.apply(x, size=image_size, mode=mode, antialias=antialias)
    return z_t, x_t


# -- the module ------------------------------------------------------------------------------------------

def _define() -> dict[str, type]:
    import torch.nn.functional as F
    from torch import nn

    from specmatch.core.components import PairContext

    class EQVAERegularizer(nn.Module):
        """EQ-VAE as a pair transform: the transformed pair feeds the whole reconstruction loss."""

        def __init__(self, params: EQVAEParams):
            super().__init__()
            self.params = params
            self.scales = eq_scales(params.min_scale_32)
            self.last_branch = 0.0

        def transform_pair(self, z, target, ctx: PairContext):
            self.last_branch = 0.0
            if not ctx.training:
                return z, target
            p = self.params
            if draw_uniform(ctx.generator) < p.p_prior:  # equivariance branch: scale and rotate both
                transform = sample_eq_transform(ctx.generator, scales=self.scales, rotations=p.rotations)
                self.last_branch = 1.0
                return eq_pair(z, target, transform, ctx.downsample_factor)
            if draw_uniform(ctx.generator) < p.p_prior_s and ctx.encode is not None:  # prior preservation
                # EQ-VAE's KL here is on this downscaled posterior; specmatch's KL term still reads the
                # full-size one (a pair transform cannot hand a posterior to other terms; docs/baselines.md)
                scale = self.scales[draw_index(ctx.generator, len(self.scales))]
                # floor and no antialiasing, as the EQ-VAE code (F.interpolate with scale_factor) does
                side = max(1, int(z.shape[-1] * scale)) * ctx.downsample_factor
                small = F.interpolate(target, size=(side, side), mode="bilinear", align_corners=False)
                self.last_branch = 2.0
                return ctx.encode(small).sample(ctx.generator), small
            return z, target

        def logs(self) -> dict:
            return {"branch": self.last_branch}

    return {"EQVAERegularizer": EQVAERegularizer}


__getattr__ = torch_classes(_define, "EQVAERegularizer")


# -- registration ----------------------------------------------------------------------------------------

def build_eqvae(params: EQVAEParams, ctx):
    from specmatch.regularizers.eqvae import EQVAERegularizer

    eqvae_facts(params)
    return EQVAERegularizer(params)


@hookimpl
def specmatch_regularizers():
    # a pair transform has no loss, hence no adaptive layer
    yield RegularizerSpec(name="eqvae", factory=build_eqvae, params=EQVAEParams, transforms_pair=True,
                          facts=eqvae_facts, adaptive_layers=(),
                          needs={"encoder", "decoder"}, aliases=("eq-vae",),
                          summary="EQ-VAE: reconstruct scaled/rotated images from equally transformed latents")
