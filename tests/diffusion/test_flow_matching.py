"""Tests for the flow-matching objective, ending with a small "does it learn" run (samplers: test_samplers.py)."""

from __future__ import annotations

import math

import pytest
import torch

from specmatch.diffusion.dit import build_dit
from specmatch.diffusion.flow_matching import FlowMatching
from specmatch.diffusion.samplers import EulerSampler
from specmatch.engine.sampling import SamplingContext

# ---------------------------------------------------------------------------------------------------------
# Flow matching
# ---------------------------------------------------------------------------------------------------------


def test_interpolate_endpoints_and_midpoints():
    x0, noise = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    fm = FlowMatching()
    torch.testing.assert_close(fm.interpolate(x0, noise, torch.zeros(3)), x0)
    torch.testing.assert_close(fm.interpolate(x0, noise, torch.ones(3)), noise)
    t = torch.tensor([0.25, 0.5, 0.9])
    x_t = fm.interpolate(x0, noise, t)
    for i, ti in enumerate(t.tolist()):
        torch.testing.assert_close(x_t[i], (1 - ti) * x0[i] + ti * noise[i])


def test_target_is_noise_minus_data():
    x0, noise = torch.randn(2, 3, 2, 2), torch.randn(2, 3, 2, 2)
    torch.testing.assert_close(FlowMatching.target(x0, noise), noise - x0)
    # It is the time derivative of the path (finite difference).
    fm, t, h = FlowMatching(), torch.full((2,), 0.4, dtype=torch.float64), 1e-6
    x0, noise = x0.double(), noise.double()
    derivative = (fm.interpolate(x0, noise, t + h) - fm.interpolate(x0, noise, t - h)) / (2 * h)
    torch.testing.assert_close(derivative, fm.target(x0, noise))


def test_oracle_model_has_zero_loss_with_drawn_noise():
    """The oracle knows only x0; it recovers the noise from x_t and t, so the loss checks path and target."""
    x0 = torch.randn(16, 2, 4, 4, dtype=torch.float64)

    def oracle(x_t, t):
        t = t.view(-1, 1, 1, 1)
        noise = (x_t - (1 - t) * x0) / t
        return noise - x0

    loss, logs = FlowMatching().loss(oracle, x0, generator=torch.Generator().manual_seed(0))
    assert loss.item() < 1e-12
    assert logs["flow_matching"].item() == loss.item()


def test_loss_value_for_given_noise_and_time():
    x0 = torch.randn(4, 3, 2, 2)
    noise = torch.randn(4, 3, 2, 2)
    t = torch.tensor([0.1, 0.3, 0.6, 0.95])
    fm = FlowMatching()
    zero_loss, _ = fm.loss(lambda x_t, t_: noise - x0, x0, noise=noise, t=t)
    assert zero_loss.item() == 0.0
    # A model predicting zero pays the mean squared target; a model predicting x_t pays |x_t - v|^2.
    loss, _ = fm.loss(lambda x_t, t_: torch.zeros_like(x_t), x0, noise=noise, t=t)
    assert math.isclose(loss.item(), ((noise - x0) ** 2).mean().item(), rel_tol=1e-6)
    loss, _ = fm.loss(lambda x_t, t_: x_t, x0, noise=noise, t=t)
    expected = sum(
        (((1 - ti) * x0[i] + ti * noise[i] - (noise[i] - x0[i])) ** 2).mean().item() for i, ti in enumerate(t.tolist())
    ) / 4
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)


def test_loss_is_per_sample_mean_then_batch_mean():
    fm = FlowMatching()
    pred = torch.zeros(2, 1, 1, 2)
    target = torch.tensor([[[[1.0, 3.0]]], [[[2.0, 0.0]]]])
    torch.testing.assert_close(fm.prediction_loss(pred, target), torch.tensor([5.0, 2.0]))


def test_model_kwargs_reach_the_model():
    seen = {}

    def model(x_t, t, *, y):
        seen["y"] = y
        return torch.zeros_like(x_t)

    FlowMatching().loss(model, torch.randn(2, 1, 2, 2), y=torch.tensor([3, 4]))
    assert seen["y"].tolist() == [3, 4]


