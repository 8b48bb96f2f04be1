"""An ADM-style U-Net (Dhariwal & Nichol 2021, openai/guided-diffusion ``guided_diffusion/unet.py``).

The convolutional family: a U-Net over ``len(channel_mult)`` resolution levels, level i with width
``model_channels * channel_mult[i]`` at 1/2**i of the latent side.

* Residual blocks: GroupNorm, SiLU, 3x3 conv; the conditioning (time embedding + label embedding, width
  4 * model_channels) gives a per-channel scale and shift of the second GroupNorm (``use_scale_shift_norm``);
  then SiLU, dropout and a zero-initialised 3x3 conv; a 1x1 conv on the skip when the width changes.
* Self-attention blocks (GroupNorm, 1x1 qkv, heads of ``num_head_channels``, zero-initialised projection)
  after each residual block of the levels whose downsampling factor 2**i is in ``attention_ds``
  (ADM's ``attention_resolutions`` are image_size / 2**i; its "32,16,8" at 256 px are factors 8, 16, 32).
* Down- and upsampling by residual blocks that resample inside (``resblock_updown``, ADM's ImageNet
  setting) or by a strided conv / nearest upsampling + conv.
* Encoder: ``num_res_blocks`` blocks per level; decoder: ``num_res_blocks + 1`` per level, each fed the
  concatenation with the matching encoder activation; middle: residual, attention, residual.
* Time: sinusoid of ``time_scale * t`` (ADM's steps 0..999: 1000) of width model_channels, then an MLP.

Every zero-initialised output layer makes a fresh network output exactly zero and every residual block
start as its skip path.

Departures: the label table has ``num_classes + 1`` rows, the last the null class (ADM has no null row:
its classifier-free guidance came later); the network never drops labels; attention goes through
scaled-dot-product attention with queries, keys and values split before the heads (ADM's
``use_new_attention_order``; the parameter count is the same either way); GroupNorm has
``norm_groups`` groups (32 in ADM) so CPU-tiny widths work. ``learn_sigma`` keeps ADM's 2C output layout
for parameter parity (the second half is discarded).

Alignment taps (``tap_widths``): the output of each encoder level (before downsampling), of the middle
block and of each decoder level (before upsampling), i.e. 2 * levels + 1 feature maps (B, D, gh, gw) whose
widths follow ``channel_mult``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from specmatch.denoisers.common import check_input, check_num_classes, check_tap, condition
from specmatch.denoisers.presets import ADM_PRESETS
from specmatch.diffusion.dit import TimestepEmbedder


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 (ADM's), so half-precision activations normalise stably."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.float()).type(x.dtype)


class Downsample(nn.Module):
    """Halve the side: a strided 3x3 conv (``use_conv``) or 2x2 average pooling."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1) if use_conv else nn.AvgPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Double the side: nearest neighbour, then a 3x3 conv when ``use_conv``."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1) if use_conv else None

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.conv is not None else x


