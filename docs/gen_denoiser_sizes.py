"""Print the parameter count of every denoiser preset, built on the meta device (no memory, no weights).

The table in ``docs/denoisers.md`` is this script's output. Usage::

    PYTHONPATH=. python docs/gen_denoiser_sizes.py

Counts are ``sum(p.numel() for p in model.parameters())`` of the model as specmatch builds it (fixed position
embeddings are buffers, not counted; conditional models have ``num_classes + 1`` label rows) on the latent
named in each row; ``tests/denoisers/test_parameter_counts.py`` compares them with the official code's counts.
"""

from __future__ import annotations

import torch

from specmatch.denoisers.adm_unet import ADM_PRESETS, build_adm_unet
from specmatch.denoisers.lightningdit import LIGHTNINGDIT_PRESETS, build_lightningdit
from specmatch.denoisers.sit import SIT_PRESETS, build_sit
from specmatch.denoisers.uvit import UVIT_PRESETS, build_uvit

#: (family, presets, builder, latent (C, H, W), extra constructor arguments) per row group
ROWS = [
    ("sit", SIT_PRESETS, build_sit, (4, 32, 32), {"patch_size": 2}),
    ("uvit", UVIT_PRESETS, build_uvit, (4, 32, 32), {"patch_size": 2}),
    ("lightningdit", LIGHTNINGDIT_PRESETS, build_lightningdit, (32, 16, 16), {"patch_size": 1}),
    ("adm-unet", ADM_PRESETS, build_adm_unet, (4, 32, 32), {}),
]


def size_of(preset: dict) -> str:
    if "model_channels" in preset:
        return (f"{preset['model_channels']} ch x {list(preset['channel_mult'])}, {preset['num_res_blocks']} "
                f"blocks/level, attention at ds {list(preset['attention_ds'])}")
    return f"D {preset['hidden_size']}, depth {preset['depth']}, {preset['num_heads']} heads"


def main() -> None:
    print("| family | preset | size | latent | params (1000 classes) | params (unconditional) |")
    print("|---|---|---|---|---:|---:|")
    for family, presets, build, (c, h, w), extra in ROWS:
        for name, preset in presets.items():
            spatial = {} if family == "adm-unet" else {"input_size": h}
            counts = []
            for classes in (1000, 0):
                with torch.device("meta"):
                    model = build(name, in_channels=c, num_classes=classes, **spatial, **extra)
                counts.append(sum(p.numel() for p in model.parameters()))
            patch = f", patch {extra['patch_size']}" if "patch_size" in extra else ""
            print(f"| {family} | `{name}` | {size_of(preset)} | {c}x{h}x{w}{patch} | {counts[0]:,} | {counts[1]:,} |")


if __name__ == "__main__":
    main()
