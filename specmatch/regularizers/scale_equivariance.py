"""Scale equivariance: decode a downsampled latent and match the equally downsampled image.

Source: Skorokhodov et al., arXiv 2502.14831; method.md §5.4. Downsample latent and image by the same integer
factor (x2 or x4, bilinear) and add d(Dec(z_small), x_small). The published settings (weight, factor sampling,
distance) are [NOT FOUND]; specmatch draws the factor uniformly per step and uses the engine's reconstruction
loss as d, and its default is bilinear *with* antialiasing for both [INFERRED]: without it a x4 bilinear
decimation reads only 2 of every 4 rows and columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import attrs

from specmatch import Facts, ParamError, RegularizerSpec, hookimpl, param
from specmatch.core.errors import SpecmatchError
from specmatch.regularizers.draws import draw_index
from specmatch.regularizers.lazy import torch_classes

if TYPE_CHECKING:
    from torch import Tensor


@attrs.frozen(kw_only=True)
class ScaleEquivarianceParams:
    factors: tuple[int, ...] = param((2, 4), doc="downsampling factors drawn uniformly per step (divisors of "
                                                 "the latent side)", ge=2)
    antialias: bool = param(True, doc="antialiased bilinear downsampling")


def scale_equivariance_facts(params: ScaleEquivarianceParams) -> Facts:
    if not params.factors:
        raise ParamError("factors", "expected at least one factor")

    def check_latent(shape):
        for f in params.factors:
            if shape[1] % f:
                raise ParamError("factors", f"the latent side {shape[1]} is not divisible by {f}")

    return Facts(check_latent=check_latent)


def downsample_pair(
    z: Tensor,
    x: Tensor,
    factor: int,
    *,
    mode: str = "bilinear",
    antialias: bool = True,
    downsample_factor: Optional[int] = None,
) -> tuple[Tensor, Tensor]:
    """Shrink latent (B, C, h, w) and image (B, 3, H, W) by the same integer ``factor``.

    ``factor`` (2 or 4 in the paper's summaries) must be an integer >= 2 dividing h, w, H and W. Returns
    ``(z_small, x_small)`` of sizes (h/factor, w/factor) and (H/factor, W/factor).

    With ``downsample_factor`` f (the image must be f times the latent) sides that ``factor`` does not divide
    are allowed: the latent becomes (max(1, h // factor), max(1, w // factor)) and the image exactly f times
    that, as :func:`specmatch.regularizers.eqvae.eq_pair` does. This is for latents already resized by a pair
    transform (EQ-VAE); when ``factor`` divides every side the result is the same as without it.
    """
    import torch.nn.functional as F

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


def _define() -> dict[str, type]:
    from torch import nn

    from specmatch.core.components import RegularizerInputs

    class ScaleEquivarianceRegularizer(nn.Module):
        def __init__(self, params: ScaleEquivarianceParams):
            super().__init__()
            self.params = params

        def loss(self, s: RegularizerInputs):
            factor = self.params.factors[draw_index(s.generator, len(self.params.factors))]
            # The decoded latent and its target, both after pair transforms (DSM, EQ-VAE): s.z would pair the
            # untransformed latent with a transformed image. A resizing transform may leave sides the factor
            # does not divide, hence the floored sizes.
            z_small, x_small = downsample_pair(s.z_dec, s.target, factor, antialias=self.params.antialias,
                                               downsample_factor=s.downsample_factor)
            return s.reconstruction_loss(s.decode(z_small), x_small), {"factor": float(factor)}

    return {"ScaleEquivarianceRegularizer": ScaleEquivarianceRegularizer}


__getattr__ = torch_classes(_define, "ScaleEquivarianceRegularizer")


def build_scale_equivariance(params: ScaleEquivarianceParams, ctx):
    from specmatch.regularizers.scale_equivariance import ScaleEquivarianceRegularizer

    scale_equivariance_facts(params)
    return ScaleEquivarianceRegularizer(params)


@hookimpl
def specmatch_regularizers():
    yield RegularizerSpec(name="scale-equivariance", factory=build_scale_equivariance,
                          params=ScaleEquivarianceParams, needs={"decoder"}, aliases=("se",),
                          facts=scale_equivariance_facts, adaptive_layers={"encoder.last", "decoder.last"},
                          summary="decode a 2x/4x downsampled latent and match the equally downsampled image")
