"""Built-in denoiser families beside the DiT: SiT, U-ViT, LightningDiT and an ADM-style U-Net.

Written like a third-party plugin: params classes, torch-free facts (tap depth and the latent geometry each
family accepts) and lazy factories that import the models from :mod:`specmatch.denoisers`. The preset sizes
come from :mod:`specmatch.denoisers.presets`, plain data, so ``validate`` never imports torch. See docs/denoisers.md.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import attrs

from specmatch import DenoiserSpec, Facts, ParamError, hookimpl, param
from specmatch.denoisers.presets import (ADM_PRESETS as ADM_PRESET_SIZES,
                                         LIGHTNINGDIT_PRESETS as LIGHTNINGDIT_PRESET_SIZES,
                                         SIT_PRESETS as SIT_PRESET_SIZES, UVIT_PRESETS as UVIT_PRESET_SIZES)


def _size(params: Any, presets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The preset's sizes with every param the user set (not None) on top."""
    size = dict(presets[params.preset])
    size.update({k: getattr(params, k) for k in size if getattr(params, k, None) is not None})
    return size


def _overrides(params: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: getattr(params, k) for k in keys if getattr(params, k) is not None}


def _key(params: Any, *names: str) -> str:
    """The first of ``names`` the user set (so an error points at what they wrote), else the preset."""
    return next((n for n in names if getattr(params, n, None) is not None), "preset")


