"""Engine behaviour that must follow the authors' training and evaluation: discriminator turns, per-epoch
augmentation, one control draw per optimizer step, sampled-posterior reconstructions, a random gFID
reference, per-component initialisation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from specmatch.core.schema import AdaptiveConfig, RegularizerConfig
from specmatch.data.demo import DemoPhotosDataset
from specmatch.engine.autoencoder_loss import AutoencoderObjective, RegularizerSlot
from specmatch.engine.data import EpochItems, StepBatchSampler, step_loader
from specmatch.engine.evaluation import reconstruct, reference_indices
from specmatch.engine.runtime import replay, seeded_init, step_generators
from specmatch.nn.autoencoder import build_sdvae


class AdaptiveTerm(nn.Module):
    """A loss that depends on the encoder, so an adaptive factor at ``encoder.last`` is defined."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def loss(self, inputs):
        self.calls += 1
        return inputs.z.pow(2).mean()


def objective_with_adaptive_term():
    torch.manual_seed(0)
    term = AdaptiveTerm()
    cfg = RegularizerConfig(name="adaptive", weight=0.1,
                            adaptive=AdaptiveConfig(layer="encoder.last", max=1e8, eps=1e-4, eps_mode="add"))
    slot = RegularizerSlot(name="adaptive", config=cfg, needs=frozenset(), transforms_pair=False, index=0)
    return AutoencoderObjective(build_sdvae("micro-f2d4"), [term], [slot]), term


def test_discriminator_turn_computes_no_regularizer_term():
    objective, term = objective_with_adaptive_term()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    g = torch.Generator().manual_seed(0)
    # what a discriminator turn did before: the whole objective without a graph; the adaptive factor fails
    with pytest.raises(RuntimeError), torch.no_grad():
        objective(x, step=1, cpu_generator=g, device_generator=g)
    term.calls = 0
    x_hat, target = objective.reconstruct_pair(x, step=1, cpu_generator=torch.Generator().manual_seed(0),
                                               device_generator=torch.Generator().manual_seed(0))
    assert term.calls == 0
    assert x_hat.shape == x.shape and torch.equal(target, x) and not x_hat.requires_grad
    # the same reconstruction the generator step decodes from the same generators
    _, _, x_hat_g, _ = objective(x, step=1, cpu_generator=torch.Generator().manual_seed(0),
                                 device_generator=torch.Generator().manual_seed(0))
    assert torch.allclose(x_hat, x_hat_g)


def flips_by_epoch(dataset, index, epochs):
    """For each epoch, whether item ``index`` is the mirror image of its epoch-0 view."""
    items = EpochItems(dataset)
    base = items[(0, index)][0]
    return [bool(torch.equal(items[(e, index)][0], base.flip(-1))) and not torch.equal(base, base.flip(-1))
            for e in epochs]


def test_augmentation_changes_per_epoch_and_leaves_the_dataset_alone():
    data = DemoPhotosDataset(split="train", num_images=16, resolution=16, hflip_p=0.5, seed=3)
    before = torch.stack([data[i][0] for i in range(16)])
    flipped = [flips_by_epoch(data, i, range(1, 9)) for i in range(16)]
    # across 8 epochs every item is seen both ways (probability of failure per item 2^-8), unlike a frozen flip
    assert sum(any(f) and not all(f) for f in flipped) >= 14
    assert torch.equal(before, torch.stack([data[i][0] for i in range(16)]))  # the caller's epoch is untouched
    # deterministic for a seed
    assert flipped == [flips_by_epoch(data, i, range(1, 9)) for i in range(16)]


def test_data_stream_agrees_across_processes_and_resumes():
    data = DemoPhotosDataset(split="train", num_images=12, resolution=8, hflip_p=0.5, seed=1)

    def images(world, rank, start, steps):
        loader = step_loader(data, global_batch=8, seed=5, start_step=start, num_steps=steps, rank=rank,
                             world=world)
        return [batch[0] for batch in loader]

    one = images(1, 0, 0, 6)  # 48 items: four epochs of 12
    two = [torch.cat(pair) for pair in zip(images(2, 0, 0, 6), images(2, 1, 0, 6))]
    assert all(torch.equal(a, b) for a, b in zip(one, two))
    assert all(torch.equal(a, b) for a, b in zip(one[3:], images(1, 0, 3, 6)))
    keys = StepBatchSampler(12, 8, seed=5, start_step=0, num_steps=6).global_keys(2)
    assert {e for e, _ in keys} == {1}  # items 16..23 belong to epoch 1


def test_every_micro_batch_replays_the_steps_control_draws():
    control, noise = step_generators(0, "autoencoder", 7, torch.device("cpu"))
    first = torch.randint(4, (5,), generator=replay(control))
    second = torch.randint(4, (5,), generator=replay(control))
    assert torch.equal(first, second)
    # noise is a separate stream: replaying controls does not repeat the posterior noise
    assert not torch.equal(torch.randn(8, generator=noise), torch.randn(8, generator=noise))
    other, _ = step_generators(0, "autoencoder", 8, torch.device("cpu"))
    assert not torch.equal(torch.randint(1 << 30, (4,), generator=replay(control)),
                           torch.randint(1 << 30, (4,), generator=other))


class _OneProcess:
    num_processes, process_index, device = 1, 0, torch.device("cpu")


def test_reconstructions_decode_a_posterior_sample_by_default():
    torch.manual_seed(0)
    ae = build_sdvae("micro-f2d4")
    with torch.no_grad():  # a visible posterior spread, as a KL autoencoder has
        conv = ae.encoder.quant_conv if hasattr(ae.encoder, "quant_conv") else ae.quant_conv
        conv.bias[conv.bias.shape[0] // 2:] = 1.0
    data = DemoPhotosDataset(split="test", num_images=6, resolution=8)
    acc = _OneProcess()
    x, mean = reconstruct(acc, ae, data, 6, 4, latent="mean")
    _, sample = reconstruct(acc, ae, data, 6, 4, latent="sample", seed=1)
    _, again = reconstruct(acc, ae, data, 6, 3, latent="sample", seed=1)  # other batching, same noise
    assert not torch.allclose(sample, mean, atol=1e-3)
    assert torch.equal(sample, again)
    expected = ae.decode(ae.encode(x).mode()).clamp(-1, 1)
    assert torch.allclose(mean, expected, atol=1e-6)


def test_gfid_reference_is_a_seeded_random_subset():
    picks = reference_indices(13000, 1000, seed=4)
    assert len(set(picks)) == 1000 and picks == sorted(picks)
    assert picks == reference_indices(13000, 1000, seed=4) and picks != reference_indices(13000, 1000, seed=5)
    # a class-per-folder dataset of 10 classes x 1300 images: the first 1000 would cover one class
    assert len({i // 1300 for i in picks}) == 10
    assert reference_indices(5, 10, seed=0) == [0, 1, 2, 3, 4]


def test_initialisation_depends_only_on_seed_and_component():
    def build():
        with seeded_init(0, "denoiser"):
            return nn.Linear(4, 4).weight.detach().clone()

    first = build()
    torch.rand(100)  # whatever the process did before
    assert torch.equal(first, build())
    with seeded_init(0, "regularizers[0]"):
        assert not torch.equal(first, nn.Linear(4, 4).weight)
    state = torch.get_rng_state()
    build()
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG is left as it was
