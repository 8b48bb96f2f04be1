"""Decoding Spectrum Matching (DSM): low-pass latent and image with one shared block-DCT mask.

A pair transform with no loss of its own: the low-passed image becomes the target of every reconstruction
term. The mask is :func:`specmatch.spectral.block_lowpass`; this module draws its level per step.
"""

from typing import Optional

import attrs

from specmatch import Facts, ParamError, RegularizerSpec, hookimpl, param
from specmatch.regularizers.draws import draw_index
from specmatch.regularizers.lazy import torch_classes


@attrs.frozen(kw_only=True)
class DSMParams:
    block_size: int = param(8, doc="DCT block side b (image and latent sides must be multiples)", ge=1, le=1024)
    mask_levels: tuple[int, ...] = param((0, 8, 10, 12), doc="levels k: zero u+v >= 2(b-1)-(k-1); 0 = no mask",
                                         ge=0)
    probabilities: Optional[tuple[float, ...]] = param(None, doc="probability of each level (omit: uniform)",
                                                       ge=0)


def dsm_facts(params: DSMParams) -> Facts:
    p = params
    if not p.mask_levels:
        raise ParamError("mask_levels", "expected at least one level")
    if p.probabilities is not None and len(p.probabilities) != len(p.mask_levels):
        raise ParamError("probabilities", f"expected {len(p.mask_levels)} values (one per mask level); got "
                                          f"{len(p.probabilities)}")
    if p.probabilities is not None and sum(p.probabilities) <= 0:
        raise ParamError("probabilities", "expected a positive sum")

    def check_latent(shape):
        if shape[1] % p.block_size or shape[2] % p.block_size:
            raise ParamError("block_size", f"the latent side {shape[1]} is not a multiple of block_size "
                                           f"{p.block_size}")

    return Facts(check_latent=check_latent)


def _define() -> dict[str, type]:
    from torch import nn

    from specmatch.core.components import PairContext

    class DSMRegularizer(nn.Module):
        """Low-pass latent and target with one shared block-DCT mask; no loss term of its own."""

        def __init__(self, params: DSMParams):
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
            level = p.mask_levels[draw_index(ctx.generator, len(p.mask_levels), p.probabilities)]
            self.last_level = level
            if level == 0:
                return z, target
            return block_lowpass(z, level, p.block_size), block_lowpass(target, level, p.block_size)

        def logs(self) -> dict:
            return {"mask_level": float(self.last_level)}

    return {"DSMRegularizer": DSMRegularizer}


__getattr__ = torch_classes(_define, "DSMRegularizer")


def build_dsm(params: DSMParams, ctx):
    from specmatch.regularizers.dsm import DSMRegularizer

    dsm_facts(params)
    return DSMRegularizer(params)


@hookimpl
def specmatch_regularizers():
    # a pair transform has no loss, hence no adaptive layer
    yield RegularizerSpec(name="dsm", factory=build_dsm, params=DSMParams, transforms_pair=True,
                          facts=dsm_facts, adaptive_layers=(),
                          summary="Decoding Spectrum Matching: one shared block-DCT low-pass of latent and "
                                  "image; reconstruct the low-passed image (no loss term)")
