"""Tests for the flow-matching objective and the samplers, ending with a small "does it learn" run."""

from __future__ import annotations

import math

import pytest
import torch

from specmatch.diffusion.dit import build_dit
from specmatch.diffusion.flow_matching import FlowMatching
from specmatch.diffusion.samplers import euler_maruyama_sample, euler_sample, heun_sample, time_grid

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
# Samplers on a Gaussian toy problem with an exact velocity field
# ---------------------------------------------------------------------------------------------------------
#
# Data x0 ~ N(mu, s^2 I). On the path x_t = (1 - t) x0 + t eps, x_t ~ N(m(t), sigma(t)^2 I) with
# m(t) = (1 - t) mu and sigma(t)^2 = (1 - t)^2 s^2 + t^2, and the exact (marginal) velocity is
#     v(x, t) = m'(t) + sigma'(t) / sigma(t) * (x - m(t)),   sigma' sigma = t - (1 - t) s^2.
# Its ODE maps a starting noise x1 to x(t) = m(t) + sigma(t) x1, so x(0) = mu + s * x1 exactly.

TOY_S = 0.5
TOY_SHAPE = (64, 2, 3, 3)


def toy_mu() -> torch.Tensor:
    return torch.linspace(-2.0, 2.0, 18).reshape(1, 2, 3, 3)


def toy_velocity(x, t):
    t = t.view(-1, 1, 1, 1)
    mu = toy_mu().to(x)
    sigma2 = (1 - t) ** 2 * TOY_S**2 + t**2
    return -mu + (t - (1 - t) * TOY_S**2) / sigma2 * (x - (1 - t) * mu)


