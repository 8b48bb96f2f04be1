"""The plugin module named by this package's ``specmatch`` entry point.

Light on purpose: only ``attrs`` and ``specmatch`` are imported here, so ``specmatch plugins list``,
``components list`` and ``validate`` never import torch. The torch code lives in
:mod:`specmatch_latent_unet.unet`, :mod:`specmatch_latent_unet.sampler` and
:mod:`specmatch_latent_unet.evaluation`, imported by the factories only when a run builds a component.
"""

import attrs

from specmatch import (DenoiserSpec, DiagnosticSpec, Facts, MetricSpec, ParamError, SamplerSpec, hookimpl,
                       param)

# -- latent-unet (denoiser) ------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LatentUNetParams:
    channels: int = param(32, doc="feature width of level 1 (full latent resolution)", ge=1)
    mult: int = param(2, doc="level 2 (half resolution) has channels * mult features", ge=1, le=8)
    blocks: int = param(1, doc="residual blocks per level, in the encoder and in the decoder", ge=1, le=4)
    norm_groups: int = param(8, doc="GroupNorm groups; must divide channels and channels * mult", ge=1)
    time_scale: float = param(1000.0, doc="t in [0, 1] (1 = noise) is multiplied by this before the "
                                          "sinusoidal time embedding", gt=0)
    dropout: float = param(0.0, doc="dropout inside the residual blocks (active in training mode only)",
                           ge=0, lt=1)


def latent_unet_tap_widths(params: LatentUNetParams) -> tuple[int, int, int]:
    """Feature widths of the three taps: encoder level 1, the middle (level 2), decoder level 1."""
    return (params.channels, params.channels * params.mult, params.channels)


def latent_unet_facts(params: LatentUNetParams) -> Facts:
    for key, width in (("channels", params.channels), ("mult", params.channels * params.mult)):
        if width % params.norm_groups:
            raise ParamError("norm_groups", f"expected a divisor of the level width {width} ({key}); "
                                            f"got {params.norm_groups}")

    def check_latent(shape):
        # one halving between the two levels: both sides must be even (non-square latents are fine)
        _, h, w = shape
        if h % 2 or w % 2:
            raise ParamError("", f"latent-unet halves the latent once, so both latent sides must be even; "
                                 f"got {h}x{w} (change the resolution or the autoencoder's downsampling)")

    return Facts(depth=len(latent_unet_tap_widths(params)), check_latent=check_latent)


def build_latent_unet(params: LatentUNetParams, ctx):
    from specmatch_latent_unet.unet import LatentUNet

    shape = tuple(ctx.upstream["latent_shape"])
    latent_unet_facts(params).check_latent(shape)   # the same refusal as validate's, for direct builds
    return LatentUNet(latent_channels=shape[0], num_classes=ctx.upstream.get("num_classes", 0),
                      channels=params.channels, mult=params.mult, blocks=params.blocks,
                      norm_groups=params.norm_groups, time_scale=params.time_scale, dropout=params.dropout)


# -- latent-midpoint (sampler) ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class MidpointParams:
    steps: int = param(16, doc="midpoint steps from t_max to 0; two network evaluations each", ge=1)
    cfg_scale: float = param(1.0, doc="classifier-free guidance scale (1 = off; needs a class-conditional "
                                      "denoiser)", ge=0)
    guidance_low: float = param(0.0, doc="guidance applies for guidance_low <= t <= guidance_high", ge=0, le=1)
    guidance_high: float = param(1.0, doc="upper end of the guidance interval", ge=0, le=1)


def midpoint_facts(params: MidpointParams) -> Facts:
    if params.guidance_low > params.guidance_high:
        raise ParamError("guidance_low", f"expected at most guidance_high {params.guidance_high}; "
                                         f"got {params.guidance_low}")
    needs_labels = "cfg_scale" if params.cfg_scale != 1 else ""
    try:   # a specmatch whose sampler contract declares what a sampler integrates (validate pairs it)
        from specmatch.diffusion.compatibility import SamplerFacts
    except ImportError:
        return Facts(needs_labels=needs_labels)
    return SamplerFacts(needs_labels=needs_labels, integrates_time="midpoint steps")


def build_midpoint(params: MidpointParams, ctx):
    from specmatch_latent_unet.sampler import MidpointSampler

    return MidpointSampler(steps=params.steps, cfg_scale=params.cfg_scale, guidance_low=params.guidance_low,
                           guidance_high=params.guidance_high)


# -- pixel-mse (metric) and latent-channel-variance (diagnostic) ---------------------------------------


def build_pixel_mse(params, ctx):
    from specmatch_latent_unet.evaluation import PixelMSE

    return PixelMSE()


@attrs.frozen(kw_only=True)
class ChannelVarianceParams:
    batch_size: int = param(32, doc="images encoded at a time", ge=1)


def build_channel_variance(params: ChannelVarianceParams, ctx):
    from specmatch_latent_unet.evaluation import ChannelVariance

    return ChannelVariance(batch_size=params.batch_size)


# -- hooks -----------------------------------------------------------------------------------------------


@hookimpl
def specmatch_denoisers():
    yield DenoiserSpec(name="latent-unet", factory=build_latent_unet, params=LatentUNetParams,
                       facts=latent_unet_facts, alignable=True,
                       summary="a two-level U-Net on latents (GroupNorm, time and class embeddings); "
                               "feature-map taps for alignment")


@hookimpl
def specmatch_samplers():
    yield SamplerSpec(name="latent-midpoint", factory=build_midpoint, params=MidpointParams,
                      facts=midpoint_facts,
                      summary="explicit midpoint (2nd-order) steps on the probability-flow ODE, with "
                              "classifier-free guidance in an interval")


@hookimpl
def specmatch_metrics():
    yield MetricSpec(name="pixel-mse", factory=build_pixel_mse, per_image=True,
                     summary="mean squared error per image pair in [-1, 1], averaged over the pairs")


@hookimpl
def specmatch_diagnostics():
    yield DiagnosticSpec(name="latent-channel-variance", factory=build_channel_variance,
                         params=ChannelVarianceParams, output="channel_variance.json",
                         summary="variance of each latent channel of the encoder's mean, and their spread")
