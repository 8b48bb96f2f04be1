"""torch implementations of the built-in regularizers (imported only when a recipe builds one)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from specmatch.core.components import PairContext, RegularizerInputs


def _draw(generator: torch.Generator, n: int, probabilities=None) -> int:
    """One index in [0, n) from the per-step generator (uniform or weighted)."""
    if probabilities is None:
        return int(torch.randint(n, (1,), generator=generator).item())
    weights = torch.tensor(probabilities, dtype=torch.float64)
    return int(torch.multinomial(weights, 1, generator=generator).item())


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand((1,), generator=generator).item())


class KLRegularizer(nn.Module):
    def loss(self, s: RegularizerInputs):
        return s.posterior.kl().mean()


class ESMRegularizer(nn.Module):
    def __init__(self, params):
        super().__init__()
        self.params = params

    def loss(self, s: RegularizerInputs):
        from specmatch.spectral import esm_loss

        p = self.params
        # The paper applies ESM to the sampled latent z (not the mean) and the clean image x.
        return esm_loss(s.x, s.z, delta=p.delta, n_bins=p.n_bins, center=p.center, remove_dc=p.remove_dc,
                        log_power=p.log_power, loss=p.loss, blur=None if p.blur == "none" else p.blur)


class DSMRegularizer(nn.Module):
    """Low-pass latent and target with one shared block-DCT mask; no loss term of its own."""

    def __init__(self, params):
        super().__init__()
        self.params = params
        self.last_level = 0

    def transform_pair(self, z, target, ctx: PairContext):
        from specmatch.spectral import block_lowpass

        if not ctx.training:
            self.last_level = 0
            return z, target  # evaluation reconstructs the full image (k = 0)
        p = self.params
        # k comes only from ctx.generator: micro-batches that share the step's stream share k
        level = p.mask_levels[_draw(ctx.generator, len(p.mask_levels), p.probabilities)]
        self.last_level = level
        if level == 0:
            return z, target
        return block_lowpass(z, level, p.block_size), block_lowpass(target, level, p.block_size)

    def logs(self) -> dict:
        return {"mask_level": float(self.last_level)}


class VAVAERegularizer(nn.Module):
    def __init__(self, params, *, latent_channels: int, feature_dim: int):
        super().__init__()
        from specmatch.losses.vf import VFProjection

        self.params = params
        self.projection = VFProjection(latent_channels, feature_dim)

    def loss(self, s: RegularizerInputs):
        from specmatch.losses.vf import vf_loss

        if s.features is None:
            raise RuntimeError("vavae needs teacher features; the engine did not provide them")
        p = self.params
        _, parts = vf_loss(self.projection(s.z), s.features, margin_cos=p.margin_cos, margin_dist=p.margin_dist)
        total = p.cos_weight * parts["mcos"] + p.dist_weight * parts["mdms"]
        return total, {"mcos": parts["mcos"], "mdms": parts["mdms"]}


class EQVAERegularizer(nn.Module):
    """EQ-VAE as a pair transform: the transformed pair feeds the whole reconstruction loss."""

    def __init__(self, params):
        super().__init__()
        self.params = params
        self.scales = tuple(k / 32 for k in range(params.min_scale_32, 32))
        self.last_branch = 0.0

    def transform_pair(self, z, target, ctx: PairContext):
        from specmatch.losses.equivariance import SpatialTransform, eq_pair

        self.last_branch = 0.0
        if not ctx.training:
            return z, target
        p = self.params
        u = _uniform(ctx.generator)
        if u < p.p_prior:  # equivariance branch: scale and rotate both
            scale = self.scales[_draw(ctx.generator, len(self.scales))]
            rot = p.rotations[_draw(ctx.generator, len(p.rotations))]
            self.last_branch = 1.0
            return eq_pair(z, target, SpatialTransform(scale=scale, rot90=rot), ctx.downsample_factor)
        if _uniform(ctx.generator) < p.p_prior_s and ctx.encode is not None:  # prior preservation, downscaled
            # EQ-VAE's KL here is on this downscaled posterior; specmatch's KL term still reads the full-size
            # one (a pair transform cannot hand a posterior to other terms; docs/baselines.md)
            scale = self.scales[_draw(ctx.generator, len(self.scales))]
            # floor and no antialiasing, as the EQ-VAE code (F.interpolate with scale_factor) does
            side = max(1, int(z.shape[-1] * scale)) * ctx.downsample_factor
            small = F.interpolate(target, size=(side, side), mode="bilinear", align_corners=False)
            self.last_branch = 2.0
            return ctx.encode(small).sample(ctx.generator), small
        return z, target

    def logs(self) -> dict:
        return {"branch": self.last_branch}


class ScaleEquivarianceRegularizer(nn.Module):
    def __init__(self, params):
        super().__init__()
        self.params = params

    def loss(self, s: RegularizerInputs):
        from specmatch.losses.equivariance import downsample_pair

        factor = self.params.factors[_draw(s.generator, len(self.params.factors))]
        # The decoded latent and its target, both after pair transforms (DSM, EQ-VAE): s.z would pair the
        # untransformed latent with a transformed image. A resizing transform may leave sides the factor does
        # not divide, hence the floored sizes.
        z_small, x_small = downsample_pair(s.z_dec, s.target, factor, antialias=self.params.antialias,
                                           downsample_factor=s.downsample_factor)
        return s.reconstruction_loss(s.decode(z_small), x_small), {"factor": float(factor)}