def toy_endpoint(seed: int) -> torch.Tensor:
    # The sampler's first draw (float64 draws differ from float32 ones for the same seed).
    x1 = torch.randn(TOY_SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return toy_mu().double() + TOY_S * x1


def toy_error(sampler, steps: int, seed: int = 0) -> float:
    x = sampler(toy_velocity, TOY_SHAPE, steps=steps, device="cpu", dtype=torch.float64,
                generator=torch.Generator().manual_seed(seed))
    return (x - toy_endpoint(seed)).abs().max().item()


def test_euler_reaches_the_analytical_endpoint():
    assert toy_error(euler_sample, 2000) < 2e-3
    # First order: ten times the steps gives about a tenth of the error.
    coarse, fine = toy_error(euler_sample, 20), toy_error(euler_sample, 200)
    assert 5 < coarse / fine < 20


def test_heun_is_more_accurate_than_euler():
    for steps in (5, 10, 20):
        assert toy_error(heun_sample, steps) < 0.2 * toy_error(euler_sample, steps)
    # Second order: ten times the steps gives about a hundredth of the error.
    assert toy_error(heun_sample, 10) / toy_error(heun_sample, 100) > 50


def test_euler_maruyama_matches_the_data_distribution():
    shape = (4000, 2, 3, 3)
    x = euler_maruyama_sample(toy_velocity, shape, steps=100, device="cpu", dtype=torch.float64,
                              generator=torch.Generator().manual_seed(0))
    mean, std = x.mean(dim=0), x.std(dim=0)
    assert (mean - toy_mu()[0].double()).abs().max() < 0.05  # std of the mean: 0.5 / sqrt(4000) = 0.008
    assert (std - TOY_S).abs().max() < 0.05
    # Stochastic: not the deterministic ODE endpoint of the same starting noise.
    start = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert (x - (toy_mu() + TOY_S * start)).abs().mean() > 0.1


def test_time_grid():
    assert time_grid(4, 0.0) == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    assert time_grid(3, 0.2) == pytest.approx([1.0, 0.6, 0.2, 0.0])


def test_euler_with_t_end_jumps_to_the_clean_estimate():
    """With an exact field of point data (s -> 0 gives x0 = mu), the last jump x - t v recovers mu exactly."""
    mu = toy_mu()

    def point_velocity(x, t):  # data = the single point mu: v = (x - mu) / t
        return (x - mu.to(x)) / t.view(-1, 1, 1, 1)

    x = euler_sample(point_velocity, (4, 2, 3, 3), steps=3, t_end=0.3, device="cpu",
                     generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, mu.expand(4, 2, 3, 3))


# ---------------------------------------------------------------------------------------------------------
# Classifier-free guidance
# ---------------------------------------------------------------------------------------------------------

CLASS_VELOCITY = {0: 1.0, 1: -2.0, 9: 0.5}  # constant velocity per label; 9 is the null class


def constant_class_model(calls):
    def model(x, t, *, y):
        calls.append((x.shape[0], t[0].item(), y.tolist()))
        return torch.tensor([CLASS_VELOCITY[int(label)] for label in y]).view(-1, 1, 1, 1).expand_as(x)

    return model


def test_cfg_combines_conditional_and_null_predictions():
    calls = []
    y = torch.tensor([0, 1])
    x = euler_sample(constant_class_model(calls), (2, 1, 2, 2), steps=4, device="cpu", y=y, cfg_scale=3.0,
                     null_class=9, generator=torch.Generator().manual_seed(0))
    start = torch.randn((2, 1, 2, 2), generator=torch.Generator().manual_seed(0))
    guided = torch.tensor([0.5 + 3.0 * (1.0 - 0.5), 0.5 + 3.0 * (-2.0 - 0.5)]).view(2, 1, 1, 1)
    torch.testing.assert_close(x, start - guided)  # constant field: x(0) = x(1) - v
    assert all(batch == 4 and labels == [0, 1, 9, 9] for batch, _, labels in calls)


def test_cfg_only_inside_the_interval():
    calls = []
    y = torch.tensor([0, 1])
    x = euler_sample(constant_class_model(calls), (2, 1, 2, 2), steps=4, device="cpu", y=y, cfg_scale=3.0,
                     cfg_interval=(0.0, 0.5), null_class=9, generator=torch.Generator().manual_seed(0))
    # Steps start at t = 1, 0.75 (unguided) and 0.5, 0.25 (guided); each moves by 0.25 * v.
    start = torch.randn((2, 1, 2, 2), generator=torch.Generator().manual_seed(0))
    cond = torch.tensor([1.0, -2.0]).view(2, 1, 1, 1)
    guided = torch.tensor([0.5 + 3.0 * 0.5, 0.5 + 3.0 * -2.5]).view(2, 1, 1, 1)
    torch.testing.assert_close(x, start - 0.5 * cond - 0.5 * guided)
    assert [(batch, t) for batch, t, _ in calls] == [(2, 1.0), (2, 0.75), (4, 0.5), (4, 0.25)]


def test_no_guidance_at_scale_one():
    calls = []
    euler_sample(constant_class_model(calls), (2, 1, 2, 2), steps=2, device="cpu", y=torch.tensor([0, 1]),
                 null_class=9)
    assert all(batch == 2 for batch, _, _ in calls)


def test_sampler_bad_arguments():
    with pytest.raises(ValueError, match="needs class labels"):
        euler_sample(toy_velocity, TOY_SHAPE, device="cpu", cfg_scale=2.0, null_class=0)
    with pytest.raises(ValueError, match="null_class"):
        heun_sample(toy_velocity, (2, 1), device="cpu", cfg_scale=2.0, y=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="steps"):
        euler_sample(toy_velocity, TOY_SHAPE, steps=0, device="cpu")
    with pytest.raises(ValueError, match="cfg_interval"):
        euler_sample(toy_velocity, TOY_SHAPE, device="cpu", cfg_interval=(0.8, 0.2))
    with pytest.raises(ValueError, match="t_end"):
        euler_sample(toy_velocity, TOY_SHAPE, device="cpu", t_end=1.0)


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
    samples = euler_sample(model, (64, 4, 8, 8), steps=20, device="cpu", generator=torch.Generator().manual_seed(1))
    noise = torch.randn(64, 4, 8, 8, generator=torch.Generator().manual_seed(2))

    def rms_to_nearest_center(x):
        d = ((x[:, None] - centers[None]) ** 2).flatten(2).mean(dim=2).sqrt()  # (B, 2)
        return d.min(dim=1).values

    sample_distance = rms_to_nearest_center(samples).mean().item()
    noise_distance = rms_to_nearest_center(noise).mean().item()  # about sqrt(2)
    assert sample_distance < 0.5 * noise_distance, (sample_distance, noise_distance)
