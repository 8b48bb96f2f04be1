"""SiT, the Scalable Interpolant Transformer (Ma et al. 2024), the backbone REPA (Yu et al. 2025) aligns.

SiT is DiT's architecture (willisma/SiT ``models.py``, sihyun-yu/REPA ``models/sit.py``): patch tokens with a
fixed 2-D sin-cos position embedding, blocks of pre-norm attention + MLP modulated by adaLN-Zero from the
sum of a time and a label embedding, a modulated final layer. The differences from DiT are in what is fed
in and read out, not in the layers:

* time: the raw continuous t in [0, 1] goes into the sinusoidal embedding (no x1000 scale as in DiT);
* output: REPA's SiT predicts C channels (``learn_sigma=False``); the original SiT kept DiT's 2C layout
  (``learn_sigma=True``, the second half discarded), which is what its 675M figure counts;
* REPA offers QK-normalisation in attention (``qk_norm``, off by default in its ``train.py``; LayerNorm per
  head, timm's ``Attention``).

Deliberate departures: the network never drops labels (the engine does; index ``num_classes`` is the null
class, ``y=None`` means it), and REPA's projector is not part of the network (it is the ``repa``
regularizer's). The layers are DiT's own (:mod:`specmatch.diffusion.dit`), so the two stay identical.
"""

from __future__ import annotations

from typing import Any

from timm.layers import Attention
from torch import Tensor, nn

from specmatch.denoisers.common import AdaLNTokens, unpatchify
from specmatch.denoisers.presets import SIT_PRESETS
from specmatch.diffusion.dit import DiTBlock, FinalLayer


class SiT(AdaLNTokens, nn.Module):
    """Scalable Interpolant Transformer on a square latent (B, C, H, H).

    Args (keyword-only):
        input_size: latent side H.
        in_channels: latent channels C.
        patch_size: patch side p (divides H); N = (H / p) ** 2 tokens.
        hidden_size, depth, num_heads, mlp_ratio: the transformer's size.
        num_classes: 0 = unconditional; else ``num_classes + 1`` label rows, the last the null class.
        learn_sigma: predict 2C channels and return the first C (the original SiT/DiT layout).
        qk_norm: LayerNorm on queries and keys per head (REPA's option).
        time_scale: factor on t before the sinusoid (1, SiT's continuous time).
    """

    def __init__(self, *, input_size: int, in_channels: int, patch_size: int = 2, hidden_size: int = 1152,
                 depth: int = 28, num_heads: int = 16, mlp_ratio: float = 4.0, num_classes: int = 0,
                 learn_sigma: bool = False, qk_norm: bool = False, time_scale: float = 1.0):
        super().__init__()
        self.build_stem(input_size=input_size, in_channels=in_channels, patch_size=patch_size,
                        hidden_size=hidden_size, num_heads=num_heads, depth=depth, num_classes=num_classes,
                        learn_sigma=learn_sigma, time_scale=time_scale)
        self.blocks = nn.ModuleList([DiTBlock(hidden_size, num_heads, mlp_ratio) for _ in range(depth)])
        if qk_norm:
            for block in self.blocks:
                block.attn = Attention(hidden_size, num_heads=num_heads, qkv_bias=True, qk_norm=True,
                                       norm_layer=nn.LayerNorm)
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)
        self.initialize_weights()

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None, *,
                return_hidden_at: int | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """x (B, C, H, H), t (B,) in [0, 1], y (B,) or None -> prediction (B, C, H, H) [, tokens (B, N, D)]."""
        c, tokens = self.embed(x, t, y, return_hidden_at)
        hidden = None
        for index, block in enumerate(self.blocks, start=1):
            tokens = block(tokens, c)
            if index == return_hidden_at:
                hidden = tokens
        out = unpatchify(self.final_layer(tokens, c), self.grid_size, self.patch_size, self.out_channels)
        out = out[:, : self.in_channels]
        return out if return_hidden_at is None else (out, hidden)


def build_sit(preset: str, **settings: Any) -> SiT:
    """A SiT of a named size, any constructor argument overridden (``input_size``/``in_channels`` required)."""
    if preset not in SIT_PRESETS:
        raise ValueError(f"unknown SiT preset {preset!r}; known: {', '.join(SIT_PRESETS)}")
    return SiT(**{**SIT_PRESETS[preset], **settings})
