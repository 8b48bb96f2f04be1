"""Accumulators that summarise an image set batch by batch, so evaluation never holds all images or features.

* ``FeatureMoments``: count, sum and sum of outer products of features in float64; the mean and the covariance
  (N - 1 normalisation, as ``numpy.cov``) follow at the end. Memory is O(d^2) whatever N is.
* ``FeatureSubset``: the features of a seeded random subset of at most ``capacity`` item indices (the same
  subset whatever the batching, process count or interruptions), for metrics that need the features
  themselves (KID, precision and recall). Memory is O(capacity * d).
* ``MeanOfValues``: the running sum and count of a per-image value (PSNR, SSIM).

Every accumulator is a set of tensors whose sums over processes are the accumulator of the union (the subset's
rows are filled only by the process that saw the item), so partial states add up with one all-reduce, and
``state()`` / ``load()`` save and restore them exactly.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class FeatureMoments:
    """Running first and second moments of (B, d) features, in float64."""

    def __init__(self, dim: int):
        self.dim = int(dim)
        self.count = torch.zeros((), dtype=torch.float64)
        self.sum = torch.zeros(self.dim, dtype=torch.float64)
        self.outer = torch.zeros(self.dim, self.dim, dtype=torch.float64)

    def update(self, features: Tensor) -> None:
        f = features.detach().to(device="cpu", dtype=torch.float64)
        if f.ndim != 2 or f.shape[1] != self.dim:
            raise ValueError(f"expected features of shape (B, {self.dim}), got {tuple(f.shape)}")
        self.count += f.shape[0]
        self.sum += f.sum(0)
        self.outer += f.T @ f

    @property
    def n(self) -> int:
        return int(self.count.item())

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean (d,) and covariance (d, d) with the N - 1 normalisation."""
        n = self.n
        if n < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, got {n}")
        mu = self.sum / n
        cov = (self.outer - n * torch.outer(mu, mu)) / (n - 1)
        return mu.numpy(), cov.numpy()

    def state(self) -> dict[str, Tensor]:
        return {"count": self.count, "sum": self.sum, "outer": self.outer}

    def load(self, state: dict[str, Tensor]) -> None:
        self.count, self.sum, self.outer = (state[k].to(torch.float64).clone() for k in ("count", "sum", "outer"))


def subset_indices(size: int, capacity: int, seed: int) -> Tensor:
    """The sorted item indices (at most ``capacity``) of ``range(size)`` whose features a ``FeatureSubset`` keeps."""
    if capacity >= size:
        return torch.arange(size)
    g = torch.Generator().manual_seed(int(seed))
    return torch.randperm(size, generator=g)[:capacity].sort().values


class FeatureSubset:
    """Features of a seeded random subset of item indices (float32 rows in a fixed buffer)."""

    def __init__(self, size: int, dim: int, capacity: int, seed: int, *, first: bool = False):
        # first=True keeps items 0 .. capacity - 1 (image grids) instead of a random subset
        self.indices = torch.arange(min(int(size), int(capacity))) if first else subset_indices(size, capacity, seed)
        self._slot = {int(i): s for s, i in enumerate(self.indices.tolist())}
        self.rows = torch.zeros(len(self.indices), int(dim), dtype=torch.float32)
        self.filled = torch.zeros(len(self.indices), dtype=torch.float64)

    def update(self, features: Tensor, items: list[int]) -> None:
        """Keep the rows of ``features`` whose item index is in the subset."""
        for row, item in enumerate(items):
            slot = self._slot.get(int(item))
            if slot is not None:
                self.rows[slot] = features[row].detach().to(device="cpu", dtype=torch.float32)
                self.filled[slot] = 1.0

    def features(self) -> np.ndarray:
        """The kept features (n, d) in item order; only the filled rows."""
        return self.rows[self.filled > 0].to(torch.float64).numpy()

    def state(self) -> dict[str, Tensor]:
        return {"rows": self.rows, "filled": self.filled}

    def load(self, state: dict[str, Tensor]) -> None:
        self.rows, self.filled = state["rows"].clone(), state["filled"].to(torch.float64).clone()


class MeanOfValues:
    """Sum and count of a per-image value (B,), in float64; ``inf`` values (identical images) are kept."""

    def __init__(self) -> None:
        self.total = torch.zeros((), dtype=torch.float64)
        self.count = torch.zeros((), dtype=torch.float64)

    def update(self, values: Tensor) -> None:
        v = values.detach().to(device="cpu", dtype=torch.float64).reshape(-1)
        self.total += v.sum()
        self.count += v.numel()

    def mean(self) -> float:
        return float(self.total / self.count) if self.count > 0 else float("nan")

    def state(self) -> dict[str, Tensor]:
        return {"total": self.total, "count": self.count}

    def load(self, state: dict[str, Tensor]) -> None:
        self.total, self.count = state["total"].clone(), state["count"].clone()
