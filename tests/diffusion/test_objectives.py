"""DDPM noise prediction and v-prediction: schedules, time draws, targets and conversions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from specmatch.diffusion.ddpm import DDPMNoise
from specmatch.diffusion.v_prediction import VPrediction


def test_ddpm_schedule_is_stable_diffusions():
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2
    alphabar = np.cumprod(1 - betas)
    objective = DDPMNoise()
    n = torch.tensor([1, 10, 500, 999, 1000])
    alpha, sigma = objective.alpha_sigma(n.double() / 1000)
    np.testing.assert_allclose(alpha.numpy() ** 2, alphabar[n.numpy() - 1], rtol=1e-10)
    np.testing.assert_allclose(alpha.numpy() ** 2 + sigma.numpy() ** 2, 1.0, rtol=1e-12)
    assert abs(alphabar[-1] - 0.00466) < 1e-4  # Stable Diffusion's last alphas_cumprod
    a0, s0 = objective.alpha_sigma(torch.tensor(0.0, dtype=torch.float64))
    assert float(a0) == 1.0 and float(s0) == 0.0  # clean data at t = 0
    # between steps: log alpha is linear in t
    mid = objective.alpha_sigma(torch.tensor(0.5005, dtype=torch.float64))[0]
    expected = math.exp(0.5 * (math.log(alphabar[499]) + math.log(alphabar[500])) / 2)
    assert float(mid) == pytest.approx(expected, rel=1e-12)
    assert objective.t_min == 0.001 and objective.t_max == 1.0 and objective.prediction == "noise"


def test_ddpm_discrete_times_are_the_thousand_steps():
    t = DDPMNoise().sample_time(50000, "cpu", torch.Generator().manual_seed(0)).double()
    steps = t * 1000
    assert torch.allclose(steps, steps.round(), atol=1e-3)
    assert steps.round().min() == 1 and steps.round().max() == 1000
    assert abs(steps.mean().item() - 500.5) < 5  # uniform on 1..1000: std of the mean 1.3
    c = DDPMNoise(time="continuous").sample_time(50000, "cpu", torch.Generator().manual_seed(0)).double()
    assert c.min() >= 0.001 and c.max() <= 1.0 and (c * 1000 - (c * 1000).round()).abs().max() > 0.4


def test_ddpm_loss_of_the_exact_noise_is_zero():
    x0 = torch.randn(16, 2, 4, 4, dtype=torch.float64)
    objective = DDPMNoise()

    def oracle(x_t, t):  # knows x0: recovers the noise from the path
        alpha, sigma = objective.alpha_sigma(t.double())
        return (x_t - alpha.view(-1, 1, 1, 1) * x0) / sigma.view(-1, 1, 1, 1)

    loss, logs = objective.loss(oracle, x0, generator=torch.Generator().manual_seed(0))
    assert loss.item() < 1e-20 and "ddpm" in logs


def test_v_prediction_target_and_conversion():
    objective = VPrediction()
    x0, eps = torch.randn(3, 2, 2, 2, dtype=torch.float64), torch.randn(3, 2, 2, 2, dtype=torch.float64)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    batch = objective.draw(x0, noise=eps, t=t)
    c, s = math.cos(math.pi / 4), math.sin(math.pi / 4)
    torch.testing.assert_close(batch.x_t[1], c * x0[1] + s * eps[1])
    torch.testing.assert_close(batch.target[0], eps[0])  # t = 0: v = eps
    torch.testing.assert_close(batch.target[2], -x0[2], atol=1e-15, rtol=0)  # t = 1: v = -x0
    # v is the path's time derivative divided by pi / 2
    h = 1e-6
    derivative = (objective.path(x0, eps, t[1:2].expand(3) + h) - objective.path(x0, eps, t[1:2].expand(3) - h)) / (2 * h)
    torch.testing.assert_close(derivative[1], math.pi / 2 * batch.target[1])
    x0_hat, eps_hat = objective.to_x0_noise(batch.target, batch.x_t, t)
    torch.testing.assert_close(x0_hat, x0)
    torch.testing.assert_close(eps_hat, eps)