def _check_heads(params: Any, size: dict[str, Any], *, head_multiple: int = 1) -> None:
    width, heads = size["hidden_size"], size["num_heads"]
    if width % heads:
        raise ParamError(_key(params, "hidden_size", "num_heads"),
                         f"hidden_size {width} is not divisible by num_heads {heads}")
    if width % 4:
        raise ParamError(_key(params, "hidden_size"),
                         f"expected a multiple of 4 (2-D sin-cos position embedding); got hidden_size {width}")
    if (width // heads) % head_multiple:
        raise ParamError(_key(params, "hidden_size", "num_heads"),
                         f"the head width hidden_size / num_heads = {width // heads} must be a multiple of "
                         f"{head_multiple} (2-D rotary embedding)")


def _square_patch_check(family: str, patch_size: int) -> Callable[[tuple[int, int, int]], None]:
    def check_latent(shape: tuple[int, int, int]) -> None:
        _, h, w = shape
        if h != w:
            raise ParamError("", f"{family} needs a square latent (its tokens form a square grid); got {h}x{w}")
        if h % patch_size:
            raise ParamError("patch_size", f"expected a divisor of the latent side {h}; got {patch_size}")

    return check_latent


def _latent_side(ctx) -> tuple[int, int, int]:
    return tuple(ctx.upstream["latent_shape"])


# ---------------------------------------------------------------------------------------------------------
# SiT
# ---------------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SiTParams:
    preset: str = param("sit-micro", doc="size preset (sit-s/b/l/xl: SiT-S/B/L/XL); the fields below override "
                                         "it", choices=tuple(SIT_PRESET_SIZES))
    patch_size: int = param(2, doc="latent patch size p (divides the latent side; SiT-XL/2: 2)", ge=1, le=64)
    hidden_size: Optional[int] = param(None, doc="token width (a multiple of 4 and of num_heads)", ge=8, le=16384)
    depth: Optional[int] = param(None, doc="transformer blocks (= alignment taps)", ge=1, le=1024)
    num_heads: Optional[int] = param(None, doc="attention heads", ge=1, le=1024)
    mlp_ratio: float = param(4.0, doc="MLP width / token width", gt=0, le=64)
    learn_sigma: bool = param(False, doc="predict 2C channels and keep C (the original SiT layout; REPA: false)")
    qk_norm: bool = param(False, doc="LayerNorm on queries and keys per head (REPA's option)")


def sit_facts(params: SiTParams) -> Facts:
    size = _size(params, SIT_PRESET_SIZES)
    _check_heads(params, size)
    return Facts(depth=size["depth"], check_latent=_square_patch_check("SiT", params.patch_size))


def build_sit(params: SiTParams, ctx):
    from specmatch.denoisers.sit import build_sit as build

    c, h, w = _latent_side(ctx)
    sit_facts(params).check_latent((c, h, w))
    return build(params.preset, input_size=h, in_channels=c, patch_size=params.patch_size,
                 num_classes=ctx.upstream.get("num_classes", 0), mlp_ratio=params.mlp_ratio,
                 learn_sigma=params.learn_sigma, qk_norm=params.qk_norm,
                 **_overrides(params, ("hidden_size", "depth", "num_heads")))


# ---------------------------------------------------------------------------------------------------------
# U-ViT
# ---------------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class UViTParams:
    preset: str = param("uvit-micro", doc="size preset (uvit-small/mid/large/huge after the official configs); "
                                          "the fields below override it", choices=tuple(UVIT_PRESET_SIZES))
    patch_size: int = param(2, doc="latent patch size p (divides the latent side; U-ViT-L/2: 2)", ge=1, le=64)
    hidden_size: Optional[int] = param(None, doc="token width (a multiple of num_heads)", ge=8, le=16384)
    depth: Optional[int] = param(None, doc="even number of blocks around the middle one (depth + 1 blocks = "
                                           "alignment taps)", ge=2, le=1024)
    num_heads: Optional[int] = param(None, doc="attention heads", ge=1, le=1024)
    mlp_ratio: float = param(4.0, doc="MLP width / token width", gt=0, le=64)
    conv: Optional[bool] = param(None, doc="3x3 convolution after the output (omit: the preset's; U-ViT-H: off)")
    long_skip: bool = param(True, doc="long skip connections from the in blocks to the out blocks")
    mlp_time_embed: bool = param(False, doc="an MLP on the time token (off in every official config)")
    time_scale: float = param(1000.0, doc="t is multiplied by this before the sinusoid (1000: the discrete "
                                          "step n = 1000 t of U-ViT's discrete scripts; 999 in its "
                                          "continuous-time ones)", gt=0, le=1e6)


def uvit_facts(params: UViTParams) -> Facts:
    size = _size(params, UVIT_PRESET_SIZES)
    if size["hidden_size"] % size["num_heads"]:
        raise ParamError(_key(params, "hidden_size", "num_heads"),
                         f"hidden_size {size['hidden_size']} is not divisible by num_heads {size['num_heads']}")
    if size["depth"] % 2:
        raise ParamError(_key(params, "depth"), f"expected an even depth (depth/2 blocks on each side of the "
                                                f"middle one); got {size['depth']}")
    return Facts(depth=size["depth"] + 1, check_latent=_square_patch_check("U-ViT", params.patch_size))


def build_uvit(params: UViTParams, ctx):
    from specmatch.denoisers.uvit import build_uvit as build

    c, h, w = _latent_side(ctx)
    uvit_facts(params).check_latent((c, h, w))
    return build(params.preset, input_size=h, in_channels=c, patch_size=params.patch_size,
                 num_classes=ctx.upstream.get("num_classes", 0), mlp_ratio=params.mlp_ratio,
                 long_skip=params.long_skip, mlp_time_embed=params.mlp_time_embed, time_scale=params.time_scale,
                 **_overrides(params, ("hidden_size", "depth", "num_heads", "conv")))


# ---------------------------------------------------------------------------------------------------------
# LightningDiT
# ---------------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LightningDiTParams:
    preset: str = param("lightningdit-micro", doc="size preset (lightningdit-b/l/xl); the fields below override "
                                                  "it", choices=tuple(LIGHTNINGDIT_PRESET_SIZES))
    patch_size: int = param(1, doc="latent patch size p (divides the latent side; VA-VAE's f16d32: 1)",
                            ge=1, le=64)
    hidden_size: Optional[int] = param(None, doc="token width (a multiple of 4 and of num_heads)", ge=8, le=16384)
    depth: Optional[int] = param(None, doc="transformer blocks (= alignment taps)", ge=1, le=1024)
    num_heads: Optional[int] = param(None, doc="attention heads (head width a multiple of 4 with rope)",
                                     ge=1, le=1024)
    mlp_ratio: float = param(4.0, doc="feed-forward width / token width (SwiGLU uses 2/3 of it)", gt=0, le=64)
    swiglu: bool = param(True, doc="SwiGLU feed-forward (else a GELU MLP)")
    rmsnorm: bool = param(True, doc="RMSNorm (else affine-free LayerNorm)")
    rope: bool = param(True, doc="2-D rotary position embedding on queries and keys")
    qk_norm: bool = param(False, doc="normalise queries and keys per head (off in the released config)")
    learn_sigma: bool = param(False, doc="predict 2C channels and keep C (off in LightningDiT)")


def lightningdit_facts(params: LightningDiTParams) -> Facts:
    size = _size(params, LIGHTNINGDIT_PRESET_SIZES)
    _check_heads(params, size, head_multiple=4 if params.rope else 1)
    return Facts(depth=size["depth"], check_latent=_square_patch_check("LightningDiT", params.patch_size))


def build_lightningdit(params: LightningDiTParams, ctx):
    from specmatch.denoisers.lightningdit import build_lightningdit as build

    c, h, w = _latent_side(ctx)
    lightningdit_facts(params).check_latent((c, h, w))
    return build(params.preset, input_size=h, in_channels=c, patch_size=params.patch_size,
                 num_classes=ctx.upstream.get("num_classes", 0), mlp_ratio=params.mlp_ratio,
                 swiglu=params.swiglu, rmsnorm=params.rmsnorm, rope=params.rope, qk_norm=params.qk_norm,
                 learn_sigma=params.learn_sigma, **_overrides(params, ("hidden_size", "depth", "num_heads")))


# ---------------------------------------------------------------------------------------------------------
# ADM U-Net
# ---------------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ADMUNetParams:
    preset: str = param("adm-micro", doc="size preset (adm-64/128/256: the ADM ImageNet models); the fields "
                                         "below override it", choices=tuple(ADM_PRESET_SIZES))
    model_channels: Optional[int] = param(None, doc="base width of the first level", ge=1, le=4096)
    channel_mult: Optional[tuple[int, ...]] = param(None, doc="width multiplier per resolution level (the "
                                                              "latent side must divide by 2**(levels-1))",
                                                    ge=1, le=64)
    num_res_blocks: Optional[int] = param(None, doc="residual blocks per encoder level", ge=1, le=64)
    attention_ds: Optional[tuple[int, ...]] = param(None, doc="downsampling factors 2**level of the levels "
                                                              "with self-attention", ge=1, le=4096)
    num_head_channels: Optional[int] = param(None, doc="channels per attention head", ge=1, le=4096)
    norm_groups: Optional[int] = param(None, doc="GroupNorm groups (divides every width; ADM: 32)", ge=1, le=1024)
    dropout: float = param(0.0, doc="dropout inside residual blocks", ge=0, lt=1)
    resblock_updown: bool = param(True, doc="resample with residual blocks (else strided / nearest convs)")
    learn_sigma: bool = param(False, doc="predict 2C channels and keep C (ADM's layout)")
    time_scale: float = param(1000.0, doc="t is multiplied by this before the sinusoid (1000: ADM's steps)",
                              gt=0, le=1e6)


_ADM_KEYS = ("model_channels", "channel_mult", "num_res_blocks", "attention_ds", "num_head_channels", "norm_groups")


def adm_unet_facts(params: ADMUNetParams) -> Facts:
    size = _size(params, ADM_PRESET_SIZES)
    if not size["channel_mult"]:
        raise ParamError("channel_mult", "expected at least one level")
    widths = [size["model_channels"] * m for m in size["channel_mult"]]
    groups = size["norm_groups"]
    for width in (size["model_channels"], *widths):
        if width % groups:
            raise ParamError(_key(params, "norm_groups", "model_channels", "channel_mult"),
                             f"width {width} is not divisible by norm_groups {groups}")
    levels = len(size["channel_mult"])
    factors = [2 ** level for level in range(levels)]
    stray = [ds for ds in size["attention_ds"] if ds not in factors]
    if stray:
        raise ParamError(_key(params, "attention_ds", "channel_mult"),
                         f"{stray} name no level: with {levels} levels the downsampling factors are {factors}")
    attended = [w for level, w in enumerate(widths) if 2 ** level in size["attention_ds"]] + [widths[-1]]
    for width in attended:
        if width % size["num_head_channels"]:
            raise ParamError(_key(params, "num_head_channels", "model_channels", "channel_mult"),
                             f"attention width {width} is not divisible by num_head_channels "
                             f"{size['num_head_channels']}")
    factor = 2 ** (levels - 1)

    def check_latent(shape: tuple[int, int, int]) -> None:
        _, h, w = shape
        if h % factor or w % factor:
            raise ParamError(_key(params, "channel_mult"),
                             f"{levels} levels halve the latent {levels - 1} times: its sides must be multiples "
                             f"of {factor}; got {h}x{w}")

    return Facts(depth=2 * levels + 1, check_latent=check_latent)


def build_adm_unet(params: ADMUNetParams, ctx):
    from specmatch.denoisers.adm_unet import build_adm_unet as build

    c, h, w = _latent_side(ctx)
    adm_unet_facts(params).check_latent((c, h, w))
    return build(params.preset, in_channels=c, num_classes=ctx.upstream.get("num_classes", 0),
                 dropout=params.dropout, resblock_updown=params.resblock_updown, learn_sigma=params.learn_sigma,
                 time_scale=params.time_scale, **_overrides(params, _ADM_KEYS))


@hookimpl
def specmatch_denoisers():
    yield DenoiserSpec(name="sit", factory=build_sit, params=SiTParams, alignable=True, facts=sit_facts,
                       summary="SiT (REPA's backbone): DiT layers with continuous time; SiT-S/B/L/XL presets")
    yield DenoiserSpec(name="uvit", factory=build_uvit, params=UViTParams, alignable=True, facts=uvit_facts,
                       summary="U-ViT: time and class as tokens, long skips; presets after the official configs")
    yield DenoiserSpec(name="lightningdit", factory=build_lightningdit, params=LightningDiTParams, alignable=True,
                       facts=lightningdit_facts,
                       summary="LightningDiT (VA-VAE's generator): SwiGLU, RMSNorm, 2-D RoPE, optional QK-norm")
    yield DenoiserSpec(name="adm-unet", factory=build_adm_unet, params=ADMUNetParams, alignable=True,
                       facts=adm_unet_facts,
                       summary="ADM-style U-Net: scale-shift residual blocks, attention at chosen levels; "
                               "taps are feature maps")
