"""Size presets of every built-in denoiser family, as plain data: the model modules build from them and the
plugins check recipes against them, so ``validate`` never imports torch and there is one copy of each table.

Width, depth and heads (the U-Net: channels, levels, blocks, attention) per size; the patch size, the latent
shape and the classes come from the recipe and the data. The micro sizes are for tests, tiny for CPU demos.
"""

from __future__ import annotations

from typing import Any

#: DiT (Peebles & Xie 2023): dit-s/b are DiT-S/B.
DIT_PRESETS: dict[str, dict[str, Any]] = {
    "dit-micro": {"hidden_size": 64, "depth": 2, "num_heads": 2},
    "dit-tiny": {"hidden_size": 192, "depth": 6, "num_heads": 3},
    "dit-s": {"hidden_size": 384, "depth": 12, "num_heads": 6},
    "dit-b": {"hidden_size": 768, "depth": 12, "num_heads": 12},
}

#: SiT-S/B/L/XL (Ma et al. 2024, Table 1).
SIT_PRESETS: dict[str, dict[str, Any]] = {
    "sit-micro": {"hidden_size": 64, "depth": 2, "num_heads": 2},
    "sit-s": {"hidden_size": 384, "depth": 12, "num_heads": 6},
    "sit-b": {"hidden_size": 768, "depth": 12, "num_heads": 12},
    "sit-l": {"hidden_size": 1024, "depth": 24, "num_heads": 16},
    "sit-xl": {"hidden_size": 1152, "depth": 28, "num_heads": 16},
}

#: U-ViT (Bao et al. 2023) after the official configs (blocks = depth + 1): uvit-small is celeba64/cifar10
#: ``uvit_small``, uvit-mid imagenet64 ``uvit_mid``, uvit-large and uvit-huge imagenet256
#: ``uvit_large``/``uvit_huge`` (the latter with ``conv=False``).
UVIT_PRESETS: dict[str, dict[str, Any]] = {
    "uvit-micro": {"hidden_size": 64, "depth": 2, "num_heads": 2, "conv": True},
    "uvit-small": {"hidden_size": 512, "depth": 12, "num_heads": 8, "conv": True},
    "uvit-mid": {"hidden_size": 768, "depth": 16, "num_heads": 12, "conv": True},
    "uvit-large": {"hidden_size": 1024, "depth": 20, "num_heads": 16, "conv": True},
    "uvit-huge": {"hidden_size": 1152, "depth": 28, "num_heads": 16, "conv": False},
}

#: LightningDiT (``LightningDiT_{B,L,XL}_*`` in the official model file).
LIGHTNINGDIT_PRESETS: dict[str, dict[str, Any]] = {
    "lightningdit-micro": {"hidden_size": 64, "depth": 2, "num_heads": 2},
    "lightningdit-b": {"hidden_size": 768, "depth": 12, "num_heads": 12},
    "lightningdit-l": {"hidden_size": 1024, "depth": 24, "num_heads": 16},
    "lightningdit-xl": {"hidden_size": 1152, "depth": 28, "num_heads": 16},
}

#: adm-64/128/256 are the class-conditional ImageNet models of the ADM paper (Table 14 / guided-diffusion's
#: README flags: 64 px with 192 channels and 3 blocks, 128 and 256 px with 256 channels and 2 blocks,
#: attention at 32, 16 and 8 px, 64-channel heads, resblock up/down, scale-shift norm); ``attention_ds``
#: restates "32,16,8" as downsampling factors.
ADM_PRESETS: dict[str, dict[str, Any]] = {
    "adm-micro": {"model_channels": 32, "channel_mult": (1, 2), "num_res_blocks": 1, "attention_ds": (2,),
                  "num_head_channels": 16, "norm_groups": 8},
    "adm-tiny": {"model_channels": 64, "channel_mult": (1, 2, 2), "num_res_blocks": 2, "attention_ds": (2, 4),
                 "num_head_channels": 32, "norm_groups": 16},
    "adm-64": {"model_channels": 192, "channel_mult": (1, 2, 3, 4), "num_res_blocks": 3,
               "attention_ds": (2, 4, 8), "num_head_channels": 64, "norm_groups": 32},
    "adm-128": {"model_channels": 256, "channel_mult": (1, 1, 2, 3, 4), "num_res_blocks": 2,
                "attention_ds": (4, 8, 16), "num_head_channels": 64, "norm_groups": 32},
    "adm-256": {"model_channels": 256, "channel_mult": (1, 1, 2, 2, 4, 4), "num_res_blocks": 2,
                "attention_ds": (8, 16, 32), "num_head_channels": 64, "norm_groups": 32},
}
