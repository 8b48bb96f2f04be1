"""SD-VAE weights between specmatch's ``SDVAE`` and the two public layouts: diffusers' ``AutoencoderKL`` and
the original LDM (CompVis) checkpoint.

The three are the same network (GN/SiLU ResBlocks, single-head mid attention, 1x1 quant convs) under other
module names; diffusers stores the attention projections as linear layers, (C, C), where specmatch and LDM
have 1x1 convs, (C, C, 1, 1). Names are translated one tensor at a time, so a file of another architecture
leaves its tensors under their own names and the loader lists them as unexpected.

Only LDM's downsampling grid (right/bottom padding, ``downsample_padding = "ldm"``) reproduces these weights'
outputs.
"""

from __future__ import annotations

import re
from typing import Callable

from torch import Tensor

_RES = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2"}
_DIFFUSERS_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "out": "to_out.0"}
_LDM_ATTN = {"norm": "norm", "q": "q", "k": "k", "v": "v", "out": "proj_out"}


def _res(part: str, shortcut: str) -> str:
    return shortcut if part == "skip" else _RES[part]


def to_diffusers_name(name: str) -> str | None:
    """The diffusers ``AutoencoderKL`` name of an ``SDVAE`` tensor (None when it has none)."""
    rules: list[tuple[str, Callable[[re.Match], str]]] = [
        (r"encoder\.quant_conv\.(.+)", lambda m: f"quant_conv.{m[1]}"),
        (r"decoder\.post_quant_conv\.(.+)", lambda m: f"post_quant_conv.{m[1]}"),
        (r"(encoder|decoder)\.(conv_in|conv_out)\.(.+)", lambda m: f"{m[1]}.{m[2]}.{m[3]}"),
        (r"(encoder|decoder)\.norm_out\.(.+)", lambda m: f"{m[1]}.conv_norm_out.{m[2]}"),
        (r"(encoder|decoder)\.mid\.res([12])\.(\w+)\.(.+)",
         lambda m: f"{m[1]}.mid_block.resnets.{int(m[2]) - 1}.{_res(m[3], 'conv_shortcut')}.{m[4]}"),
        (r"(encoder|decoder)\.mid\.attn\.(\w+)\.(.+)",
         lambda m: f"{m[1]}.mid_block.attentions.0.{_DIFFUSERS_ATTN[m[2]]}.{m[3]}"),
        (r"encoder\.levels\.(\d+)\.(\d+)\.conv\.(.+)", lambda m: f"encoder.down_blocks.{m[1]}.downsamplers.0.conv.{m[3]}"),
        (r"decoder\.levels\.(\d+)\.(\d+)\.conv\.(.+)", lambda m: f"decoder.up_blocks.{m[1]}.upsamplers.0.conv.{m[3]}"),
        (r"encoder\.levels\.(\d+)\.(\d+)\.(\w+)\.(.+)",
         lambda m: f"encoder.down_blocks.{m[1]}.resnets.{m[2]}.{_res(m[3], 'conv_shortcut')}.{m[4]}"),
        (r"decoder\.levels\.(\d+)\.(\d+)\.(\w+)\.(.+)",
         lambda m: f"decoder.up_blocks.{m[1]}.resnets.{m[2]}.{_res(m[3], 'conv_shortcut')}.{m[4]}"),
    ]
    return _apply(rules, name)


