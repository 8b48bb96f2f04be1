"""Built-in autoencoders: the SD-VAE-style convolutional autoencoder of the paper (method.md s4.1)."""

from typing import Optional

import attrs

from specmatch import AutoencoderSpec, Problem, hookimpl, param
from specmatch.nn.presets import DOWNSAMPLE_PADDINGS, SDVAE_PRESETS, downsample_factor


@attrs.frozen(kw_only=True)
class SDVAEParams:
    preset: str = param("tiny-f4d4", doc="architecture preset; the fields below override it",
                         choices=tuple(SDVAE_PRESETS))
    channels: Optional[tuple[int, ...]] = param(None, doc="channels per level (len = log2(f) + 1)", ge=1)
    latent_channels: Optional[int] = param(None, doc="latent channels C", ge=1)
    encoder_res_blocks: Optional[int] = param(None, doc="ResBlocks per encoder level (paper: 2)", ge=1)
    decoder_res_blocks: Optional[int] = param(None, doc="ResBlocks per decoder level (paper: 3)", ge=1)
    mid_attention: Optional[bool] = param(None, doc="single-head self-attention in the mid blocks")
    norm_groups: Optional[int] = param(None, doc="GroupNorm groups (paper: 32)", ge=1)
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


def build_sdvae(params: SDVAEParams, ctx):
    from specmatch.nn.autoencoder import SDVAE

    return SDVAE(**params.resolved(), double_z=not params.deterministic,
                 downsample_padding=params.downsample_padding)


@hookimpl
def specmatch_autoencoders():
    yield AutoencoderSpec(name="sdvae", factory=build_sdvae, params=SDVAEParams, aliases=("sd-vae",),
                          summary="SD-VAE-style conv autoencoder (GN/SiLU ResBlocks, mid attention); "
                                  "presets f8d4, f16d16, f32d64, f64d256 and tiny CPU ones")


@hookimpl
def specmatch_validate_recipe(recipe):
    comp = recipe.component("autoencoder")
    data = recipe.component("data")
    if comp is None or comp.spec.name != "sdvae" or data is None:
        return []
    resolution = getattr(data.params, "resolution", None)
    factor = downsample_factor(tuple(comp.params.resolved()["channels"]))
    if isinstance(resolution, int) and resolution % factor:
        return [Problem("data.params.resolution", f"expected a multiple of the autoencoder's downsampling "
                                                  f"factor {factor}; got {resolution}")]
    return []
