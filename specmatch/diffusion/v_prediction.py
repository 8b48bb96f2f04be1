"""v-prediction on the continuous cosine schedule (Salimans & Ho, "Progressive distillation", 2022).

    alpha(t) = cos(pi t / 2),  sigma(t) = sin(pi t / 2),    x_t = alpha x0 + sigma eps,   t in [0, 1],
    v = alpha eps - sigma x0.

Why this schedule rather than v on the discrete DDPM one: it is defined in continuous time with
alpha(1) = 0, so the samplers' starting noise is exactly the path's end and every sampler (including those
that integrate dx/dt = (pi / 2) v) works with it. Since alpha^2 + sigma^2 = 1, the conversions are rotations:
x0 = alpha x_t - sigma v and eps = sigma x_t + alpha v. Training times are uniform on [0, 1].
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from specmatch.diffusion.gaussian_path import GaussianPathObjective, broadcast_time, random_uniform


class VPrediction(GaussianPathObjective):
    """v = alpha eps - sigma x0 on the cosine schedule (see the module docstring)."""

    prediction = "v"
    log_name = "v_prediction"
    t_min = 0.0
    t_max = 1.0

    def __repr__(self) -> str:
        return "VPrediction(schedule='cosine')"

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        t = torch.as_tensor(t)
        return torch.cos(0.5 * math.pi * t), torch.sin(0.5 * math.pi * t)

    def sample_time(self, batch: int, device: torch.device | str,
                    generator: torch.Generator | None = None) -> Tensor:
        return random_uniform((batch,), device=device, dtype=torch.float32, generator=generator)

    def target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        alpha, sigma = self.alpha_sigma(t.double())
        return broadcast_time(alpha, x0) * noise - broadcast_time(sigma, x0) * x0

    def to_x0_noise(self, output: Tensor, x_t: Tensor, t: Tensor | float) -> tuple[Tensor, Tensor]:
        alpha, sigma = self.alpha_sigma(torch.as_tensor(t, dtype=torch.float64))
        alpha, sigma = broadcast_time(alpha, x_t), broadcast_time(sigma, x_t)
        return alpha * x_t - sigma * output, sigma * x_t + alpha * output