def to_ldm_name(name: str, levels: int) -> str | None:
    """The LDM checkpoint name of an ``SDVAE`` tensor; ``levels`` = len(channels) (LDM numbers decoder levels
    from the highest resolution, specmatch from the lowest)."""
    rules: list[tuple[str, Callable[[re.Match], str]]] = [
        (r"encoder\.quant_conv\.(.+)", lambda m: f"quant_conv.{m[1]}"),
        (r"decoder\.post_quant_conv\.(.+)", lambda m: f"post_quant_conv.{m[1]}"),
        (r"(encoder|decoder)\.(conv_in|conv_out|norm_out)\.(.+)", lambda m: f"{m[1]}.{m[2]}.{m[3]}"),
        (r"(encoder|decoder)\.mid\.res([12])\.(\w+)\.(.+)",
         lambda m: f"{m[1]}.mid.block_{m[2]}.{_res(m[3], 'nin_shortcut')}.{m[4]}"),
        (r"(encoder|decoder)\.mid\.attn\.(\w+)\.(.+)", lambda m: f"{m[1]}.mid.attn_1.{_LDM_ATTN[m[2]]}.{m[3]}"),
        (r"encoder\.levels\.(\d+)\.(\d+)\.conv\.(.+)", lambda m: f"encoder.down.{m[1]}.downsample.conv.{m[3]}"),
        (r"decoder\.levels\.(\d+)\.(\d+)\.conv\.(.+)",
         lambda m: f"decoder.up.{levels - 1 - int(m[1])}.upsample.conv.{m[3]}"),
        (r"encoder\.levels\.(\d+)\.(\d+)\.(\w+)\.(.+)",
         lambda m: f"encoder.down.{m[1]}.block.{m[2]}.{_res(m[3], 'nin_shortcut')}.{m[4]}"),
        (r"decoder\.levels\.(\d+)\.(\d+)\.(\w+)\.(.+)",
         lambda m: f"decoder.up.{levels - 1 - int(m[1])}.block.{m[2]}.{_res(m[3], 'nin_shortcut')}.{m[4]}"),
    ]
    return _apply(rules, name)


def _apply(rules, name: str) -> str | None:
    for pattern, rename in rules:
        m = re.fullmatch(pattern, name)
        if m:
            return rename(m)
    return None


def layout_of(state: dict[str, Tensor]) -> str:
    """``"diffusers"``, ``"ldm"`` or ``"specmatch"``: whose names a state dict uses."""
    keys = list(state)
    if any(k.startswith("encoder.down_blocks.") for k in keys):
        return "diffusers"
    if any(k.startswith(("encoder.down.", "first_stage_model.encoder.down.")) for k in keys):
        return "ldm"
    return "specmatch"


def from_foreign(state: dict[str, Tensor], expected: dict[str, Tensor], levels: int) -> dict[str, Tensor]:
    """``state`` (diffusers or LDM names) renamed to specmatch's; ``expected`` is the target's state dict.

    A full LDM / Stable Diffusion checkpoint keeps only its ``first_stage_model.`` tensors (and drops the
    training loss' ``loss.`` tensors); tensors without a counterpart keep their names (the loader lists them).
    """
    layout = layout_of(state)
    if layout == "specmatch":
        return state
    if layout == "ldm":
        if any(k.startswith("first_stage_model.") for k in state):
            state = {k.removeprefix("first_stage_model."): v for k, v in state.items()
                     if k.startswith("first_stage_model.")}
        state = {k: v for k, v in state.items() if not k.startswith("loss.")}
        rename = lambda n: to_ldm_name(n, levels)  # noqa: E731
    else:
        rename = to_diffusers_name
    out, used = {}, set()
    for name, reference in expected.items():
        foreign = rename(name)
        if foreign is None or foreign not in state:
            continue
        tensor = state[foreign]
        if tensor.ndim == 2 and reference.ndim == 4 and tensor.shape == reference.shape[:2]:
            tensor = tensor[:, :, None, None]  # a linear attention projection as the 1x1 conv it equals
        out[name] = tensor
        used.add(foreign)
    out.update({k: v for k, v in state.items() if k not in used})
    return out


def to_diffusers(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """An ``SDVAE`` state dict under diffusers ``AutoencoderKL`` names (attention projections as linear)."""
    out = {}
    for name, tensor in state.items():
        target = to_diffusers_name(name)
        if target is None:
            raise KeyError(f"no diffusers name for {name}")
        if ".mid_block.attentions.0.to_" in target and tensor.ndim == 4:
            tensor = tensor[:, :, 0, 0]
        out[target] = tensor.contiguous()
    return out
