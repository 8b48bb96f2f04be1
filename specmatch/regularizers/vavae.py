"""VA-VAE's vision-foundation (VF) loss: align a projected latent with frozen teacher features.

Source: hustvl/LightningDiT ``vavae/`` (``combined_v3`` loss), summarised in method.md §5.2. With z' the
latent after a bias-free 1x1 convolution (C -> D) and f the teacher features, both seen as N = h*w tokens:

    L_mcos = mean_i      relu(1 - m2 - cos(z'_i, f_i))                          m2 = margin_cos  = 0.5
    L_mdms = mean_{i,j}  relu(|cos(z'_i, z'_j) - cos(f_i, f_j)| - m1)           m1 = margin_dist = 0.25
    L_vf   = L_mdms + L_mcos

The means run over the batch too; the distance matrix compares token pairs *within* each image.

Grids. In VA-VAE the teacher grid equals the latent grid by construction (256 px images resized to 224 give
16x16 DINOv2-L/14 tokens, and the f16 latent is 16x16), so the original code never resamples. When the grids
differ (e.g. a stand-in teacher), specmatch resamples the *teacher features* to the latent grid (bilinear,
align_corners False, antialiased when shrinking) [INFERRED]. The latent is what is being regularised, so it is
left untouched, and the (N x N) distance matrix stays at the latent's size.

Precision. Normalisation and cosines run in float32 with autocast disabled (an fp32 island), whatever the
input dtype, because bf16 cosines of 1024-wide vectors are too coarse for a 0.25 margin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from specmatch import RegularizerSpec, hookimpl, param
from specmatch.regularizers.lazy import torch_classes

if TYPE_CHECKING:
    from torch import Tensor

# Norm floor for the unit-normalisation of tokens (F.cosine_similarity uses the same eps).
_EPS = 1e-8


@attrs.frozen(kw_only=True)
class VAVAEParams:
    margin_cos: float = param(0.5, doc="cosine margin m2 of the per-token term", ge=0, le=2)
    margin_dist: float = param(0.25, doc="margin m1 of the distance-matrix term", ge=0, le=2)
    cos_weight: float = param(1.0, doc="weight of the margin cosine term", ge=0)
    dist_weight: float = param(1.0, doc="weight of the margin distance-matrix term", ge=0)


# -- the VF loss -----------------------------------------------------------------------------------------

def resize_features(features: Tensor, size: tuple[int, int]) -> Tensor:
    """Resample a teacher feature map (B, D, h', w') to ``size`` = (h, w); identity when it already matches.

    Bilinear with align_corners False; antialiased when shrinking so every teacher token contributes.
    """
    import torch.nn.functional as F

    if tuple(features.shape[-2:]) == tuple(size):
        return features
    shrinking = features.shape[-2] > size[0] or features.shape[-1] > size[1]
    return F.interpolate(features, size=size, mode="bilinear", align_corners=False, antialias=shrinking)


def vf_loss(
    z_proj: Tensor,
    features: Tensor,
    *,
    margin_cos: float = 0.5,
    margin_dist: float = 0.25,
) -> tuple[Tensor, dict[str, Tensor]]:
    """VA-VAE's VF loss between a projected latent and teacher features.

    Args:
        z_proj: (B, D, h, w) latent after :class:`VFProjection`; carries the gradient.
        features: (B, D, h', w') frozen teacher features (no gradient needed); resampled to (h, w) if the
            grids differ (see the module docstring).
        margin_cos: m2 of the cosine-margin term (VA-VAE: 0.5).
        margin_dist: m1 of the distance-matrix-margin term (VA-VAE: 0.25).

    Returns:
        ``(total, {"mcos": L_mcos, "mdms": L_mdms})``: float32 scalars, total = mdms + mcos (unit term weights,
        as in VA-VAE; a caller that wants other weights recombines the parts).
    """
    import torch
    import torch.nn.functional as F

    if z_proj.dim() != 4 or features.dim() != 4:
        raise ValueError(f"vf_loss expects (B, D, h, w) tensors, got {tuple(z_proj.shape)} and "
                         f"{tuple(features.shape)}")
    if z_proj.shape[:2] != features.shape[:2]:
        raise ValueError(f"vf_loss: batch and channel sizes differ: latent projection {tuple(z_proj.shape)} vs "
                         f"teacher features {tuple(features.shape)} (is VFProjection's feature_dim the teacher's?)")
    with torch.autocast(device_type=z_proj.device.type, enabled=False):
        z = z_proj.float()
        f = resize_features(features.detach().float(), tuple(z.shape[-2:]))
        # Tokens as unit vectors: (B, D, N).
        z_unit = F.normalize(z.flatten(2), dim=1, eps=_EPS)
        f_unit = F.normalize(f.flatten(2), dim=1, eps=_EPS)

        cos_per_token = (z_unit * f_unit).sum(dim=1)  # (B, N)
        mcos = F.relu(1.0 - margin_cos - cos_per_token).mean()

        z_gram = torch.bmm(z_unit.transpose(1, 2), z_unit)  # (B, N, N) token-pair cosines
        f_gram = torch.bmm(f_unit.transpose(1, 2), f_unit)
        mdms = F.relu((z_gram - f_gram).abs() - margin_dist).mean()
    return mdms + mcos, {"mcos": mcos, "mdms": mdms}


# -- the modules -----------------------------------------------------------------------------------------

def _define() -> dict[str, type]:
    from torch import nn

    from specmatch.core.components import RegularizerInputs

    class VFProjection(nn.Conv2d):
        """The bias-free 1x1 convolution z -> z' that lifts latents to the teacher's width.

        (B, latent_channels, h, w) -> (B, feature_dim, h, w). Trained with the autoencoder; default PyTorch
        init, as in LightningDiT (``Conv2d(embed_dim, vf_feature_dim, kernel_size=1, bias=False)``).
        """

        def __init__(self, latent_channels: int, feature_dim: int):
            super().__init__(latent_channels, feature_dim, kernel_size=1, bias=False)
            self.latent_channels = latent_channels
            self.feature_dim = feature_dim

    class VAVAERegularizer(nn.Module):
        def __init__(self, params: VAVAEParams, *, latent_channels: int, feature_dim: int):
            super().__init__()
            self.params = params
            self.projection = VFProjection(latent_channels, feature_dim)

        def loss(self, s: RegularizerInputs):
            if s.features is None:
                raise RuntimeError("vavae needs teacher features; the engine did not provide them")
            p = self.params
            _, parts = vf_loss(self.projection(s.z), s.features, margin_cos=p.margin_cos,
                               margin_dist=p.margin_dist)
            total = p.cos_weight * parts["mcos"] + p.dist_weight * parts["mdms"]
            return total, {"mcos": parts["mcos"], "mdms": parts["mdms"]}

    return {"VFProjection": VFProjection, "VAVAERegularizer": VAVAERegularizer}


__getattr__ = torch_classes(_define, "VFProjection", "VAVAERegularizer")


# -- registration ----------------------------------------------------------------------------------------

def build_vavae(params: VAVAEParams, ctx):
    from specmatch.regularizers.vavae import VAVAERegularizer

    ae = ctx.upstream["autoencoder"]
    teacher = ctx.upstream["alignment"]
    return VAVAERegularizer(params, latent_channels=ae.latent_channels, feature_dim=teacher.feature_dim)


@hookimpl
def specmatch_regularizers():
    yield RegularizerSpec(name="vavae", factory=build_vavae, params=VAVAEParams, needs={"features", "encoder"},
                          aliases=("vf",), adaptive_layers={"encoder.last"},
                          summary="VA-VAE vision-foundation loss: margin cosine + margin distance matrix to "
                                  "teacher features (use adaptive weight at encoder.last)")
