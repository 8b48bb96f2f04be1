"""U-ViT (Bao et al., CVPR 2023, baofff/U-ViT ``libs/uvit.py``): a ViT with U-Net-style long skips.

Everything is a token: the sinusoidal time embedding and the label embedding are two extra tokens in front
of the patch tokens (one for an unconditional model), with a learned position embedding for all of them.
The ``depth`` blocks are split into ``depth / 2`` "in" blocks, one middle block and ``depth / 2`` "out"
blocks; out block i first fuses the output of in block ``depth/2 - i + 1`` (a long skip) by a linear map of
the concatenation. Blocks are plain pre-norm attention + MLP (no adaLN). The output is a LayerNorm, a linear
map to patch values, and optionally a 3x3 convolution on the unpatchified latent (``conv``).

Faithful to the official configs (``configs/imagenet256_uvit_{large,huge}.py``): no qkv bias, exact GELU,
learned position embedding and linears drawn from a truncated N(0, 0.02), no time MLP
(``mlp_time_embed=False``), ``conv`` on for U-ViT-L and off for U-ViT-H. Time: the official discrete-time
latent script (``train_ldm_discrete.py``, U-ViT-H) feeds the step n in 1..1000, so with t = n / 1000 the
default ``time_scale=1000`` restores n; the continuous-time scripts (``sde.py``, U-ViT-L) feed 999 t
(``time_scale=999``).

Departures: the label table always has ``num_classes + 1`` rows, the last the null class (U-ViT's ImageNet
configs give ``num_classes=1001`` for the same reason); the network never drops labels; the long skips and
blocks are built from timm's ``Attention`` and ``Mlp`` (scaled-dot-product attention).
Alignment taps: the patch tokens (time and label tokens removed) after each of the ``depth + 1`` blocks.
"""

from __future__ import annotations

from typing import Any

import torch
from timm.layers import Attention, Mlp, PatchEmbed, trunc_normal_
from torch import Tensor, nn

from specmatch.denoisers.common import (TokenTaps, check_input, check_num_classes, check_tap, check_time,
                                        check_transformer_size, resolve_labels, unpatchify)
from specmatch.denoisers.presets import UVIT_PRESETS
from specmatch.diffusion.dit import timestep_features


