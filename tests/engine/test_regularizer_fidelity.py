"""Regularizers inside the autoencoder objective behave as in the baselines' own code.

* VA-VAE's adaptive weight is taken at the encoder's output conv3x3 (LightningDiT's ``enc_last_layer``).
* Scale equivariance shrinks the latent that was decoded (after DSM / EQ-VAE pair transforms) together with
  the target those transforms produced.
* DSM draws its mask level only from the step's control generator, and evaluation uses k = 0.
"""

from __future__ import annotations

import attrs
import pytest
import torch
from torch import nn

from specmatch.core.components import PairContext
from specmatch.core.schema import AdaptiveConfig, RegularizerConfig
from specmatch.engine.autoencoder_loss import AutoencoderObjective, RegularizerSlot, to_floats
from specmatch.nn.autoencoder import build_sdvae
from specmatch.regularizers.dsm import DSMParams, DSMRegularizer
from specmatch.regularizers.eqvae import EQVAEParams, EQVAERegularizer
from specmatch.regularizers.scale_equivariance import (ScaleEquivarianceParams, ScaleEquivarianceRegularizer,
                                                        downsample_pair)
from specmatch.spectral import block_lowpass


def slot(name, index, *, needs=(), transforms=False, adaptive=None):
    cfg = RegularizerConfig(name=name, weight=1.0, adaptive=adaptive)
    return RegularizerSlot(name=name, config=cfg, needs=frozenset(needs), transforms_pair=transforms, index=index)


def images(side=16) -> torch.Tensor:
    return torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(7)) * 2 - 1


def run(objective, x, *, training=True):
    g = torch.Generator().manual_seed(0)
    _, logs, _, _ = objective(x, step=0, cpu_generator=g, device_generator=g, training=training)
    return to_floats(logs)


class LatentEnergy(nn.Module):
    """A stand-in for the VF loss: any term of the latent, so its gradient reaches the encoder only."""

    def loss(self, inputs):
        return inputs.z.pow(2).mean()


class Spy(nn.Module):
    """A zero term that keeps the inputs it was given."""

    def loss(self, inputs):
        self.inputs = inputs
        return inputs.z.sum() * 0


class ShiftLatent(nn.Module):
    """A pair transform that changes only the latent, so z and z_dec differ while the target stays x."""

    def transform_pair(self, z, target, ctx: PairContext):
        return z + 0.5, target


def test_vavae_adaptive_weight_is_taken_at_the_encoder_conv_out():
    torch.manual_seed(0)
    ae = build_sdvae("micro-f2d4")
    adaptive = AdaptiveConfig(layer="", max=1e8, eps=1e-4, eps_mode="add")  # "" -> encoder.last for features
    objective = AutoencoderObjective(ae, [LatentEnergy()], [slot("vf", 0, needs={"features"}, adaptive=adaptive)],
                                     sample_posterior=False)
    x = images()
    logs = run(objective, x)

    z = ae.encode(x).mode()
    rec, term = (ae.decode(z) - x).abs().mean(), z.pow(2).mean()

    def ratio(weight):
        g_rec = torch.autograd.grad(rec, weight, retain_graph=True)[0].norm()
        g_term = torch.autograd.grad(term, weight, retain_graph=True)[0].norm()
        return float(g_rec / (g_term + 1e-4))

    expected, at_quant_conv = ratio(ae.encoder.conv_out.weight), ratio(ae.encoder.quant_conv.weight)
    assert logs["reg/0-vf/factor"] == pytest.approx(expected, rel=1e-4)
    assert at_quant_conv != pytest.approx(expected, rel=1e-2)  # the layer choice matters


