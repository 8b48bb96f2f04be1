"""Parameter counts of the published presets equal the originals', built on the meta device (no memory).

Every expected number below was obtained by building the official model class with the stated config and
summing ``p.numel()`` over ``model.parameters()``; the source file and config are named next to each.
Two systematic differences are added back explicitly where they apply:

* DiT, SiT and LightningDiT keep their fixed sin-cos position embedding as an ``nn.Parameter`` with
  ``requires_grad=False``, which ``parameters()`` counts; here it is a non-persistent buffer, so
  ``tokens * hidden_size`` is added (256 tokens for a 32x32 latent with patch 2 or a 16x16 latent with patch 1).
* ADM has no null-class row (it predates classifier-free guidance); here every conditional model has one,
  i.e. ``4 * model_channels`` more parameters than ADM's class-conditional count.
"""

from __future__ import annotations

import pytest
import torch

from specmatch.denoisers.adm_unet import build_adm_unet
from specmatch.denoisers.lightningdit import build_lightningdit
from specmatch.denoisers.sit import build_sit
from specmatch.denoisers.uvit import build_uvit


def count(build, *args, **kwargs) -> int:
    with torch.device("meta"):
        model = build(*args, **kwargs)
    return sum(p.numel() for p in model.parameters())


# willisma/SiT models.py, SiT_{S,B,L,XL}_2(input_size=32, num_classes=1000): in_channels 4, learn_sigma=True,
# class_dropout_prob 0.1 (1001 label rows). SiT-XL/2 is DiT-XL/2's 675,129,632 (facebookresearch/DiT, same config).
@pytest.mark.parametrize("preset, official", [
    ("sit-s", 32_963_360), ("sit-b", 130_512_416), ("sit-l", 458_102_816), ("sit-xl", 675_129_632)])
def test_sit_matches_the_original_sit(preset, official):
    ours = count(build_sit, preset, input_size=32, in_channels=4, patch_size=2, num_classes=1000, learn_sigma=True)
    hidden = {"sit-s": 384, "sit-b": 768, "sit-l": 1024, "sit-xl": 1152}[preset]
    assert ours + 256 * hidden == official


def test_sit_xl_matches_repa_without_its_projector():
    """sihyun-yu/REPA models/sit.py, SiT_XL_2(input_size=32, num_classes=1000, qk_norm=False) minus
    ``model.projectors`` (the projector is the repa regularizer's here): no learn_sigma."""
    ours = count(build_sit, "sit-xl", input_size=32, in_channels=4, patch_size=2, num_classes=1000)
    assert ours + 256 * 1152 == 675_111_184


# baofff/U-ViT libs/uvit.py, UViT(img_size=32, patch_size=2, in_chans=4, mlp_ratio=4, qkv_bias=False,
# mlp_time_embed=False, num_classes=1001) with the sizes of configs/{celeba64_uvit_small, imagenet64_uvit_mid,
# imagenet256_uvit_large, imagenet256_uvit_huge}.py (huge: conv=False). U-ViT-L/2 287M, U-ViT-H/2 501M.
@pytest.mark.parametrize("preset, official", [
    ("uvit-small", 44_772_516), ("uvit-mid", 130_891_940), ("uvit-large", 286_763_172),
    ("uvit-huge", 500_832_016)])
def test_uvit_matches_the_official_latent_configs(preset, official):
    assert count(build_uvit, preset, input_size=32, in_channels=4, patch_size=2, num_classes=1000) == official


def test_unconditional_uvit_has_one_token_fewer():
    """Same UViT with num_classes=-1 (no label token, no label table) and the small size."""
    assert count(build_uvit, "uvit-small", input_size=32, in_channels=4, patch_size=2) == 44_259_492


# hustvl/LightningDiT models/lightningdit.py, LightningDiT_{XL_1, B_2, L_2}(input_size=16, in_channels=32,
# num_classes=1000) with configs/lightningdit_xl_vavae_f16d32.yaml's model flags (swiglu, rope, rmsnorm on,
# qknorm off, shift kept): the VA-VAE f16d32 setting. XL/1 and B/2, L/2 are LightningDiT_models entries.
@pytest.mark.parametrize("preset, patch, official, tokens", [
    ("lightningdit-xl", 1, 675_256_736, 256), ("lightningdit-l", 2, 458_153_056, 64),
    ("lightningdit-b", 2, 130_556_288, 64)])
def test_lightningdit_matches_the_released_config(preset, patch, official, tokens):
    ours = count(build_lightningdit, preset, input_size=16, in_channels=32, patch_size=patch, num_classes=1000)
    hidden = {"lightningdit-xl": 1152, "lightningdit-l": 1024, "lightningdit-b": 768}[preset]
    assert ours + tokens * hidden == official


def test_lightningdit_qk_norm_adds_one_rmsnorm_per_head_width():
    """Same XL/1 with use_qknorm=True: 675,260,768 (two RMSNorm(72) per block, 28 blocks)."""
    ours = count(build_lightningdit, "lightningdit-xl", input_size=16, in_channels=32, num_classes=1000,
                 qk_norm=True)
    assert ours + 256 * 1152 == 675_260_768


# openai/guided-diffusion script_util.create_model with the README's ImageNet flags: learn_sigma, class_cond,
# resblock_updown, use_scale_shift_norm, num_head_channels 64, attention_resolutions "32,16,8";
# 256: num_channels 256, num_res_blocks 2; 128: same; 64: num_channels 192, num_res_blocks 3,
# use_new_attention_order. in_channels 3 (pixels), 1000 classes.
@pytest.mark.parametrize("preset, official, model_channels", [
    ("adm-256", 553_838_086, 256), ("adm-128", 421_529_606, 256), ("adm-64", 295_904_454, 192)])
def test_adm_matches_guided_diffusion(preset, official, model_channels):
    ours = count(build_adm_unet, preset, in_channels=3, num_classes=1000, learn_sigma=True)
    assert ours == official + 4 * model_channels  # + the null-class row


def test_unconditional_adm_256_matches_exactly():
    """Same 256 flags without class_cond: 552,814,086."""
    assert count(build_adm_unet, "adm-256", in_channels=3, learn_sigma=True) == 552_814_086


@pytest.mark.parametrize("build, preset, kwargs", [
    (build_sit, "sit-micro", {"input_size": 8}), (build_uvit, "uvit-micro", {"input_size": 8}),
    (build_lightningdit, "lightningdit-micro", {"input_size": 8}), (build_adm_unet, "adm-micro", {})])
def test_micro_presets_stay_under_a_million(build, preset, kwargs):
    assert count(build, preset, in_channels=4, num_classes=10, **kwargs) < 1_000_000
