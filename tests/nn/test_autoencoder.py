"""SDVAE, its presets and posteriors: shapes, parameter counts, KL, sampling, gradients, errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from specmatch.core.errors import SpecmatchError
from specmatch.nn.autoencoder import PRESETS, SDVAE, Downsample, SelfAttention, build_sdvae
from specmatch.nn.posterior import DeterministicPosterior, DiagonalGaussian


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# method.md s4.1 [DERIVED] counts, in millions.
PAPER_PARAMS = {"f8d4": 83.65, "f16d16": 64.35, "f32d64": 93.36, "f64d256": 267.69}
# (latent channels, side) at 256x256.
PAPER_LATENTS = {"f8d4": (4, 32), "f16d16": (16, 16), "f32d64": (64, 8), "f64d256": (256, 4)}


@pytest.mark.parametrize("preset", sorted(PAPER_PARAMS))
def test_paper_preset_parameter_count(preset):
    with torch.device("meta"):
        model = build_sdvae(preset)
    assert n_params(model) / 1e6 == pytest.approx(PAPER_PARAMS[preset], rel=0.005)


@pytest.mark.parametrize("preset, encoder_m, decoder_m", [("f8d4", 34.16, 49.49), ("f16d16", 26.16, 38.19)])
def test_paper_preset_encoder_decoder_split(preset, encoder_m, decoder_m):
    with torch.device("meta"):
        model = build_sdvae(preset)
    assert n_params(model.encoder) / 1e6 == pytest.approx(encoder_m, rel=0.005)
    assert n_params(model.decoder) / 1e6 == pytest.approx(decoder_m, rel=0.005)


@pytest.mark.parametrize("preset", sorted(PAPER_LATENTS))
def test_paper_preset_shapes_on_meta(preset):
    channels, side = PAPER_LATENTS[preset]
    with torch.device("meta"):
        model = build_sdvae(preset)
        x = torch.empty(2, 3, 256, 256)
        x_hat, posterior, z = model(x)
    assert model.latent_shape(256) == (channels, side, side)
    assert model.downsample_factor == 256 // side
    assert tuple(posterior.mean.shape) == (2, channels, side, side)
    assert tuple(z.shape) == (2, channels, side, side)
    assert tuple(x_hat.shape) == (2, 3, 256, 256)


@pytest.mark.parametrize("preset, factor, channels", [("micro-f2d4", 2, 4), ("tiny-f4d4", 4, 4),
                                                      ("tiny-f8d16", 8, 16)])
@pytest.mark.parametrize("side", [16, 32])
def test_cpu_presets_real_shapes(preset, factor, channels, side):
    torch.manual_seed(0)
    model = build_sdvae(preset)
    x = torch.rand(2, 3, side, side) * 2 - 1
    with torch.no_grad():
        x_hat, posterior, z = model(x)
    assert model.downsample_factor == factor
    assert tuple(z.shape) == (2, channels, side // factor, side // factor)
    assert tuple(posterior.logvar.shape) == tuple(z.shape)
    assert tuple(x_hat.shape) == tuple(x.shape)
    assert torch.isfinite(x_hat).all()


def test_non_square_input_matches_latent_shape():
    model = build_sdvae("micro-f2d4")
    with torch.no_grad():
        z = model.encode(torch.zeros(1, 3, 16, 24)).mode()
    assert model.latent_shape((16, 24)) == (4, 8, 12)
    assert tuple(z.shape) == (1, 4, 8, 12)


def _conv(i, o, k):
    return i * o * k * k + o


def _res(i, o):  # GN + conv3x3 + GN + conv3x3 (+ 1x1 skip)
    return 2 * i + _conv(i, o, 3) + 2 * o + _conv(o, o, 3) + (_conv(i, o, 1) if i != o else 0)


def test_micro_preset_parameter_count_by_hand():
    mid = _res(32, 32) + (2 * 32 + 4 * _conv(32, 32, 1)) + _res(32, 32)
    encoder = (_conv(3, 16, 3) + 2 * _res(16, 16) + _conv(16, 16, 3) + _res(16, 32) + _res(32, 32) + mid
               + 2 * 32 + _conv(32, 8, 3) + _conv(8, 8, 1))
    decoder = (_conv(4, 4, 1) + _conv(4, 32, 3) + mid + 3 * _res(32, 32) + _conv(32, 32, 3)
               + _res(32, 16) + 2 * _res(16, 16) + 2 * 16 + _conv(16, 3, 3))
    model = build_sdvae("micro-f2d4")
    assert n_params(model.encoder) == encoder
    assert n_params(model.decoder) == decoder


def test_diagonal_gaussian_kl_matches_closed_form():
    mean = torch.tensor([[[[0.5, -1.0]]], [[[0.0, 2.0]]]])        # (2, 1, 1, 2)
    logvar = torch.tensor([[[[math.log(2.0), 0.0]]], [[[-1.0, 50.0]]]])  # 50 is clamped to 20
    posterior = DiagonalGaussian(torch.cat([mean, logvar], dim=1))

    def kl(m, var):  # KL(N(m, var) || N(0, 1))
        return 0.5 * (var + m * m - 1.0 - math.log(var))

    expected = torch.tensor([kl(0.5, 2.0) + kl(-1.0, 1.0), kl(0.0, math.exp(-1.0)) + kl(2.0, math.exp(20.0))])
    assert posterior.kl().shape == (2,)
    torch.testing.assert_close(posterior.kl(), expected, rtol=1e-5, atol=1e-5)
    assert posterior.logvar.max().item() == 20.0
    torch.testing.assert_close(posterior.std, torch.tensor([[[[math.sqrt(2.0), 1.0]]],
                                                            [[[math.exp(-0.5), math.exp(10.0)]]]]))
    torch.testing.assert_close(posterior.mode(), mean)


def test_logvar_clamped_below():
    posterior = DiagonalGaussian(torch.tensor([[[[0.0]], [[-100.0]]]]))
    assert posterior.logvar.item() == -30.0


def test_sample_reproducible_with_generator():
    moments = torch.randn(3, 8, 4, 4)
    posterior = DiagonalGaussian(moments)
    first = posterior.sample(torch.Generator().manual_seed(7))
    second = posterior.sample(torch.Generator().manual_seed(7))
    other = posterior.sample(torch.Generator().manual_seed(8))
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert not torch.allclose(first, other)
    eps = torch.randn(3, 4, 4, 4, generator=torch.Generator().manual_seed(7))
    mean, logvar = moments[:, :4], moments[:, 4:]
    torch.testing.assert_close(first, mean + torch.exp(0.5 * logvar) * eps)


def test_sample_with_generator_on_another_device():
    # A CPU generator for a latent on another device: noise is drawn on the CPU and moved.
    with torch.device("meta"):
        posterior = DiagonalGaussian(torch.empty(2, 8, 4, 4))
    z = posterior.sample(torch.Generator().manual_seed(0))
    assert z.device.type == "meta" and tuple(z.shape) == (2, 4, 4, 4)


def test_forward_sample_flag_and_generator():
    torch.manual_seed(0)
    model = build_sdvae("micro-f2d4").eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        _, posterior, z_mode = model(x, sample=False)
        _, _, z1 = model(x, generator=torch.Generator().manual_seed(3))
        _, _, z2 = model(x, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(z_mode, posterior.mean, rtol=0, atol=0)
    torch.testing.assert_close(z1, z2, rtol=0, atol=0)
    assert not torch.allclose(z1, z_mode)


def test_deterministic_posterior():
    model = build_sdvae("micro-f2d4", double_z=False)
    assert model.encoder.conv_out.out_channels == 4
    assert tuple(model.encoder_last_layer.shape) == (4, 32, 3, 3)  # conv_out to C, before the 1x1 quant conv
    with torch.no_grad():
        x_hat, posterior, z = model(torch.zeros(2, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    assert isinstance(posterior, DeterministicPosterior)
    assert z is posterior.mean and posterior.mode() is posterior.mean
    assert torch.equal(posterior.kl(), torch.zeros(2))
    assert torch.equal(posterior.std, torch.zeros_like(z)) and torch.equal(posterior.var, torch.zeros_like(z))
    assert tuple(x_hat.shape) == (2, 3, 16, 16)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = build_sdvae("micro-f2d4")
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    posterior = model.encode(x)
    x_hat = model.decode(posterior.sample(torch.Generator().manual_seed(0)))
    loss = F.l1_loss(x_hat, x) + 1e-3 * posterior.kl().mean()
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_last_layer_properties():
    model = build_sdvae("micro-f2d4")
    # LightningDiT's enc_last_layer: the encoder's conv3x3 to the 2C moments, not the 1x1 quant conv after it
    assert model.encoder_last_layer is model.encoder.conv_out.weight
    assert tuple(model.encoder_last_layer.shape) == (8, 32, 3, 3)    # ch[-1] -> 2C
    assert model.decoder_last_layer is model.decoder.conv_out.weight
    assert tuple(model.decoder_last_layer.shape) == (3, 16, 3, 3)    # ch[0] -> RGB
    assert model.latent_channels == 4


def test_downsample_layouts_are_the_two_paddings():
    torch.manual_seed(0)
    symmetric, ldm = Downsample(4, "symmetric"), Downsample(4, "ldm")
    ldm.load_state_dict(symmetric.state_dict())  # same parameter names and shapes
    w, b = symmetric.conv.weight, symmetric.conv.bias
    x = torch.randn(2, 4, 8, 10)
    with torch.no_grad():
        out_symmetric, out_ldm = symmetric(x), ldm(x)
        torch.testing.assert_close(out_symmetric, F.conv2d(x, w, b, stride=2, padding=1), rtol=0, atol=0)
        torch.testing.assert_close(out_ldm, F.conv2d(F.pad(x, (0, 1, 0, 1)), w, b, stride=2), rtol=0, atol=0)
    assert out_symmetric.shape == out_ldm.shape == (2, 4, 4, 5)
    assert not torch.allclose(out_symmetric, out_ldm)  # the sampling grid differs by one pixel
    with pytest.raises(SpecmatchError, match="downsample padding 'same'"):
        Downsample(4, "same")


def test_sdvae_default_is_the_symmetric_layout():
    torch.manual_seed(0)
    model = build_sdvae("micro-f2d4")
    ldm = build_sdvae("micro-f2d4", downsample_padding="ldm")
    ldm.load_state_dict(model.state_dict())
    downsamples = [m for m in model.modules() if isinstance(m, Downsample)]
    assert downsamples and all(m.padding == "symmetric" for m in downsamples)
    assert all(m.padding == "ldm" for m in ldm.modules() if isinstance(m, Downsample))
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert not torch.allclose(model.encode(x).mean, ldm.encode(x).mean)


def test_self_attention_matches_manual_softmax():
    torch.manual_seed(0)
    attention = SelfAttention(8, norm_groups=4)
    x = torch.randn(2, 8, 3, 5)
    h = attention.norm(x)
    q, k, v = (conv(h).flatten(2) for conv in (attention.q, attention.k, attention.v))  # (B, C, N)
    weights = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / math.sqrt(8), dim=-1)
    out = torch.einsum("bij,bcj->bci", weights, v).reshape(2, 8, 3, 5)
    torch.testing.assert_close(attention(x), x + attention.out(out), rtol=1e-5, atol=1e-5)


def test_group_norm_divisibility_error():
    with pytest.raises(ValueError, match="divisible"):
        SDVAE(channels=(48, 64), norm_groups=32)
    with pytest.raises(SpecmatchError, match="48 channels, 32 groups"):
        SDVAE(channels=(48, 64), norm_groups=32)
    SDVAE(channels=(24, 48), norm_groups=8, latent_channels=4)  # fine: groups divide both widths


def test_group_count_capped_at_channels():
    model = SDVAE(channels=(16, 32), norm_groups=32)  # 16 channels -> 16 groups
    assert model.encoder.levels[0][0].norm1.num_groups == 16


def test_latent_shape_errors():
    model = build_sdvae("tiny-f4d4")
    assert model.latent_shape(32) == (4, 8, 8)
    for bad in (30, (32, 30), 0):
        with pytest.raises(ValueError, match="multiple of .* factor 4"):
            model.latent_shape(bad)


def test_build_sdvae_presets_and_overrides():
    assert set(PRESETS) >= {"f8d4", "f16d16", "f32d64", "f64d256", "tiny-f4d4", "micro-f2d4", "tiny-f8d16"}
    model = build_sdvae("micro-f2d4", latent_channels=8, mid_attention=False)
    assert model.latent_channels == 8
    assert isinstance(model.encoder.mid.attn, torch.nn.Identity)
    with torch.device("meta"):
        default = build_sdvae()
    assert default.channels == (128, 256, 512, 512) and default.latent_channels == 4
    with pytest.raises(SpecmatchError, match="unknown autoencoder preset 'f8d8'.*f16d16"):
        build_sdvae("f8d8")


def test_recipe_param_selects_the_downsample_layout():
    from specmatch.core.errors import RecipeError
    from specmatch.core.recipe import load_recipe

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "cpu" / "sdvae.toml"
    default = load_recipe(recipe).component("autoencoder")
    assert default.params.downsample_padding == "symmetric"
    ldm = load_recipe(recipe, ["autoencoder.params.downsample_padding=ldm"]).component("autoencoder")
    with torch.device("meta"):
        model = ldm.spec.factory(ldm.params, None)
    assert {m.padding for m in model.modules() if isinstance(m, Downsample)} == {"ldm"}
    with pytest.raises(RecipeError, match="downsample_padding"):
        load_recipe(recipe, ["autoencoder.params.downsample_padding=same"])