class ResBlock(nn.Module):
    """ADM's residual block with scale-shift conditioning; ``up``/``down`` resample both paths inside."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int, *, dropout: float, groups: int,
                 up: bool = False, down: bool = False):
        super().__init__()
        self.in_norm = GroupNorm32(groups, channels)
        self.in_conv = nn.Conv2d(channels, out_channels, 3, padding=1)
        if up:
            self.resample = Upsample(channels, use_conv=False)
        elif down:
            self.resample = Downsample(channels, use_conv=False)
        else:
            self.resample = None
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels))
        self.out_norm = GroupNorm32(groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.out_conv = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = F.silu(self.in_norm(x))
        if self.resample is not None:
            h, x = self.resample(h), self.resample(x)
        h = self.in_conv(h)
        scale, shift = self.emb_layers(emb).type(h.dtype)[:, :, None, None].chunk(2, dim=1)
        h = self.out_norm(h) * (1 + scale) + shift
        h = self.out_conv(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over the positions of a feature map, heads of ``head_channels`` channels."""

    def __init__(self, channels: int, head_channels: int, *, groups: int):
        super().__init__()
        if channels % head_channels:
            raise ValueError(f"attention width {channels} is not divisible by num_head_channels {head_channels}")
        self.num_heads = channels // head_channels
        self.norm = GroupNorm32(groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        q, k, v = self.qkv(self.norm(flat)).chunk(3, dim=1)  # each (B, C, L): split q/k/v, then heads
        heads = [z.reshape(b, self.num_heads, c // self.num_heads, h * w).transpose(2, 3) for z in (q, k, v)]
        out = F.scaled_dot_product_attention(*heads)  # (B, heads, L, head_channels)
        out = out.transpose(2, 3).reshape(b, c, h * w)
        return (flat + self.proj_out(out)).reshape(b, c, h, w)


class Stage(nn.ModuleList):
    """Blocks applied in order, each given the conditioning (attention blocks ignore it)."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        for block in self:
            x = block(x, emb)
        return x


class ADMUNet(nn.Module):
    """ADM-style U-Net on a latent (B, C, H, W); H and W divisible by 2 ** (len(channel_mult) - 1).

    Args (keyword-only):
        in_channels: latent channels C.
        model_channels: base width; level i has ``model_channels * channel_mult[i]`` channels.
        channel_mult: width multiplier per level (its length is the number of resolution levels).
        num_res_blocks: residual blocks per encoder level (decoder levels get one more).
        attention_ds: downsampling factors 2**i of the levels with self-attention.
        num_head_channels: channels per attention head.
        num_classes: 0 = unconditional; else ``num_classes + 1`` label rows added to the time embedding.
        dropout: dropout inside residual blocks.
        resblock_updown: resample with residual blocks (else strided conv / nearest + conv).
        norm_groups: GroupNorm groups (divides every width).
        learn_sigma: predict 2C channels and return the first C (ADM's layout).
        time_scale: factor on t before the sinusoid (1000: ADM's discrete steps).
    """

    def __init__(self, *, in_channels: int, model_channels: int = 32, channel_mult: tuple[int, ...] = (1, 2),
                 num_res_blocks: int = 1, attention_ds: tuple[int, ...] = (2,), num_head_channels: int = 16,
                 num_classes: int = 0, dropout: float = 0.0, resblock_updown: bool = True, norm_groups: int = 8,
                 learn_sigma: bool = False, time_scale: float = 1000.0):
        super().__init__()
        check_num_classes(num_classes)
        if not channel_mult or num_res_blocks < 1 or model_channels < 1:
            raise ValueError("channel_mult must be non-empty, num_res_blocks and model_channels positive")
        widths = [model_channels * m for m in channel_mult]
        for width in {model_channels, *widths}:
            if width % norm_groups:
                raise ValueError(f"width {width} is not divisible by norm_groups {norm_groups}")
        self.in_channels = in_channels
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.num_classes = num_classes
        self.levels = len(channel_mult)
        emb = 4 * model_channels
        block = dict(dropout=dropout, groups=norm_groups)

        def attention(width: int) -> AttentionBlock:
            return AttentionBlock(width, num_head_channels, groups=norm_groups)

        self.time_embed = TimestepEmbedder(emb, time_scale=time_scale, frequency_size=model_channels)
        self.label_emb = nn.Embedding(num_classes + 1, emb) if num_classes > 0 else None
        self.conv_in = nn.Conv2d(in_channels, model_channels, 3, padding=1)

        ch, ds = model_channels, 1
        skip_widths = [ch]
        self.encoder = nn.ModuleList()  # per level: a Stage per residual block (its skip is saved)
        self.downsamplers = nn.ModuleList()
        for level, width in enumerate(widths):
            stages = nn.ModuleList()
            for _ in range(num_res_blocks):
                layers = [ResBlock(ch, emb, width, **block)]
                ch = width
                if ds in attention_ds:
                    layers.append(attention(ch))
                stages.append(Stage(layers))
                skip_widths.append(ch)
            self.encoder.append(stages)
            if level != self.levels - 1:
                self.downsamplers.append(Stage([ResBlock(ch, emb, ch, down=True, **block)]) if resblock_updown
                                         else Stage([_Plain(Downsample(ch, use_conv=True))]))
                skip_widths.append(ch)
                ds *= 2
        self.middle = Stage([ResBlock(ch, emb, ch, **block), attention(ch), ResBlock(ch, emb, ch, **block)])

        self.decoder = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            stages = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                layers = [ResBlock(ch + skip_widths.pop(), emb, width, **block)]
                ch = width
                if ds in attention_ds:
                    layers.append(attention(ch))
                stages.append(Stage(layers))
            self.decoder.append(stages)
            if level:
                self.upsamplers.append(Stage([ResBlock(ch, emb, ch, up=True, **block)]) if resblock_updown
                                       else Stage([_Plain(Upsample(ch, use_conv=True))]))
                ds //= 2
        self.out_norm = GroupNorm32(norm_groups, ch)
        self.conv_out = nn.Conv2d(ch, self.out_channels, 3, padding=1)
        self._tap_widths = (*widths, widths[-1], *reversed(widths))
        self.initialize_weights()

    @property
    def depth(self) -> int:
        """Number of alignment taps: encoder levels, the middle block, decoder levels."""
        return len(self._tap_widths)

    @property
    def tap_widths(self) -> tuple[int, ...]:
        return self._tap_widths

    @property
    def null_class(self) -> int | None:
        return self.num_classes if self.num_classes > 0 else None

    def initialize_weights(self) -> None:
        """ADM's zero_module: the last conv of each residual block, each attention projection and the output."""
        for module in self.modules():
            if isinstance(module, ResBlock):
                zero = module.out_conv
            elif isinstance(module, AttentionBlock):
                zero = module.proj_out
            else:
                continue
            nn.init.zeros_(zero.weight)
            nn.init.zeros_(zero.bias)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None, *,
                return_hidden_at: int | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """x (B, C, H, W), t (B,) in [0, 1], y (B,) or None -> prediction (B, C, H, W) [, map (B, D, gh, gw)]."""
        check_input(x, self.in_channels, None)
        factor = 2 ** (self.levels - 1)
        if x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(f"the latent sides {tuple(x.shape[2:])} must be divisible by {factor} "
                             f"(2 ** (levels - 1))")
        check_tap(return_hidden_at, self.depth)
        emb = condition(x, t, y, self.num_classes, self.time_embed, self.label_emb)

        taps: list[Tensor] = []
        h = self.conv_in(x)
        skips = [h]
        for level, stages in enumerate(self.encoder):
            for stage in stages:
                h = stage(h, emb)
                skips.append(h)
            taps.append(h)
            if level < len(self.downsamplers):
                h = self.downsamplers[level](h, emb)
                skips.append(h)
        h = self.middle(h, emb)
        taps.append(h)
        for level, stages in enumerate(self.decoder):
            for stage in stages:
                h = stage(torch.cat([h, skips.pop()], dim=1), emb)
            taps.append(h)
            if level < len(self.upsamplers):
                h = self.upsamplers[level](h, emb)
        out = self.conv_out(F.silu(self.out_norm(h)))[:, : self.in_channels]
        return out if return_hidden_at is None else (out, taps[return_hidden_at - 1])


class _Plain(nn.Module):
    """Wrap a module that takes no conditioning so a Stage can call it with one."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        return self.module(x)


def build_adm_unet(preset: str, **settings: Any) -> ADMUNet:
    """An ADM U-Net of a named size, any constructor argument overridden (``in_channels`` required)."""
    if preset not in ADM_PRESETS:
        raise ValueError(f"unknown ADM U-Net preset {preset!r}; known: {', '.join(ADM_PRESETS)}")
    return ADMUNet(**{**ADM_PRESETS[preset], **settings})