def test_generator_makes_draws_reproducible():
    fm = FlowMatching()
    x0 = torch.randn(8, 2, 4, 4)
    first = fm.draw(x0, generator=torch.Generator().manual_seed(5))
    second = fm.draw(x0, generator=torch.Generator().manual_seed(5))
    other = fm.draw(x0, generator=torch.Generator().manual_seed(6))
    assert torch.equal(first.x_t, second.x_t) and torch.equal(first.t, second.t)
    assert not torch.equal(first.noise, other.noise)
    # Documented order: noise first, then times, both from the one generator.
    gen = torch.Generator().manual_seed(5)
    noise = torch.randn(x0.shape, generator=gen)
    t = torch.rand(8, generator=gen)
    torch.testing.assert_close(first.noise, noise)
    torch.testing.assert_close(first.t, t)


def test_uniform_time_sampling_statistics():
    t = FlowMatching().sample_time(20000, "cpu", torch.Generator().manual_seed(0))
    assert t.dtype == torch.float32 and t.min() >= 0 and t.max() < 1
    assert abs(t.mean().item() - 0.5) < 0.01  # std of the mean: 0.002
    assert abs(t.var().item() - 1 / 12) < 0.003


def test_logit_normal_time_sampling_statistics():
    fm = FlowMatching(time_sampling="logit-normal", logit_mean=0.5, logit_std=0.8)
    t = fm.sample_time(20000, "cpu", torch.Generator().manual_seed(0))
    logits = torch.log(t / (1 - t))
    assert abs(logits.mean().item() - 0.5) < 0.03  # std of the mean: 0.0057
    assert abs(logits.std().item() - 0.8) < 0.03


def test_time_shift_moves_times_towards_noise():
    fm = FlowMatching(shift=3.0)
    assert fm.shift_time(0.0) == 0.0 and fm.shift_time(1.0) == 1.0
    assert fm.shift_time(0.5) == pytest.approx(0.75)  # 3 * 0.5 / (1 + 2 * 0.5)
    # the median of shifted uniform times is the shift of the median
    t = fm.sample_time(20000, "cpu", torch.Generator().manual_seed(0))
    assert abs(t.median().item() - 0.75) < 0.01
    assert FlowMatching().shift_time(0.3) == 0.3


def test_shift_for_dimension():
    from specmatch.diffusion.flow_matching import shift_for_dimension

    assert shift_for_dimension(4 * 32 * 32, 4 * 16 * 16) == pytest.approx(2.0)  # 4x the elements: s = 2
    assert shift_for_dimension(1024, 1024) == 1.0


def test_flow_matching_bad_settings():
    with pytest.raises(ValueError, match="time_sampling"):
        FlowMatching(time_sampling="cosine")
    with pytest.raises(ValueError, match="logit_std"):
        FlowMatching(time_sampling="logit-normal", logit_std=0.0)
    with pytest.raises(ValueError, match="noise must have the shape"):
        FlowMatching().draw(torch.zeros(2, 3), noise=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="t must have shape"):
        FlowMatching().draw(torch.zeros(2, 3), t=torch.zeros(3))


# ---------------------------------------------------------------------------------------------------------
# Does it learn: a micro DiT on two clusters of 4x8x8 latents
# ---------------------------------------------------------------------------------------------------------


def test_micro_dit_learns_two_clusters():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    centers = torch.stack([torch.randn(4, 8, 8, generator=gen), torch.zeros(4, 8, 8)])
    centers[1] = -centers[0]  # two well-separated modes, unit scale per element

    def data(batch):
        which = torch.randint(0, 2, (batch,), generator=gen)
        return centers[which] + 0.1 * torch.randn(batch, 4, 8, 8, generator=gen)

    model = build_dit("dit-micro", input_size=8, in_channels=4, patch_size=2)
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3)
    fm = FlowMatching()
    losses = []
    model.train()
    for _ in range(150):
        loss, _ = fm.loss(model, data(64), generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-20:]) / 20
    assert last < 0.4 * first, (first, last)

    model.eval()
    start = torch.randn((64, 4, 8, 8), generator=torch.Generator().manual_seed(1))
    ctx = SamplingContext(denoiser=model, objective=fm, noise=lambda k: start, shape=start.shape, device="cpu")
    samples = EulerSampler(steps=20)(ctx)
    noise = torch.randn(64, 4, 8, 8, generator=torch.Generator().manual_seed(2))

    def rms_to_nearest_center(x):
        d = ((x[:, None] - centers[None]) ** 2).flatten(2).mean(dim=2).sqrt()  # (B, 2)
        return d.min(dim=1).values

    sample_distance = rms_to_nearest_center(samples).mean().item()
    noise_distance = rms_to_nearest_center(noise).mean().item()  # about sqrt(2)
    assert sample_distance < 0.5 * noise_distance, (sample_distance, noise_distance)
