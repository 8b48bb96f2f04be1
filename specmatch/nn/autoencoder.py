"""SD-VAE-style convolutional autoencoder (the authors' ``modules/vae.py``; method.md s4.1).

Layout, for ``channels = (c0, c1, ..., cL)`` and latent channels C:

* Encoder: conv3x3 (in -> c0); per level ``encoder_res_blocks`` ResBlocks, then a stride-2 conv3x3 downsample
  on all but the last level (padding 1 on every side as the authors do, or LDM's right/bottom padding);
  mid block (Res -> self-attention -> Res); GN -> SiLU -> conv3x3 ``conv_out`` to 2C (C for a plain AE);
  1x1 "quant" conv.
* Decoder: 1x1 "post-quant" conv C -> C; conv3x3 to cL; mid block; levels in reverse with
  ``decoder_res_blocks`` ResBlocks each, then nearest x2 upsample + conv3x3 on all but the last level;
  GN -> SiLU -> conv3x3 to ``out_channels``.

Images are (B, in_channels, H, W) in [-1, 1]; latents are (B, C, H/f, W/f) with f = 2**(len(channels) - 1).
Use ``build_sdvae("f16d16")`` or another name from ``PRESETS``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from specmatch.core.errors import SpecmatchError
from specmatch.nn.posterior import DeterministicPosterior, DiagonalGaussian
from specmatch.nn.presets import DOWNSAMPLE_PADDINGS, SDVAE_PRESETS


class ArchitectureError(SpecmatchError, ValueError):
    """An architecture setting cannot be built (e.g. channels not divisible by the GroupNorm groups).

    A ``ValueError`` for plain torch users and a ``SpecmatchError`` so the command line prints it cleanly.
    """


def group_norm(channels: int, norm_groups: int) -> nn.GroupNorm:
    """GroupNorm with ``min(norm_groups, channels)`` groups and eps 1e-6 (as in SD-VAE)."""
    groups = min(norm_groups, channels)
    if groups < 1 or channels % groups != 0:
        raise ArchitectureError(
            f"GroupNorm needs the channel count to be divisible by the group count: {channels} channels, "
            f"{groups} groups (norm_groups={norm_groups}); choose channels that are multiples of norm_groups "
            f"or change norm_groups")
    return nn.GroupNorm(groups, channels, eps=1e-6)


class ResBlock(nn.Module):
    """GN -> SiLU -> conv3x3 -> GN -> SiLU -> dropout -> conv3x3, plus the input (1x1 conv if channels change)."""

    def __init__(self, in_channels: int, out_channels: int, *, norm_groups: int, dropout: float):
        super().__init__()
        self.norm1 = group_norm(in_channels, norm_groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels, norm_groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Single-head self-attention over all h*w positions, with GN in front and a residual connection."""

    def __init__(self, channels: int, *, norm_groups: int):
        super().__init__()
        self.norm = group_norm(channels, norm_groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        normed = self.norm(x)

        def tokens(t: Tensor) -> Tensor:  # (B, C, h, w) -> (B, 1 head, h*w, C)
            return t.flatten(2).transpose(1, 2).unsqueeze(1)

        # Default scale 1/sqrt(C), as in SD-VAE's AttnBlock.
        attended = F.scaled_dot_product_attention(tokens(self.q(normed)), tokens(self.k(normed)),
                                                  tokens(self.v(normed)))
        attended = attended.squeeze(1).transpose(1, 2).reshape(b, c, h, w)
        return x + self.out(attended)


class MidBlock(nn.Module):
    """Res -> (self-attention) -> Res at the lowest resolution."""

    def __init__(self, channels: int, *, attention: bool, norm_groups: int, dropout: float):
        super().__init__()
        self.res1 = ResBlock(channels, channels, norm_groups=norm_groups, dropout=dropout)
        self.attn = SelfAttention(channels, norm_groups=norm_groups) if attention else nn.Identity()
        self.res2 = ResBlock(channels, channels, norm_groups=norm_groups, dropout=dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.res2(self.attn(self.res1(x)))


class Downsample(nn.Module):
    """Halve H and W with a stride-2 conv3x3. Both layouts have the same weights and output shape, but the
    sampling grid differs by one pixel, so weights trained in one layout do not fit the other.

    * ``"symmetric"``: padding 1 on every side (the Spectrum Matching authors' ``DownSampleBlock2D``).
    * ``"ldm"``: pad right/bottom by one, then no padding (LDM / SD-VAE / diffusers; their pretrained weights).
    """

    def __init__(self, channels: int, padding: str = "symmetric"):
        super().__init__()
        if padding not in DOWNSAMPLE_PADDINGS:
            raise ArchitectureError(f"unknown downsample padding {padding!r}; expected one of "
                                    f"{', '.join(DOWNSAMPLE_PADDINGS)}")
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1 if padding == "symmetric" else 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) if self.padding == "symmetric" else self.conv(F.pad(x, (0, 1, 0, 1)))

    def extra_repr(self) -> str:
        return f"padding={self.padding!r}"


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour x2, then conv3x3."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _level(blocks: list[nn.Module], resample: nn.Module | None) -> nn.Sequential:
    """One resolution level: its ResBlocks followed by the optional resampling layer."""
    return nn.Sequential(*blocks, *([resample] if resample is not None else []))


class Encoder(nn.Module):
    """Images (B, in_channels, H, W) -> moments (B, 2C, H/f, W/f), or (B, C, ...) when ``double_z`` is False."""

    def __init__(self, *, in_channels: int, channels: Sequence[int], res_blocks: int, latent_channels: int,
                 mid_attention: bool, norm_groups: int, dropout: float, double_z: bool,
                 downsample_padding: str = "symmetric"):
        super().__init__()
        block = dict(norm_groups=norm_groups, dropout=dropout)
        self.conv_in = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        levels = []
        width = channels[0]
        for index, level_width in enumerate(channels):
            blocks = []
            for _ in range(res_blocks):
                blocks.append(ResBlock(width, level_width, **block))
                width = level_width
            is_last = index == len(channels) - 1
            levels.append(_level(blocks, None if is_last else Downsample(width, downsample_padding)))
        self.levels = nn.Sequential(*levels)
        self.mid = MidBlock(width, attention=mid_attention, **block)
        self.norm_out = group_norm(width, norm_groups)
        moment_channels = 2 * latent_channels if double_z else latent_channels
        self.conv_out = nn.Conv2d(width, moment_channels, 3, padding=1)
        self.quant_conv = nn.Conv2d(moment_channels, moment_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.mid(self.levels(self.conv_in(x)))
        return self.quant_conv(self.conv_out(F.silu(self.norm_out(h))))


class Decoder(nn.Module):
    """Latents (B, C, h, w) -> images (B, out_channels, h*f, w*f)."""

    def __init__(self, *, out_channels: int, channels: Sequence[int], res_blocks: int, latent_channels: int,
                 mid_attention: bool, norm_groups: int, dropout: float):
        super().__init__()
        block = dict(norm_groups=norm_groups, dropout=dropout)
        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, 1)
        width = channels[-1]
        self.conv_in = nn.Conv2d(latent_channels, width, 3, padding=1)
        self.mid = MidBlock(width, attention=mid_attention, **block)
        levels = []
        for index in reversed(range(len(channels))):
            blocks = []
            for _ in range(res_blocks):
                blocks.append(ResBlock(width, channels[index], **block))
                width = channels[index]
            is_last = index == 0
            levels.append(_level(blocks, None if is_last else Upsample(width)))
        self.levels = nn.Sequential(*levels)
        self.norm_out = group_norm(width, norm_groups)
        self.conv_out = nn.Conv2d(width, out_channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(self.post_quant_conv(z)))
        return self.conv_out(F.silu(self.norm_out(self.levels(h))))


class EncodeDecode:
    """What every autoencoder here derives from its ``encode``, ``decode``, ``downsample_factor`` and
    ``latent_channels`` (SDVAE and the diffusers wrapper): the round trip and the latent shape."""

    def forward(self, x: Tensor, generator: torch.Generator | None = None, sample: bool = True
                ) -> tuple[Tensor, DiagonalGaussian | DeterministicPosterior, Tensor]:
        """Encode, take a posterior sample (or the mode when ``sample`` is False) and decode.

        Returns ``(x_hat, posterior, z)``.
        """
        posterior = self.encode(x)
        z = posterior.sample(generator) if sample else posterior.mode()
        return self.decode(z), posterior, z

    def latent_shape(self, image_size: int | tuple[int, int]) -> tuple[int, int, int]:
        """(C, h, w) of the latent for an image of side ``image_size`` (an int or (H, W))."""
        height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        f = self.downsample_factor
        if height < 1 or width < 1 or height % f or width % f:
            raise ArchitectureError(f"image size {height}x{width} is not a positive multiple of the "
                                    f"autoencoder's downsampling factor {f}")
        return self.latent_channels, height // f, width // f


class SDVAE(EncodeDecode, nn.Module):
    """SD-VAE-style autoencoder with a diagonal-Gaussian (or deterministic) posterior.

    Args (keyword-only):
        in_channels, out_channels: image channels.
        channels: width per resolution level; the spatial downsampling factor is 2**(len(channels) - 1).
        encoder_res_blocks, decoder_res_blocks: ResBlocks per level (2 and 3 in SD-VAE).
        latent_channels: C, the latent channel count.
        mid_attention: single-head self-attention in both mid blocks.
        norm_groups: GroupNorm groups (capped at the channel count; must divide every width).
        dropout: dropout inside the ResBlocks.
        double_z: True predicts mean and log-variance (``DiagonalGaussian``); False gives a plain AE
            (``DeterministicPosterior``).
        downsample_padding: ``"symmetric"`` (the authors' stride-2 conv with padding 1) or ``"ldm"``
            (right/bottom padding, needed for LDM / diffusers weights); see :class:`Downsample`.
    """

    def __init__(self, *, in_channels: int = 3, out_channels: int = 3,
                 channels: Sequence[int] = (128, 256, 512, 512), encoder_res_blocks: int = 2,
                 decoder_res_blocks: int = 3, latent_channels: int = 4, mid_attention: bool = True,
                 norm_groups: int = 32, dropout: float = 0.0, double_z: bool = True,
                 downsample_padding: str = "symmetric"):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1:
            raise ArchitectureError(f"channels must be a non-empty list of positive widths, got {channels}")
        if min(in_channels, out_channels, latent_channels, encoder_res_blocks, decoder_res_blocks) < 1:
            raise ArchitectureError("in_channels, out_channels, latent_channels, encoder_res_blocks and "
                                    "decoder_res_blocks must all be at least 1")
        self.channels = channels
        self.double_z = double_z
        self.arch = dict(in_channels=in_channels, out_channels=out_channels, encoder_res_blocks=encoder_res_blocks,
                         decoder_res_blocks=decoder_res_blocks, mid_attention=mid_attention,
                         norm_groups=norm_groups)
        self.downsample_padding = downsample_padding
        self._latent_channels = latent_channels
        self.encoder = Encoder(in_channels=in_channels, channels=channels, res_blocks=encoder_res_blocks,
                               latent_channels=latent_channels, mid_attention=mid_attention,
                               norm_groups=norm_groups, dropout=dropout, double_z=double_z,
                               downsample_padding=downsample_padding)
        self.decoder = Decoder(out_channels=out_channels, channels=channels, res_blocks=decoder_res_blocks,
                               latent_channels=latent_channels, mid_attention=mid_attention,
                               norm_groups=norm_groups, dropout=dropout)

    @property
    def latent_channels(self) -> int:
        """C, the channel count of the latent."""
        return self._latent_channels

    @property
    def downsample_factor(self) -> int:
        """f: image side / latent side."""
        return 2 ** (len(self.channels) - 1)

    @property
    def encoder_last_layer(self) -> nn.Parameter:
        """Weight of the encoder's output conv3x3 (``encoder.conv_out``, just before the 1x1 quant conv);
        reference for VA-VAE's adaptive weight, as LightningDiT's ``enc_last_layer``."""
        return self.encoder.conv_out.weight

    @property
    def decoder_last_layer(self) -> nn.Parameter:
        """Weight of the decoder's output conv3x3 to RGB (``decoder.conv_out``); reference for the GAN's
        adaptive weight."""
        return self.decoder.conv_out.weight

    def adapt_state_dict(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weights in diffusers ``AutoencoderKL`` or LDM (CompVis, full SD checkpoints too) names renamed to
        this module's (``autoencoder.init``); specmatch's own names pass through."""
        from specmatch.nn.sd_weights import from_foreign

        return from_foreign(state, self.state_dict(), len(self.channels))

    def diffusers_config(self) -> dict[str, Any]:
        """The diffusers ``AutoencoderKL`` config of the same network; ArchitectureError when there is none."""
        arch = self.arch
        why = []
        if not self.double_z:
            why.append("a plain autoencoder (deterministic = true): AutoencoderKL always predicts a variance")
        if self.downsample_padding != "ldm":
            why.append(f"downsample_padding = {self.downsample_padding!r}: AutoencoderKL downsamples with LDM's "
                       f"right/bottom padding, so it would compute other latents (use 'ldm')")
        if arch["decoder_res_blocks"] != arch["encoder_res_blocks"] + 1:
            why.append(f"decoder_res_blocks = {arch['decoder_res_blocks']}: AutoencoderKL has one more decoder "
                       f"ResBlock per level than encoder ResBlocks ({arch['encoder_res_blocks'] + 1})")
        if min(self.channels) < arch["norm_groups"]:
            why.append(f"channels {list(self.channels)} narrower than norm_groups = {arch['norm_groups']}: "
                       f"AutoencoderKL does not cap the GroupNorm groups at the width")
        if why:
            raise ArchitectureError("this SD-VAE has no diffusers AutoencoderKL equivalent: " + "; ".join(why))
        levels = len(self.channels)
        return {"in_channels": arch["in_channels"], "out_channels": arch["out_channels"],
                "down_block_types": ["DownEncoderBlock2D"] * levels, "up_block_types": ["UpDecoderBlock2D"] * levels,
                "block_out_channels": list(self.channels), "layers_per_block": arch["encoder_res_blocks"],
                "latent_channels": self.latent_channels, "norm_num_groups": arch["norm_groups"],
                "mid_block_add_attention": arch["mid_attention"], "use_quant_conv": True,
                "use_post_quant_conv": True}

    def to_diffusers(self):
        """A diffusers ``AutoencoderKL`` holding these weights (needs ``specmatch[diffusers]``)."""
        from specmatch.nn.diffusers_vae import import_diffusers
        from specmatch.nn.sd_weights import to_diffusers

        vae = import_diffusers().AutoencoderKL(**self.diffusers_config())
        vae.load_state_dict(to_diffusers(self.state_dict()), strict=True)
        return vae

    def encode(self, x: Tensor) -> DiagonalGaussian | DeterministicPosterior:
        """Images (B, in_channels, H, W), H and W divisible by f -> posterior over (B, C, H/f, W/f)."""
        moments = self.encoder(x)
        return DiagonalGaussian(moments) if self.double_z else DeterministicPosterior(moments)

    def decode(self, z: Tensor) -> Tensor:
        """Latents (B, C, h, w) -> images (B, out_channels, h*f, w*f)."""
        return self.decoder(z)


# Preset name -> constructor kwargs: the paper's f8d4 ... f64d256 (method.md s4.1) and CPU-sized ones
# (offline.md s5). The data lives in ``specmatch.nn.presets`` (torch-free, so recipes are checked without
# building models); everything not listed uses the constructor defaults.
PRESETS: dict[str, dict[str, Any]] = SDVAE_PRESETS


def build_sdvae(preset: str | None = None, **overrides: Any) -> SDVAE:
    """An ``SDVAE`` from a preset name in ``PRESETS`` (None: the constructor defaults, i.e. f8d4), with
    any constructor argument overridden by keyword."""
    if preset is None:
        kwargs: dict[str, Any] = {}
    elif preset in PRESETS:
        kwargs = dict(PRESETS[preset])
    else:
        raise ArchitectureError(f"unknown autoencoder preset {preset!r}; known presets: {', '.join(PRESETS)}")
    kwargs.update(overrides)
    return SDVAE(**kwargs)
