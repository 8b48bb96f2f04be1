"""REPA: align a denoiser's hidden states with a frozen teacher's features (Yu et al., arXiv 2410.06940).

    L = L_denoise + weight * L_proj,     L_proj = -mean_{b, n} cos(projector(h_{b,n}), y_{b,n})

h are the denoiser's hidden states at tap ``depth`` (REPA: the tokens after block 8), the projector trains
with the denoiser and is dropped afterwards, and y are the teacher's features of the clean image at the
token positions. Only token *directions* enter a cosine, so a band-pass on y (``target_filter = "dog"``,
method.md §7) changes which spatial structure the denoiser is asked to carry.

Registered as the denoiser regularizer ``repa``, exactly as a third-party term would be: its parameters,
facts, module and math live here; the engine only hands it ``DenoiserRegularizerInputs``.

Grids: the teacher's feature grid rarely equals the denoiser's token grid (an f16 latent at patch 2 has 8x8
tokens, DINOv2-B/14 at 224 px has 16x16). The target map is resampled to the token grid: area averaging when
it shrinks (every teacher token counts once), bilinear when it grows. The DoG is applied before resampling, on
the teacher's own grid, where its sigmas are defined. A denoiser tap may be tokens (B, N, D) on a square
grid (transformers) or a feature map (B, D, gh, gw) (U-Nets); a map is read as row-major tokens.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

import attrs

from specmatch import DenoiserRegularizerSpec, Facts, ParamError, hookimpl, param
from specmatch.regularizers.lazy import torch_classes

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

__all__ = ["RepaParams", "alignment_targets", "resample_grid", "negative_cosine", "as_tokens"]

PROJECTORS = ("mlp", "conv")
TARGET_FILTERS = ("none", "dog")


@attrs.frozen(kw_only=True)
class RepaParams:
    depth: int = param(8, doc="the denoiser tap to align, 1-based (a transformer: tokens after this block; "
                              "REPA: 8)", ge=1)
    projector: str = param("mlp", doc="'mlp': REPA's per-token 3-layer SiLU MLP; 'conv': a 3x3 conv on the "
                                      "token grid (iREPA)", choices=PROJECTORS)
    projector_width: int = param(2048, doc="hidden width of the MLP projector", ge=1, le=1 << 16)
    target_filter: str = param("none", doc="'dog': difference-of-Gaussians band-pass on the teacher features "
                                           "(Spectrum Matching's REPA extension)", choices=TARGET_FILTERS)
    dog_sigma_low: float = param(0.6, doc="DoG: sigma of the narrow Gaussian (UNVERIFIED default)", gt=0)
    dog_kernel_low: int = param(3, doc="DoG: odd kernel size of the narrow Gaussian", ge=1)
    dog_sigma_high: float = param(2.0, doc="DoG: sigma of the wide Gaussian (UNVERIFIED default)", gt=0)
    dog_kernel_high: int = param(5, doc="DoG: odd kernel size of the wide Gaussian", ge=1)

    def dog(self) -> dict:
        return {"sigma_low": self.dog_sigma_low, "kernel_low": self.dog_kernel_low,
                "sigma_high": self.dog_sigma_high, "kernel_high": self.dog_kernel_high}


def repa_facts(params: RepaParams) -> Facts:
    """The DoG settings a band-pass needs; the tap index is checked by core against the denoiser's taps."""
    if params.target_filter == "dog":
        for key in ("dog_kernel_low", "dog_kernel_high"):
            if getattr(params, key) % 2 == 0:
                raise ParamError(key, f"expected an odd kernel size; got {getattr(params, key)}")
        if params.dog_sigma_high <= params.dog_sigma_low:
            raise ParamError("dog_sigma_high", f"expected more than dog_sigma_low ({params.dog_sigma_low}) for a "
                                               f"band-pass; got {params.dog_sigma_high}")
    return Facts()


def as_tokens(hidden: "Tensor") -> "Tensor":
    """A tap's hidden states as tokens (B, N, D): tokens pass through, a map (B, D, gh, gw) is read row-major."""
    return hidden.flatten(2).transpose(1, 2) if hidden.ndim == 4 else hidden


def token_grid(hidden: "Tensor") -> tuple[int, int]:
    """The (gh, gw) grid of a tap: a map's own, or the square grid of N tokens."""
    if hidden.ndim == 4:
        return int(hidden.shape[-2]), int(hidden.shape[-1])
    side = math.isqrt(hidden.shape[1])
    if side * side != hidden.shape[1]:
        raise ValueError(f"the denoiser tap has {hidden.shape[1]} tokens; tokens must lie on a square grid "
                         f"(return a (B, D, gh, gw) map for other grids)")
    return side, side


