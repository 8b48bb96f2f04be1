"""What each family takes from its original, checked one family at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from specmatch.denoisers.adm_unet import ADMUNet, ResBlock, build_adm_unet
from specmatch.denoisers.lightningdit import build_lightningdit
from specmatch.denoisers.sit import build_sit
from specmatch.denoisers.uvit import build_uvit


# -- SiT ----------------------------------------------------------------------------------------------------

def test_sit_is_dit_with_continuous_time(randomize):
    """The same weights give the same prediction as a DiT fed t without the x1000 scale."""
    from specmatch.diffusion.dit import build_dit

    sit = randomize(build_sit("sit-micro", input_size=8, in_channels=4, patch_size=2, num_classes=3)).eval()
    dit = build_dit("dit-micro", input_size=8, in_channels=4, patch_size=2, num_classes=3, time_scale=1.0).eval()
    dit.load_state_dict(sit.state_dict())
    x, t, y = torch.randn(2, 4, 8, 8), torch.rand(2), torch.tensor([0, 3])
    torch.testing.assert_close(sit(x, t, y), dit(x, t, y))
    assert sit.t_embedder.time_scale == 1.0


def test_sit_qk_norm_normalises_queries_and_keys_per_head():
    plain = build_sit("sit-micro", input_size=8, in_channels=4)
    normed = build_sit("sit-micro", input_size=8, in_channels=4, qk_norm=True)
    head = 64 // 2
    norms = [m for m in normed.blocks[0].attn.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert [n.normalized_shape for n in norms] == [(head,), (head,)]
    extra = sum(p.numel() for p in normed.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == 2 * 2 * 2 * head  # 2 blocks x (q, k) x (weight, bias)
    assert normed(torch.randn(1, 4, 8, 8), torch.rand(1)).shape == (1, 4, 8, 8)


def test_sit_learn_sigma_keeps_the_prediction_channels():
    model = build_sit("sit-micro", input_size=8, in_channels=4, learn_sigma=True)
    assert model.final_layer.linear.out_features == 2 * 2 * 2 * 4
    assert model(torch.randn(2, 4, 8, 8), torch.rand(2)).shape == (2, 4, 8, 8)


# -- U-ViT --------------------------------------------------------------------------------------------------

def test_uvit_long_skips_pair_shallow_and_deep_blocks():
    """Out block i receives the output of in block depth/2 - i + 1 (the official skips.pop() order)."""
    model = build_uvit("uvit-micro", input_size=8, in_channels=4, depth=6).eval()
    produced, received = [], []
    for block in model.in_blocks:
        block.register_forward_hook(lambda m, args, out: produced.append(out))
    for block in model.out_blocks:
        block.register_forward_pre_hook(lambda m, args: received.append(args[1]))
    model(torch.randn(2, 4, 8, 8), torch.rand(2))
    assert len(produced) == len(received) == 3
    for skip, source in zip(received, reversed(produced)):
        assert skip is source


def test_uvit_time_and_label_are_tokens():
    model = build_uvit("uvit-micro", input_size=8, in_channels=4, num_classes=5)
    assert model.extras == 2 and model.pos_embed.shape == (1, 2 + 16, 64)
    uncond = build_uvit("uvit-micro", input_size=8, in_channels=4)
    assert uncond.extras == 1 and uncond.pos_embed.shape == (1, 1 + 16, 64)
    # the time token is the sinusoid itself (no time MLP in the official configs)
    assert isinstance(model.time_embed, torch.nn.Identity)
    # the taps drop the extra tokens: the patch grid only
    _, hidden = model(torch.randn(2, 4, 8, 8), torch.rand(2), torch.tensor([0, 1]), return_hidden_at=1)
    assert hidden.shape == (2, 16, 64)


def test_uvit_initialisation_is_the_official_truncated_normal():
    model = build_uvit("uvit-small", input_size=16, in_channels=4, num_classes=10)
    weights = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, torch.nn.Linear)])
    assert abs(weights.std().item() - 0.02) < 0.001 and abs(weights.mean().item()) < 1e-4
    biases = [m.bias for m in model.modules() if isinstance(m, torch.nn.Linear) and m.bias is not None]
    assert all(torch.equal(b, torch.zeros_like(b)) for b in biases)
    assert abs(model.pos_embed.std().item() - 0.02) < 0.002
    blocks = [*model.in_blocks, model.mid_block, *model.out_blocks]
    assert all(block.attn.qkv.bias is None for block in blocks)  # qkv_bias=False in every official config


def test_uvit_conv_follows_the_preset():
    assert isinstance(build_uvit("uvit-micro", input_size=8, in_channels=4).final_layer, torch.nn.Conv2d)
    with torch.device("meta"):
        assert isinstance(build_uvit("uvit-huge", input_size=8, in_channels=4).final_layer, torch.nn.Identity)


def test_uvit_refuses_an_odd_depth():
    with pytest.raises(ValueError, match="even"):
        build_uvit("uvit-micro", input_size=8, in_channels=4, depth=3)


# -- LightningDiT -------------------------------------------------------------------------------------------

def eva_rope(head_dim: int, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """EVA-02's VisionRotaryEmbeddingFast (LightningDiT's rope), written from its formula with numpy:
    freqs_k = 10000^(-2k/(head_dim/2)), each repeated twice; the row's angles then the column's."""
    half = head_dim // 2
    freqs = 1.0 / 10000 ** (np.arange(0, half, 2)[: half // 2] / half)
    pos = np.arange(grid, dtype=np.float64)
    per_axis = np.repeat(np.outer(pos, freqs), 2, axis=1)  # (grid, half)
    rows = np.repeat(per_axis, grid, axis=0)  # token i*grid+j -> row i
    cols = np.tile(per_axis, (grid, 1))  # -> column j
    angles = np.concatenate([rows, cols], axis=1)  # (grid**2, head_dim)
    return np.sin(angles), np.cos(angles)


def test_lightningdit_rope_is_eva_s_2d_rotary_embedding():
    model = build_lightningdit("lightningdit-micro", input_size=8, in_channels=4, patch_size=2, num_heads=4)
    sin, cos = model.rope.get_embed().double().chunk(2, dim=-1)
    ref_sin, ref_cos = eva_rope(16, 4)
    np.testing.assert_allclose(sin.numpy(), ref_sin, atol=1e-6)
    np.testing.assert_allclose(cos.numpy(), ref_cos, atol=1e-6)
    assert "rope" not in "".join(model.state_dict())  # rebuilt from the config, not saved


def test_lightningdit_layers_are_the_modern_ones():
    from timm.layers import AttentionRope, RmsNorm, SwiGLU

    model = build_lightningdit("lightningdit-micro", input_size=8, in_channels=4, qk_norm=True)
    block = model.blocks[0]
    assert isinstance(block.norm1, RmsNorm) and isinstance(block.norm2, RmsNorm)
    assert isinstance(model.final_layer.norm_final, RmsNorm)
    assert isinstance(block.attn, AttentionRope) and isinstance(block.attn.q_norm, RmsNorm)
    assert isinstance(block.mlp, SwiGLU) and block.mlp.fc2.in_features == int(2 / 3 * 4 * 64)


def test_lightningdit_rope_makes_attention_position_aware(randomize):
    """With 1x1 patches and no absolute embedding, a transformer is equivariant to moving tokens around;
    rope alone must break that (and without it the equivariance is exact)."""
    model = randomize(build_lightningdit("lightningdit-micro", input_size=8, in_channels=4, patch_size=1)).eval()
    model.pos_embed.zero_()
    with torch.no_grad():
        for block in model.blocks:  # sharp attention, so position-dependent logits matter
            block.attn.qkv.weight.mul_(30)
    x, t = torch.randn(1, 4, 8, 8), torch.full((1,), 0.5)
    assert (model(x.flip(-1), t) - model(x, t).flip(-1)).abs().max() > 1e-3
    model.rope = None
    torch.testing.assert_close(model(x.flip(-1), t), model(x, t).flip(-1), atol=1e-5, rtol=1e-4)


# -- ADM U-Net ----------------------------------------------------------------------------------------------

def test_adm_works_on_a_non_square_latent_and_its_taps_span_the_levels():
    model = build_adm_unet("adm-tiny", in_channels=16, num_classes=3).eval()
    x = torch.randn(2, 16, 8, 12)
    assert model(x, torch.rand(2)).shape == x.shape
    shapes = [model(x, torch.rand(2), return_hidden_at=k)[1].shape[1:] for k in range(1, model.depth + 1)]
    assert shapes == [(64, 8, 12), (128, 4, 6), (128, 2, 3), (128, 2, 3), (128, 2, 3), (128, 4, 6), (64, 8, 12)]
    assert model.tap_widths == (64, 128, 128, 128, 128, 128, 64)
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.randn(1, 16, 8, 10), torch.rand(1))


def test_adm_residual_blocks_start_as_their_skip_path():
    model = build_adm_unet("adm-micro", in_channels=4)
    emb = torch.randn(2, 4 * 32)
    blocks = [m for m in model.modules() if isinstance(m, ResBlock) and m.resample is None]
    assert blocks
    for block in blocks:
        x = torch.randn(2, block.in_norm.num_channels, 4, 4)
        torch.testing.assert_close(block(x, emb), block.skip(x))


def test_adm_scale_shift_conditioning_reaches_every_residual_block(randomize):
    model = randomize(build_adm_unet("adm-micro", in_channels=4, num_classes=3)).eval()
    x = torch.randn(1, 4, 8, 8)
    a = model(x, torch.full((1,), 0.2), torch.tensor([0]))
    b = model(x, torch.full((1,), 0.2), torch.tensor([1]))
    assert (a - b).abs().max() > 1e-4
    assert all(block.emb_layers[1].out_features == 2 * block.out_norm.num_channels
               for block in model.modules() if isinstance(block, ResBlock))  # scale and shift


def test_adm_conv_resampling_variant_builds_and_runs():
    model = ADMUNet(in_channels=4, resblock_updown=False)
    assert model(torch.randn(1, 4, 8, 8), torch.rand(1)).shape == (1, 4, 8, 8)
