"""Paired spatial transforms of (latent, image) for EQ-VAE and the scale-equivariance regulariser.

Both baselines decode a *transformed latent* and compare it with the *same transform of the image*, so the
autoencoder learns that resampling the latent resamples the picture.

EQ-VAE (zelaki/eqvae ``AutoencoderKL.training_step``; method.md §5.3). In the equivariance branch (taken with
probability p_prior = 0.5 by the caller) draw a scale s uniformly from {8/32, ..., 31/32} and a quarter-turn count
k uniformly from {1, 2, 3}; bilinearly resize the latent by s, rotate it by k quarter turns, decode, and compare
with the image resized and rotated the same way. Details that follow the EQ-VAE code:

- Sizes use ``F.interpolate(scale_factor=s)`` semantics: out = floor(side * s). specmatch computes the latent
  size first and sets the image size to latent size x f (the downsampling factor), so image and latent stay
  exactly aligned even when side * s is not an integer (EQ-VAE's 256 px / f8 setting is always exact).
- Bilinear, align_corners False, **no antialiasing** for both (the image is decimated with aliasing, as in the
  original code). ``antialias=True`` is available.
- Rotation is ``torch.rot90(t, k, dims=(-1, -2))``: k quarter turns *clockwise* on screen. The set {1, 2, 3} is
  closed under reversing the direction, so only the naming differs from dims (-2, -1).

Scale equivariance (Skorokhodov et al., arXiv 2502.14831; method.md §5.4). Downsample latent and image by the
same integer factor (x2 or x4, bilinear) and add d(Dec(z_small), x_small). The published settings (weight,
factor sampling, distance) are [NOT FOUND]; specmatch's default is bilinear *with* antialiasing for both
[INFERRED]: without it a x4 bilinear decimation reads only 2 of every 4 rows and columns.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor

from specmatch.core.errors import SpecmatchError

__all__ = [
    "EQ_SCALES",
    "EQ_ROTATIONS",
    "SpatialTransform",
    "sample_eq_transform",
    "eq_pair",
    "downsample_pair",
]

#: EQ-VAE's scale set {8/32, 9/32, ..., 31/32} (never 1: the branch always shrinks).
EQ_SCALES: tuple[float, ...] = tuple(k / 32 for k in range(8, 32))
#: EQ-VAE's quarter-turn counts: 90, 180 and 270 degrees (never 0).
EQ_ROTATIONS: tuple[int, ...] = (1, 2, 3)

# Rotation plane as in the EQ-VAE code (clockwise quarter turns).
_ROT_DIMS = (-1, -2)


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
    i = int(torch.randint(len(scales), (1,), generator=generator).item())
    j = int(torch.randint(len(rotations), (1,), generator=generator).item())
    return SpatialTransform(scale=scales[i], rot90=rotations[j])


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


def downsample_pair(
    z: Tensor,
    x: Tensor,
    factor: int,
    *,
    mode: str = "bilinear",
    antialias: bool = True,
    downsample_factor: Optional[int] = None,
) -> tuple[Tensor, Tensor]:
    """Scale equivariance: shrink latent (B, C, h, w) and image (B, 3, H, W) by the same integer ``factor``.

    ``factor`` (2 or 4 in the paper's summaries) must be an integer >= 2 dividing h, w, H and W. Returns
    ``(z_small, x_small)`` of sizes (h/factor, w/factor) and (H/factor, W/factor).

    With ``downsample_factor`` f (the image must be f times the latent) sides that ``factor`` does not divide
    are allowed: the latent becomes (max(1, h // factor), max(1, w // factor)) and the image exactly f times
    that, as :func:`eq_pair` does. This is for latents already resized by a pair transform (EQ-VAE); when
    ``factor`` divides every side the result is the same as without it.
    """
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise SpecmatchError(f"downsample_pair: factor must be an integer >= 2 (the paper uses 2 or 4), got {factor!r}")
    if downsample_factor is None:
        for label, t in (("latent", z), ("image", x)):
            if t.shape[-2] % factor or t.shape[-1] % factor:
                raise SpecmatchError(
                    f"downsample_pair: {label} size {tuple(t.shape[-2:])} is not divisible by factor {factor}; "
                    f"use a factor that divides the latent side")
        latent_size = (z.shape[-2] // factor, z.shape[-1] // factor)
        image_size = (x.shape[-2] // factor, x.shape[-1] // factor)
    else:
        f = int(downsample_factor)
        h, w = z.shape[-2:]
        if tuple(x.shape[-2:]) != (h * f, w * f):
            raise SpecmatchError(
                f"downsample_pair: image size {tuple(x.shape[-2:])} is not the latent size {(h, w)} times the "
                f"downsampling factor {f}")
        latent_size = (max(1, h // factor), max(1, w // factor))
        image_size = (latent_size[0] * f, latent_size[1] * f)
    align = False if mode in ("bilinear", "bicubic") else None
    aa = antialias and mode in ("bilinear", "bicubic")
    z_small = F.interpolate(z, size=latent_size, mode=mode, align_corners=align, antialias=aa)
    x_small = F.interpolate(x, size=image_size, mode=mode, align_corners=align, antialias=aa)
    return z_small, x_small
