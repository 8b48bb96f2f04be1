"""Gaussian data with closed-form answers: the exact denoiser of each objective and the exact probability flow.

Data x0 ~ N(mu, s^2) independently per element (mu, s of shape (C, h, w)). On a path x = alpha x0 + sigma eps
the marginal is N(alpha mu, V), V = alpha^2 s^2 + sigma^2, and

    E[x0 | x] = mu + alpha s^2 (x - alpha mu) / V,      E[eps | x] = sigma (x - alpha mu) / V.

The probability-flow ODE maps quantiles to quantiles, so its exact solution from x(t1) is
x(t2) = alpha2 mu + sqrt(V2 / V1) (x(t1) - alpha1 mu).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class GaussianData:
    def __init__(self, mu: Tensor, s: Tensor):
        self.mu, self.s = mu.double(), s.double()

    def moments(self, objective, t: float):
        alpha, sigma = (float(v) for v in objective.alpha_sigma(torch.tensor(t, dtype=torch.float64)))
        return alpha, sigma, alpha ** 2 * self.s ** 2 + sigma ** 2

    def posterior(self, objective, x: Tensor, t: float, mu: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(E[x0|x], E[eps|x]) at time t (mu overrides the data mean, for class-conditional oracles)."""
        mu = self.mu if mu is None else mu
        alpha, sigma, var = self.moments(objective, t)
        centred = x - alpha * mu
        return mu + alpha * self.s ** 2 * centred / var, sigma * centred / var

    def network(self, objective, mu_of_label=None):
        """The exact network of ``objective``: output(x, t, y=None) in the objective's prediction."""

        def forward(x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
            time = float(t[0])
            assert torch.all(t == t[0]), "the samplers evaluate one time per batch"
            mu = self.mu if mu_of_label is None else mu_of_label(y)
            x0, eps = self.posterior(objective, x, time, mu)
            alpha, sigma, _ = self.moments(objective, time)
            return {"velocity": eps - x0, "noise": eps, "x0": x0,
                    "v": alpha * eps - sigma * x0}[objective.prediction]

        return forward

    def flow(self, objective, x: Tensor, t1: float, t2: float, mu: Tensor | None = None) -> Tensor:
        """The exact probability-flow solution from x at t1 to t2."""
        mu = self.mu if mu is None else mu
        a1, _, v1 = self.moments(objective, t1)
        a2, _, v2 = self.moments(objective, t2)
        return a2 * mu + torch.sqrt(v2 / v1) * (x - a1 * mu)


def rms(a: Tensor, b: Tensor) -> float:
    return math.sqrt(float(((a - b) ** 2).mean()))
