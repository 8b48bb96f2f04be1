"""LightningDiT (Yao et al., VA-VAE, CVPR 2025; hustvl/LightningDiT ``models/lightningdit.py``).

A DiT/SiT (adaLN-Zero blocks, patch tokens with a fixed 2-D sin-cos position embedding, continuous time
t in [0, 1] without scaling) modernised with:

* SwiGLU feed-forward (hidden width ``int(2/3 * mlp_ratio * D)``, timm's ``SwiGLU``);
* RMSNorm (learnable scale, eps 1e-6) in place of the affine-free LayerNorms, also in the final layer;
* 2-D rotary position embedding on queries and keys (EVA-02's layout: half the head channels rotate with
  the row, half with the column, frequencies 10000^(-4k/head_dim), interleaved pairs), timm's
  ``RotaryEmbeddingCat`` + ``AttentionRope``; the absolute sin-cos embedding is kept as in the original;
* optional QK-normalisation (RMSNorm per head).

The defaults follow the released config (``configs/lightningdit_xl_vavae_f16d32.yaml``: SwiGLU, RoPE and
RMSNorm on, QK-norm off, shift kept). Departures: the network never drops labels (the engine does; index
``num_classes`` is the null class); attention always goes through scaled-dot-product attention.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from timm.layers import AttentionRope, Mlp, RmsNorm, RotaryEmbeddingCat, SwiGLU
from torch import Tensor, nn

from specmatch.denoisers.common import AdaLNTokens, unpatchify
from specmatch.denoisers.presets import LIGHTNINGDIT_PRESETS
from specmatch.diffusion.dit import modulate


def _norm(dim: int, rms: bool) -> nn.Module:
    return RmsNorm(dim, eps=1e-6) if rms else nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)


class LightningDiTBlock(nn.Module):
    """adaLN-Zero block with RMSNorm, rotary attention (optional QK-norm) and a SwiGLU feed-forward."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, *, swiglu: bool, rmsnorm: bool,
                 qk_norm: bool):
        super().__init__()
        self.norm1 = _norm(dim, rmsnorm)
        qk_norm_layer = partial(RmsNorm, eps=1e-6) if rmsnorm else nn.LayerNorm
        self.attn = AttentionRope(dim, num_heads=num_heads, qkv_bias=True, num_prefix_tokens=0,
                                  qk_norm=qk_norm, norm_layer=qk_norm_layer)
        self.norm2 = _norm(dim, rmsnorm)
        hidden = int(dim * mlp_ratio)
        self.mlp = (SwiGLU(dim, int(2 / 3 * hidden)) if swiglu
                    else Mlp(dim, hidden, act_layer=partial(nn.GELU, approximate="tanh")))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x: Tensor, c: Tensor, rope: Tensor | None) -> Tensor:
        shift_attn, scale_attn, gate_attn, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_attn.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_attn, scale_attn), rope=rope)
        return x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))


class LightningFinalLayer(nn.Module):
    def __init__(self, dim: int, patch_size: int, out_channels: int, *, rmsnorm: bool):
        super().__init__()
        self.norm_final = _norm(dim, rmsnorm)
        self.linear = nn.Linear(dim, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class LightningDiT(AdaLNTokens, nn.Module):
    """LightningDiT on a square latent (B, C, H, H).

    Args (keyword-only):
        input_size, in_channels, patch_size: latent side H, channels C, patch side p (divides H).
        hidden_size, depth, num_heads, mlp_ratio: size (head width even, a multiple of 4 with RoPE).
        num_classes: 0 = unconditional; else ``num_classes + 1`` label rows, the last the null class.
        swiglu, rmsnorm, rope, qk_norm: the modernisations (defaults: the released config).
        learn_sigma: predict 2C channels and return the first C (off in LightningDiT).
        time_scale: factor on t before the sinusoid (1: continuous time, as in SiT).
    """

    def __init__(self, *, input_size: int, in_channels: int, patch_size: int = 1, hidden_size: int = 1152,
                 depth: int = 28, num_heads: int = 16, mlp_ratio: float = 4.0, num_classes: int = 0,
                 swiglu: bool = True, rmsnorm: bool = True, rope: bool = True, qk_norm: bool = False,
                 learn_sigma: bool = False, time_scale: float = 1.0):
        super().__init__()
        self.build_stem(input_size=input_size, in_channels=in_channels, patch_size=patch_size,
                        hidden_size=hidden_size, num_heads=num_heads, depth=depth, num_classes=num_classes,
                        learn_sigma=learn_sigma, time_scale=time_scale)
        if rope and (hidden_size // num_heads) % 4:
            raise ValueError(f"the head width hidden_size / num_heads ({hidden_size // num_heads}) must be a "
                             "multiple of 4 for the 2-D rotary embedding")
        # Rotary angles of the token grid, (N, 2 * head_dim) = [sin, cos]; a fixed buffer, not saved.
        self.rope = (RotaryEmbeddingCat(hidden_size // num_heads, in_pixels=False, temperature=10000.0,
                                        feat_shape=[self.grid_size, self.grid_size])
                     if rope else None)
        self.blocks = nn.ModuleList([
            LightningDiTBlock(hidden_size, num_heads, mlp_ratio, swiglu=swiglu, rmsnorm=rmsnorm, qk_norm=qk_norm)
            for _ in range(depth)])
        self.final_layer = LightningFinalLayer(hidden_size, patch_size, self.out_channels, rmsnorm=rmsnorm)
        self.initialize_weights()

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None, *,
                return_hidden_at: int | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """x (B, C, H, H), t (B,) in [0, 1], y (B,) or None -> prediction (B, C, H, H) [, tokens (B, N, D)]."""
        c, tokens = self.embed(x, t, y, return_hidden_at)
        rope = self.rope.get_embed() if self.rope is not None else None
        hidden = None
        for index, block in enumerate(self.blocks, start=1):
            tokens = block(tokens, c, rope)
            if index == return_hidden_at:
                hidden = tokens
        out = unpatchify(self.final_layer(tokens, c), self.grid_size, self.patch_size, self.out_channels)
        out = out[:, : self.in_channels]
        return out if return_hidden_at is None else (out, hidden)


def build_lightningdit(preset: str, **settings: Any) -> LightningDiT:
    """A LightningDiT of a named size, any constructor argument overridden (``input_size``/``in_channels``)."""
    if preset not in LIGHTNINGDIT_PRESETS:
        raise ValueError(f"unknown LightningDiT preset {preset!r}; known: {', '.join(LIGHTNINGDIT_PRESETS)}")
    return LightningDiT(**{**LIGHTNINGDIT_PRESETS[preset], **settings})