@pytest.mark.parametrize("transform", ["dsm", "shift"])
def test_scale_equivariance_shrinks_the_decoded_latent_with_its_target(transform):
    torch.manual_seed(0)
    ae = build_sdvae("micro-f2d4")
    pair = (DSMRegularizer(DSMParams(block_size=4, mask_levels=(4,))) if transform == "dsm" else ShiftLatent())
    se = ScaleEquivarianceRegularizer(ScaleEquivarianceParams(factors=(2,)))
    objective = AutoencoderObjective(ae, [pair, se], [slot(transform, 0, transforms=True), slot("se", 1)],
                                     sample_posterior=False)
    x = images()
    logs = run(objective, x)

    with torch.no_grad():
        z = ae.encode(x).mode()
    if transform == "dsm":
        z_dec, target = block_lowpass(z, 4, 4), block_lowpass(x, 4, 4)
    else:
        z_dec, target = z + 0.5, x
    with torch.no_grad():
        z_small, x_small = downsample_pair(z_dec, target, 2)
        expected = objective.reconstruction_loss(ae.decode(z_small), x_small)
        z_pre, _ = downsample_pair(z, target, 2)
        mismatched = objective.reconstruction_loss(ae.decode(z_pre), x_small)
    assert logs["reg/1-se"] == pytest.approx(float(expected), rel=1e-5)
    assert float(mismatched) != pytest.approx(float(expected), rel=1e-3)  # pairing z with the target differs


def test_scale_equivariance_after_an_eqvae_resize():
    # EQ-VAE at 31/32 turns the 8x8 latent into 7x7 (image 14x14); x2 then floors to 3x3 and 6x6
    torch.manual_seed(0)
    ae = build_sdvae("micro-f2d4")
    eq = EQVAERegularizer(EQVAEParams(p_prior=1.0, min_scale_32=31, rotations=(1,)))
    spy = Spy()
    se = ScaleEquivarianceRegularizer(ScaleEquivarianceParams(factors=(2,)))
    objective = AutoencoderObjective(ae, [eq, spy, se], [slot("eq", 0, transforms=True), slot("spy", 1),
                                                         slot("se", 2)], sample_posterior=False)
    logs = run(objective, images())
    seen = spy.inputs
    assert tuple(seen.z_dec.shape[-2:]) == (7, 7) and tuple(seen.target.shape[-2:]) == (14, 14)
    z_small, x_small = downsample_pair(seen.z_dec, seen.target, 2, downsample_factor=2)
    assert tuple(z_small.shape[-2:]) == (3, 3) and tuple(x_small.shape[-2:]) == (6, 6)
    with torch.no_grad():
        expected = objective.reconstruction_loss(ae.decode(z_small), x_small)
    assert logs["reg/2-se"] == pytest.approx(float(expected), rel=1e-5)


def test_dsm_level_comes_only_from_the_control_generator():
    dsm = DSMRegularizer(DSMParams())  # k uniform over (0, 8, 10, 12)
    z, t = torch.randn(1, 2, 8, 8), torch.randn(1, 3, 16, 16)
    for seed in range(8):
        levels = []
        for global_seed in (1, 2):  # the global RNG must not matter
            torch.manual_seed(global_seed)
            g = torch.Generator().manual_seed(seed)
            dsm.transform_pair(z, t, PairContext(step=0, generator=g, training=True, downsample_factor=2))
            levels.append(dsm.last_level)
        assert levels[0] == levels[1]
    # micro-batches given generators in the same state (one optimizer step) share k
    ctx = PairContext(step=3, generator=torch.Generator().manual_seed(5), training=True, downsample_factor=2)
    first = dsm.transform_pair(z, t, attrs.evolve(ctx, generator=torch.Generator().manual_seed(5)))
    second = dsm.transform_pair(z, t, ctx)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_dsm_evaluation_is_unmasked_and_draws_nothing():
    dsm = DSMRegularizer(DSMParams(block_size=4, mask_levels=(4,)))
    z, t = torch.randn(1, 2, 8, 8), torch.randn(1, 3, 16, 16)
    g = torch.Generator().manual_seed(0)
    dsm.transform_pair(z, t, PairContext(step=0, generator=g, training=True, downsample_factor=2))
    assert dsm.last_level == 4
    state = g.get_state()
    z_eval, t_eval = dsm.transform_pair(z, t, PairContext(step=0, generator=g, training=False, downsample_factor=2))
    assert z_eval is z and t_eval is t and dsm.logs() == {"mask_level": 0.0}
    assert torch.equal(g.get_state(), state)
