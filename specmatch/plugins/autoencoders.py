"""Built-in autoencoders: the SD-VAE-style convolutional autoencoder of the paper (method.md s4.1), and a
pretrained diffusers ``AutoencoderKL`` to fine-tune (``diffusers-vae``)."""

from typing import Optional

import attrs

from specmatch import AutoencoderSpec, Facts, ParamError, hookimpl, param
from specmatch.nn.presets import DOWNSAMPLE_PADDINGS, SDVAE_PRESETS, downsample_factor

MAX_CHANNELS = 8192  # wider convolutions are a typo, not a model that fits in memory
MAX_LEVELS = 8  # downsampling up to 2**7 = 128


@attrs.frozen(kw_only=True)
class SDVAEParams:
    preset: str = param("tiny-f4d4", doc="architecture preset; the fields below override it",
                         choices=tuple(SDVAE_PRESETS))
    channels: Optional[tuple[int, ...]] = param(None, doc="channels per level (len = log2(f) + 1)", ge=1,
                                                le=MAX_CHANNELS)
    latent_channels: Optional[int] = param(None, doc="latent channels C", ge=1, le=MAX_CHANNELS)
    encoder_res_blocks: Optional[int] = param(None, doc="ResBlocks per encoder level (paper: 2)", ge=1, le=64)
    decoder_res_blocks: Optional[int] = param(None, doc="ResBlocks per decoder level (paper: 3)", ge=1, le=64)
    mid_attention: Optional[bool] = param(None, doc="single-head self-attention in the mid blocks")
    norm_groups: Optional[int] = param(None, doc="GroupNorm groups (paper: 32)", ge=1, le=MAX_CHANNELS)
    dropout: Optional[float] = param(None, doc="ResBlock dropout", ge=0, lt=1)
    deterministic: bool = param(False, doc="plain AE: the encoder outputs the latent itself (no variance)")
    downsample_padding: str = param("symmetric", doc="stride-2 conv padding: 'symmetric' = 1 on every side "
                                                     "(the authors'); 'ldm' = right/bottom only (LDM/diffusers "
                                                     "weights need it)", choices=DOWNSAMPLE_PADDINGS)

    def resolved(self) -> dict:
        """Preset merged with the explicit overrides."""
        out = dict(SDVAE_PRESETS[self.preset])
        for name in ("channels", "latent_channels", "encoder_res_blocks", "decoder_res_blocks",
                     "mid_attention", "norm_groups", "dropout"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def sdvae_facts(params: SDVAEParams) -> Facts:
    """Latent geometry from the preset and overrides; the GroupNorm rule the model enforces when built."""
    arch = params.resolved()
    channels = tuple(arch["channels"])
    if not 1 <= len(channels) <= MAX_LEVELS:
        raise ParamError("channels", f"expected 1 to {MAX_LEVELS} levels; got {len(channels)}")
    groups = arch.get("norm_groups", 32)
    for i, c in enumerate(channels):
        if c % min(groups, c):  # GroupNorm uses min(norm_groups, channels) groups
            key = f"channels[{i}]" if params.channels is not None else "norm_groups"
            raise ParamError(key, f"{c} channels are not divisible by {min(groups, c)} GroupNorm groups "
                                  f"(norm_groups={groups}); use multiples of norm_groups")
    return Facts(latent_channels=arch["latent_channels"], downsample_factor=downsample_factor(channels))


def build_sdvae(params: SDVAEParams, ctx):
    from specmatch.nn.autoencoder import SDVAE

    sdvae_facts(params)  # refuse bad values as ParamError, before the model raises deep inside
    return SDVAE(**params.resolved(), double_z=not params.deterministic,
                 downsample_padding=params.downsample_padding)


@hookimpl
def specmatch_autoencoders():
    yield AutoencoderSpec(name="sdvae", factory=build_sdvae, params=SDVAEParams, aliases=("sd-vae",),
                          facts=sdvae_facts,
                          summary="SD-VAE-style conv autoencoder (GN/SiLU ResBlocks, mid attention); "
                                  "presets f8d4, f16d16, f32d64, f64d256 and tiny CPU ones")
    yield diffusers_vae_spec()


# -- diffusers' AutoencoderKL (optional extra specmatch[diffusers]) ------------------------------------------

DIFFUSERS_CONFIG = "config.json"
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"


@attrs.frozen(kw_only=True)
class DiffusersVAEParams:
    path: str = param(doc="local diffusers AutoencoderKL: a folder save_pretrained wrote (config.json and "
                          "diffusion_pytorch_model.safetensors; a pipeline folder with them under vae/ also "
                          "works), or one .safetensors checkpoint file (then set config). SD 1.x/2.x, SDXL "
                          "(f8, 4 channels), SD3 and FLUX (f8, 16 channels) VAEs. Never downloaded",
                      path=True)
    config: str = param("", doc="for a single checkpoint file: a local folder holding its AutoencoderKL "
                                "config.json ('' for a folder path)", path=True)


def _diffusers_config_file(params: DiffusersVAEParams, ctx) -> Optional[str]:
    """The config.json that describes the VAE, as a path the recipe's folder resolves ('' when none applies)."""
    import os

    root = ctx.resolve_path(params.path)
    if params.config:
        return os.path.join(params.config, DIFFUSERS_CONFIG)
    if root.suffix == ".safetensors" or root.is_file():
        return None
    if not (root / DIFFUSERS_CONFIG).is_file() and (root / "vae" / DIFFUSERS_CONFIG).is_file():
        return os.path.join(params.path, "vae", DIFFUSERS_CONFIG)
    return os.path.join(params.path, DIFFUSERS_CONFIG)


def diffusers_vae_facts(params: DiffusersVAEParams, ctx) -> Facts:
    """Latent channels and factor from the VAE's config.json (plain JSON: no torch, no diffusers)."""
    import json
    import os

    from specmatch import FileNeed

    if not params.path:
        raise ParamError("path", "expected the local folder or checkpoint file of a diffusers AutoencoderKL")
    is_file = params.path.endswith(".safetensors")
    files = [FileNeed(param="path", path=params.path, what="diffusers VAE " + ("checkpoint" if is_file else
                                                                               "folder"), folder=not is_file)]
    if is_file and not params.config:
        raise ParamError("config", f"{params.path} is a single checkpoint file: expected a local folder with its "
                                   f"AutoencoderKL config.json (nothing is downloaded)")
    config = _diffusers_config_file(params, ctx)
    if config is None or (not params.config and not ctx.resolve_path(params.path).exists()):
        return Facts(files=files)  # a missing folder is reported once, by the file check
    files.append(FileNeed(param="config" if params.config else "path", path=config, what="AutoencoderKL config"))
    if not params.config:  # a save_pretrained folder: the weights file diffusers loads (use_safetensors)
        files.append(FileNeed(param="path", path=os.path.join(os.path.dirname(config), DIFFUSERS_WEIGHTS),
                              what="AutoencoderKL weights"))
    target = ctx.resolve_path(config)
    if not target.is_file():
        return Facts(files=files)  # reported by the file check (skipped with --no-file-checks)
    try:
        data = json.loads(target.read_text())
        channels = int(data.get("latent_channels", 4))
        levels = len(data.get("block_out_channels", (64,)))
    except (OSError, ValueError, TypeError) as exc:
        raise ParamError("config" if params.config else "path", f"cannot read {target}: {exc}") from None
    if data.get("_class_name", "AutoencoderKL") != "AutoencoderKL":
        raise ParamError("config" if params.config else "path",
                         f"{target} describes a {data.get('_class_name')}; expected an AutoencoderKL")
    return Facts(latent_channels=channels, downsample_factor=2 ** (levels - 1), files=files)


def build_diffusers_vae(params: DiffusersVAEParams, ctx):
    from specmatch.nn.diffusers_vae import DiffusersVAE, load_autoencoder_kl

    config = ctx.resolve_path(params.config) if params.config else None
    return DiffusersVAE(load_autoencoder_kl(ctx.resolve_path(params.path), config))


def diffusers_vae_spec() -> AutoencoderSpec:
    return AutoencoderSpec(name="diffusers-vae", factory=build_diffusers_vae, params=DiffusersVAEParams,
                          facts=diffusers_vae_facts, aliases=("autoencoderkl",),
                          summary="a pretrained diffusers AutoencoderKL (SD 1.x/2.x, SDXL, SD3, FLUX VAEs) from "
                                  "a local folder or file; needs specmatch[diffusers]")
