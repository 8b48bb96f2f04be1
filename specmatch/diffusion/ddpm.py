"""DDPM noise prediction on Stable Diffusion's discrete linear-beta schedule (U-ViT's objective).

The schedule has N = 1000 steps, betas = linspace(sqrt(0.00085), sqrt(0.012), N) ** 2 and
alphabar_n = prod_{i <= n} (1 - beta_i), n = 1..N. The path is the variance-preserving one,

    x = sqrt(alphabar) x0 + sqrt(1 - alphabar) eps,     alpha = sqrt(alphabar), sigma = sqrt(1 - alphabar),

and the network predicts eps (loss: mean squared error).

Time mapping (the denoiser contract wants t in [0, 1], 1 = noise): step n (1-based, the index U-ViT's network
sees) is t = n / N, so training times are 1/N, 2/N, ..., 1 and a network that embeds "t * 1000" sees U-ViT's
integer n. Between the steps, log alpha is interpolated linearly in t (DPM-Solver's discrete schedule, with
the extra knot alphabar = 1 at t = 0), which defines alpha_sigma on all of [0, 1] for samplers that evaluate
between steps; ``t_min = 1/N`` and ``t_max = 1`` bound the times the network was trained on.

``time = "discrete"`` (the default, as U-ViT and Stable Diffusion train) draws n uniformly from 1..N;
``time = "continuous"`` draws t uniformly from [1/N, 1] on the interpolated schedule, which makes the
network a function of continuous time and the schedule's time derivative meaningful (needed by the samplers
that integrate dx/dt: Euler, Heun, Euler-Maruyama).
"""

from __future__ import annotations

import torch
from torch import Tensor

from specmatch.diffusion.gaussian_path import GaussianPathObjective, broadcast_time, random_uniform

STEPS = 1000
BETA_START, BETA_END = 0.00085, 0.012
TIMES = ("discrete", "continuous")


def stable_diffusion_betas(steps: int = STEPS) -> Tensor:
    """float64 (steps,): linspace(sqrt(0.00085), sqrt(0.012), steps) ** 2."""
    return torch.linspace(BETA_START ** 0.5, BETA_END ** 0.5, steps, dtype=torch.float64) ** 2


class DiscreteSchedule:
    """alpha(t), sigma(t) of a discrete variance-preserving schedule, log alpha piecewise linear in t."""

    def __init__(self, betas: Tensor):
        self.steps = betas.numel()
        log_alpha = 0.5 * torch.cumsum(torch.log1p(-betas.double()), 0)
        self.log_alpha = torch.cat([torch.zeros(1, dtype=torch.float64), log_alpha])  # knots t = 0, 1/N, .., 1

    def log_alpha_at(self, t: Tensor) -> Tensor:
        knots = self.log_alpha.to(t.device)
        position = t.double().clamp(0.0, 1.0) * self.steps
        index = position.detach().floor().clamp(0, self.steps - 1).long()
        fraction = position - index
        return knots[index] * (1 - fraction) + knots[index + 1] * fraction

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        alpha = torch.exp(self.log_alpha_at(t))
        return alpha.to(t.dtype), torch.sqrt(1 - alpha * alpha).to(t.dtype)


class DDPMNoise(GaussianPathObjective):
    """Noise prediction on the Stable Diffusion schedule (see the module docstring).

    Args (keyword-only): time: "discrete" (train at t = n / 1000) or "continuous" (t ~ U[1/1000, 1]).
    """

    prediction = "noise"
    log_name = "ddpm"
    t_max = 1.0

    def __init__(self, *, time: str = "discrete"):
        if time not in TIMES:
            raise ValueError(f"time must be one of {', '.join(TIMES)}, got {time!r}")
        self.time = time
        self.schedule = DiscreteSchedule(stable_diffusion_betas())
        self.steps = self.schedule.steps
        self.t_min = 1.0 / self.steps

    @property
    def continuous_time(self) -> bool:
        return self.time == "continuous"

    def __repr__(self) -> str:
        return f"DDPMNoise(time={self.time!r})"

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return self.schedule.alpha_sigma(torch.as_tensor(t))

    def sample_time(self, batch: int, device: torch.device | str,
                    generator: torch.Generator | None = None) -> Tensor:
        u = random_uniform((batch,), device=device, dtype=torch.float64, generator=generator)
        if self.time == "discrete":  # n uniform in 1..N
            t = (torch.floor(u * self.steps).clamp(max=self.steps - 1) + 1) / self.steps
        else:
            t = self.t_min + (1 - self.t_min) * u
        return t.float()

    def target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        return noise

    def to_x0_noise(self, output: Tensor, x_t: Tensor, t: Tensor | float) -> tuple[Tensor, Tensor]:
        """noise = output; x0 = (x_t - sigma noise) / alpha (alpha >= 0.068 on the schedule's range)."""
        alpha, sigma = self.alpha_sigma(torch.as_tensor(t, dtype=torch.float64))
        alpha, sigma = broadcast_time(alpha, x_t), broadcast_time(sigma, x_t)
        return (x_t - sigma * output) / alpha, output

