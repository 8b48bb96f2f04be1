"""``channel-eigenspectrum``: how many latent channels carry independent information.

The latent channel covariance (C x C, float64, over all images and positions) and its eigenvalues
(descending); the effective rank ``exp(H(p))`` with ``p_i = lambda_i / sum(lambda)`` and H the Shannon
entropy (Roy & Vetterli 2007, "The effective rank: a measure of effective dimensionality"); the condition
number ``lambda_max / lambda_min`` (``null`` in the report and left out of the scalars when the smallest is
0). Cost: one encoder pass per image.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .common import encode_latents


def channel_covariance(latents: torch.Tensor) -> torch.Tensor:
    """(C, C) float64 covariance of the channels of latents (N, C, h, w) over images and positions."""
    rows = latents.double().transpose(0, 1).flatten(1)  # (C, N*h*w)
    return torch.cov(rows)


def effective_rank(eigenvalues: torch.Tensor) -> float:
    """exp of the entropy of the normalised (non-negative) eigenvalues (Roy & Vetterli 2007)."""
    lam = eigenvalues.double().clamp_min(0)
    p = lam / lam.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def condition_number(eigenvalues: torch.Tensor) -> float:
    """lambda_max / lambda_min; inf when the smallest eigenvalue is 0 (a channel is a combination of others)."""
    lam = eigenvalues.double()
    smallest = float(lam.min())
    return float(lam.max()) / smallest if smallest > 0 else math.inf


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


class ChannelEigenspectrum:
    def __init__(self, latent: str = "sample", batch_size: int = 32, seed: int = 0):
        self.latent, self.batch_size, self.seed = latent, int(batch_size), int(seed)

    @torch.no_grad()
    def run(self, autoencoder, images: torch.Tensor) -> dict[str, Any]:
        n = int(images.shape[0])
        report: dict[str, Any] = {"settings": {"latent": f"posterior {self.latent}", "seed": self.seed}, "n": n}
        if n == 0:
            return report
        z = encode_latents(autoencoder, images, batch_size=self.batch_size, sample=self.latent == "sample",
                           seed=self.seed)
        eigenvalues = torch.linalg.eigvalsh(channel_covariance(z)).flip(0).clamp_min(0)
        report.update({"channels": int(z.shape[1]), "positions": int(z.shape[0] * z.shape[2] * z.shape[3]),
                       "eigenvalues": eigenvalues.tolist(), "effective_rank": effective_rank(eigenvalues),
                       "condition_number": _finite_or_none(condition_number(eigenvalues))})
        return report

    figure = "channel_eigenspectrum.png"

    def write_figures(self, report: dict[str, Any], folder) -> None:
        """The eigenvalues, largest first, on a log axis."""
        from pathlib import Path

        from .common import curve_figure

        values = [v for v in report.get("eigenvalues", []) if v > 0]
        if not values:
            return
        curve_figure(Path(folder) / self.figure, list(range(1, len(values) + 1)), [("eigenvalue", values)],
                     xlabel="component", log_y=True,
                     title=f"latent channel covariance: effective rank {report['effective_rank']:.2f}, N={report['n']}")

    def scalars(self, report: dict[str, Any]) -> dict[str, float]:
        if "eigenvalues" not in report:
            return {}
        out = {"channel_effective_rank": report["effective_rank"]}
        if report["condition_number"] is not None:  # undefined for a singular covariance
            out["channel_condition_number"] = report["condition_number"]
        return out