def resample_grid(features: "Tensor", grid: tuple[int, int]) -> "Tensor":
    """(B, D, gh, gw) -> (B, D, *grid): area average when shrinking, bilinear when growing, identity if equal."""
    import torch.nn.functional as F

    if tuple(features.shape[-2:]) == tuple(grid):
        return features
    if features.shape[-2] >= grid[0] and features.shape[-1] >= grid[1]:
        return F.interpolate(features, size=grid, mode="area")
    return F.interpolate(features, size=grid, mode="bilinear", align_corners=False)


def alignment_targets(features: "Tensor", grid: tuple[int, int], *, target_filter: str = "none",
                      dog: Optional[dict] = None) -> "Tensor":
    """Teacher features (B, D, gh, gw) -> per-token targets (B, N = grid[0]*grid[1], D), row-major like DiT.

    ``target_filter = "dog"`` applies :func:`specmatch.alignment.dog.dog_filter` (keyword arguments in
    ``dog``) on the teacher's grid first.
    """
    if target_filter not in TARGET_FILTERS:
        raise ValueError(f"target_filter must be one of {TARGET_FILTERS}, got {target_filter!r}")
    if target_filter == "dog":
        from .dog import dog_filter

        features = dog_filter(features, **(dog or {}))
    return resample_grid(features, grid).flatten(2).transpose(1, 2)


def negative_cosine(projected: "Tensor", targets: "Tensor") -> "Tensor":
    """REPA's projection loss: minus the mean cosine similarity over batch and tokens, in float32."""
    import torch.nn.functional as F

    if projected.shape != targets.shape:
        raise ValueError(f"projected tokens {tuple(projected.shape)} and targets {tuple(targets.shape)} differ")
    return -F.cosine_similarity(projected.float(), targets.float(), dim=-1).mean()


def _define() -> dict[str, type]:
    from torch import nn

    class TokenProjector(nn.Module):
        """Maps tokens (B, N, D) on a (gh, gw) grid to the teacher's width (B, N, D_t).

        ``"mlp"`` is REPA's per-token projector: Linear(D, W) - SiLU - Linear(W, W) - SiLU - Linear(W, D_t).
        ``"conv"`` is a 3x3 convolution over the token grid (iREPA's spatial projector).
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

        def forward(self, tokens: "Tensor", grid: tuple[int, int] | None = None) -> "Tensor":
            if self.kind == "mlp":
                return self.net(tokens)
            b, n, d = tokens.shape
            gh, gw = grid if grid is not None else (math.isqrt(n), math.isqrt(n))
            if gh * gw != n:
                raise ValueError(f"the conv projector needs the token grid; {n} tokens are not {gh}x{gw}")
            return self.net(tokens.transpose(1, 2).reshape(b, d, gh, gw)).flatten(2).transpose(1, 2)

    class RepresentationAlignment(nn.Module):
        """The ``repa`` term: projector + projection loss. Its parameters train with the denoiser."""

        def __init__(self, params: RepaParams, tap_width: int, feature_dim: int):
            super().__init__()
            self.params = params
            self.projector = TokenProjector(params.projector, tap_width, feature_dim, width=params.projector_width)

        def loss(self, inputs) -> "Tensor":
            grid = token_grid(inputs.hidden)
            projected = self.projector(as_tokens(inputs.hidden), grid)
            targets = alignment_targets(inputs.features, grid, target_filter=self.params.target_filter,
                                        dog=self.params.dog())
            return negative_cosine(projected, targets)

    return {"TokenProjector": TokenProjector, "RepresentationAlignment": RepresentationAlignment}


__getattr__ = torch_classes(_define, "TokenProjector", "RepresentationAlignment")


def build_repa(params: RepaParams, ctx):
    from specmatch.alignment.repa import RepresentationAlignment

    denoiser, teacher = ctx.upstream["denoiser"], ctx.upstream["alignment"]
    widths = tuple(getattr(denoiser, "tap_widths", ()) or ())
    if not widths:
        raise ParamError("depth", f"denoiser {type(denoiser).__name__} declares no tap_widths, so it offers no "
                                  f"hidden states to align")
    if not 1 <= params.depth <= len(widths):
        raise ParamError("depth", f"the denoiser has {len(widths)} alignment taps; expected a tap index in "
                                  f"1..{len(widths)}, got {params.depth}")
    feature_dim = getattr(teacher, "feature_dim", 0)
    if not feature_dim:
        raise ParamError("", f"teacher {type(teacher).__name__} reports no feature_dim")
    return RepresentationAlignment(params, widths[params.depth - 1], feature_dim)


@hookimpl
def specmatch_denoiser_regularizers():
    yield DenoiserRegularizerSpec(
        name="repa", factory=build_repa, params=RepaParams, facts=repa_facts, needs={"hidden", "features"},
        tap_param="depth",
        summary="REPA: projected hidden states aligned with the [alignment] teacher (raw or DoG band-passed); "
                "the paper's weight is 0.5")
