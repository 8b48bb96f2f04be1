"""The latent-midpoint sampler against closed-form answers, run in specmatch's own sampling context.

Data N(mu, s^2) per element on the straight flow-matching path x_t = (1 - t) x0 + t eps has an exact network:
x_t ~ N((1 - t) mu, (1 - t)^2 s^2 + t^2), so E[x0 | x_t] = mu + (1 - t) s^2 (x_t - (1 - t) mu) / var(t), and its
probability flow carries the noise z at t = 1 to mu + s z at t = 0. The sampler's error against that end point
must fall at least as 1 / steps^2 (second order; Euler's falls as 1 / steps). On this flow the midpoint rule
does better than its order (measured slopes near 3, for 4 to 32 steps), so only the lower bound is asserted.

The sampler contract with a sampling context (``ctx.noise(k)``, ``ctx.predict(x, t)``) is specmatch's newer
one (docs/diffusion.md, "Sampler"); with an older specmatch these tests skip.
"""

import math

import pytest
import torch

from specmatch_latent_unet import plugin
from specmatch_latent_unet.sampler import MidpointSampler

sampling = pytest.importorskip(
    "specmatch.engine.sampling",
    reason="this specmatch has no sampling context (specmatch.engine.sampling): the latent-midpoint sampler is "
           "written for the sampler contract of docs/diffusion.md")
if not hasattr(sampling, "SamplingContext"):
    pytest.skip("specmatch.engine.sampling has no SamplingContext: the latent-midpoint sampler is written for "
                "the sampler contract of docs/diffusion.md", allow_module_level=True)


class StraightPath:
    """The flow-matching objective's sampling half, from its documented formulas (docs/diffusion.md)."""

    prediction = "velocity"
    t_min, t_max = 0.0, 1.0

    def alpha_sigma(self, t):
        return 1 - t, t

    def to_x0_noise(self, output, x_t, t):
        return x_t - t * output, x_t + (1 - t) * output


class GaussianVelocity:
    """The exact velocity network for data N(means[y], s^2); label None reads the null row (the last)."""

    def __init__(self, means: torch.Tensor, s: float):
        self.means, self.s, self.calls, self.batches = means, s, 0, []

    def __call__(self, x, t, y=None):
        self.calls += 1
        self.batches.append(x.shape[0])
        mu = self.means[-1] if y is None else self.means[y].view(-1, *[1] * (x.ndim - 1))
        t = t.view(-1, *[1] * (x.ndim - 1)).to(x)
        var = (1 - t) ** 2 * self.s ** 2 + t ** 2
        x0 = mu + (1 - t) * self.s ** 2 * (x - (1 - t) * mu) / var
        eps = t * (x - (1 - t) * mu) / var
        return eps - x0


def run(sampler, network, z, labels=None, null_class=None):
    noise_asked = []

    def noise(k):
        noise_asked.append(k)
        return z

    ctx = sampling.SamplingContext(denoiser=network, objective=StraightPath(), noise=noise, shape=tuple(z.shape),
                                   device=z.device, dtype=z.dtype, labels=labels, null_class=null_class,
                                   guidance=sampler.guidance)
    out = sampler(ctx)
    assert noise_asked == [0]   # a deterministic ODE sampler draws the starting noise only
    return out


def test_error_falls_as_the_square_of_the_step():
    z = torch.randn(64, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mu, s = 1.0, 0.5
    exact = mu + s * z
    errors = {}
    for steps in (4, 8, 16):
        network = GaussianVelocity(torch.tensor([mu], dtype=torch.float64), s)
        out = run(MidpointSampler(steps=steps), network, z)
        assert network.calls == 2 * steps and out.shape == z.shape
        errors[steps] = (out - exact).abs().max().item()
    slopes = [math.log2(errors[a] / errors[b]) for a, b in ((4, 8), (8, 16))]
    assert all(slope > 1.8 for slope in slopes), (errors, slopes)   # a first-order step gives about 1


def test_guidance_follows_the_guided_gaussian_and_doubles_the_batch():
    # classes of equal variance: guiding with scale w follows the flow of N(mu_null + w (mu_y - mu_null), s^2)
    means, s, w = torch.tensor([-1.0, 2.0, 0.5], dtype=torch.float64), 0.5, 1.5   # the last row: the null class
    labels = torch.tensor([0, 1] * 16)
    z = torch.randn(32, 1, 2, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    network = GaussianVelocity(means, s)
    out = run(MidpointSampler(steps=32, cfg_scale=w), network, z, labels=labels, null_class=2)
    guided_mean = means[2] + w * (means[labels] - means[2])
    assert torch.allclose(out, guided_mean.view(-1, 1, 1, 1) + s * z, atol=1e-3)
    assert set(network.batches) == {64}   # one call on the doubled batch (labels, then null) per evaluation

    unguided = run(MidpointSampler(steps=32), GaussianVelocity(means, s), z, labels=labels, null_class=2)
    assert torch.allclose(unguided, means[labels].view(-1, 1, 1, 1) + s * z, atol=1e-3)


def test_facts_say_cfg_needs_labels_and_that_it_integrates_time():
    assert plugin.midpoint_facts(plugin.MidpointParams(cfg_scale=2.0)).needs_labels == "cfg_scale"
    facts = plugin.midpoint_facts(plugin.MidpointParams())
    assert facts.needs_labels == ""
    assert getattr(facts, "integrates_time", "midpoint steps") == "midpoint steps"