class UViTBlock(nn.Module):
    """Pre-norm attention + MLP; with ``skip`` it first fuses a long-skip input: x = W [x, skip]."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, *, skip: bool):
        super().__init__()
        self.skip_linear = nn.Linear(2 * dim, dim) if skip else None
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=False)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        if self.skip_linear is not None:
            x = self.skip_linear(torch.cat([x, skip], dim=-1))
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class UViT(TokenTaps, nn.Module):
    """U-ViT on a square latent (B, C, H, H).

    Args (keyword-only):
        input_size, in_channels, patch_size: latent side H, channels C, patch side p (divides H).
        hidden_size, depth, num_heads, mlp_ratio: size; ``depth`` is even and there are depth + 1 blocks.
        num_classes: 0 = unconditional; else a label token from ``num_classes + 1`` rows (last = null).
        conv: a 3x3 convolution after unpatchifying (U-ViT's ``conv``).
        long_skip: the long skip connections (U-ViT's ``skip``; off only for ablations).
        mlp_time_embed: an MLP on the time features (U-ViT's option, off in every official config).
        time_scale: factor on t before the sinusoid (1000: the discrete step n = 1000 t; 999 in the
            official continuous-time scripts).
    """

    def __init__(self, *, input_size: int, in_channels: int, patch_size: int = 2, hidden_size: int = 512,
                 depth: int = 12, num_heads: int = 8, mlp_ratio: float = 4.0, num_classes: int = 0,
                 conv: bool = True, long_skip: bool = True, mlp_time_embed: bool = False,
                 time_scale: float = 1000.0):
        super().__init__()
        check_transformer_size(input_size=input_size, patch_size=patch_size, hidden_size=hidden_size,
                               num_heads=num_heads)
        check_num_classes(num_classes)
        if depth < 2 or depth % 2:
            raise ValueError(f"depth must be a positive even number (depth/2 blocks each side), got {depth!r}")
        self.input_size = input_size
        self.in_channels = in_channels
        self.patch_size = patch_size
        self.hidden_size = hidden_size
        self.num_classes = num_classes
        self.time_scale = time_scale
        self.grid_size = input_size // patch_size
        self.extras = 2 if num_classes > 0 else 1  # time token (+ label token)

        self.patch_embed = PatchEmbed(input_size, patch_size, in_channels, hidden_size, bias=True)
        self.time_embed = (nn.Sequential(nn.Linear(hidden_size, 4 * hidden_size), nn.SiLU(),
                                         nn.Linear(4 * hidden_size, hidden_size))
                           if mlp_time_embed else nn.Identity())
        self.label_emb = nn.Embedding(num_classes + 1, hidden_size) if num_classes > 0 else None
        self.pos_embed = nn.Parameter(torch.zeros(1, self.extras + self.grid_size ** 2, hidden_size))
        half = depth // 2
        self.in_blocks = nn.ModuleList([UViTBlock(hidden_size, num_heads, mlp_ratio, skip=False)
                                        for _ in range(half)])
        self.mid_block = UViTBlock(hidden_size, num_heads, mlp_ratio, skip=False)
        self.out_blocks = nn.ModuleList([UViTBlock(hidden_size, num_heads, mlp_ratio, skip=long_skip)
                                         for _ in range(half)])
        self.norm = nn.LayerNorm(hidden_size)
        self.decoder_pred = nn.Linear(hidden_size, patch_size ** 2 * in_channels)
        self.final_layer = nn.Conv2d(in_channels, in_channels, 3, padding=1) if conv else nn.Identity()
        self.initialize_weights()

    @property
    def depth(self) -> int:
        """Number of blocks (in + middle + out), i.e. the number of taps."""
        return len(self.in_blocks) + 1 + len(self.out_blocks)

    def initialize_weights(self) -> None:
        """U-ViT's: truncated N(0, 0.02) position embedding and linears, zero biases, unit LayerNorms."""
        trunc_normal_(self.pos_embed, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None, *,
                return_hidden_at: int | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """x (B, C, H, H), t (B,) in [0, 1], y (B,) or None -> prediction (B, C, H, H) [, tokens (B, N, D)]."""
        check_input(x, self.in_channels, (self.input_size, self.input_size))
        check_tap(return_hidden_at, self.depth)
        batch = x.shape[0]
        t = check_time(t, batch)
        tokens = self.patch_embed(x)
        time_token = self.time_embed(timestep_features(t * self.time_scale, self.hidden_size).to(tokens.dtype))
        extra = [time_token.unsqueeze(1)]
        labels = resolve_labels(y, self.num_classes, batch, x.device)
        if labels is not None:
            extra.insert(0, self.label_emb(labels).unsqueeze(1))  # official order: label, time, patches
        tokens = torch.cat([*extra, tokens], dim=1) + self.pos_embed

        outputs = []  # every block's output, in order: the taps
        skips = []
        for block in self.in_blocks:
            tokens = block(tokens)
            skips.append(tokens)
            outputs.append(tokens)
        tokens = self.mid_block(tokens)
        outputs.append(tokens)
        for block in self.out_blocks:
            tokens = block(tokens, skips.pop())
            outputs.append(tokens)

        patches = self.decoder_pred(self.norm(tokens))[:, self.extras:]
        out = self.final_layer(unpatchify(patches, self.grid_size, self.patch_size, self.in_channels))
        if return_hidden_at is None:
            return out
        return out, outputs[return_hidden_at - 1][:, self.extras:]  # patch tokens only


def build_uvit(preset: str, **settings: Any) -> UViT:
    """A U-ViT of a named size, any constructor argument overridden (``input_size``/``in_channels`` required)."""
    if preset not in UVIT_PRESETS:
        raise ValueError(f"unknown U-ViT preset {preset!r}; known: {', '.join(UVIT_PRESETS)}")
    return UViT(**{**UVIT_PRESETS[preset], **settings})
