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


# -- accumulators of declared feature streams (``specmatch.FeatureStream``) -------------------------------------


class StreamMoments:
    """A feature stream's float64 moments; ``summary()`` is a ``FeatureSet`` (n, mean, cov) for Frechet metrics."""

    def __init__(self, dim: int, network: str = ""):
        self.moments = FeatureMoments(dim)
        self.network = network

    @classmethod
    def factory(cls, dim: int, network: str = ""):
        """The ``FeatureStream.accumulator`` of a stream of ``dim``-d features."""
        return lambda size, seed: cls(dim, network)

    def update(self, features: Tensor, items: list[int]) -> None:
        self.moments.update(features.flatten(1))

    def summary(self):
        from specmatch.core.components import FeatureSet

        mean, cov = self.moments.mean_cov()
        return FeatureSet(n=self.moments.n, mean=mean, cov=cov, network=self.network)

    def state(self) -> dict[str, Tensor]:
        return self.moments.state()

    def load(self, state: dict[str, Tensor]) -> None:
        self.moments = FeatureMoments(self.moments.dim)  # a fresh object: copies of this accumulator share none
        self.moments.load(state)


@torch.no_grad()
def _softmax_float64(logits: Tensor) -> Tensor:
    return torch.softmax(logits.detach().to(device="cpu", dtype=torch.float64), dim=1)


class SplitSoftmaxKL:
    """What the Inception Score needs of class logits, per split of the items, as sums.

    Item i of a pass of ``size`` items belongs to split ``i * splits // size`` (consecutive blocks of item
    indices, as ADM's evaluator splits its 50k samples into ten blocks of 5000). Per split it keeps the count,
    the sum of p(y|x) (C,) and the sum of sum_y p log p, because the split's mean KL(p(y|x) || p(y)) is
    ``mean(sum_y p log p) - sum_y pbar log pbar`` with ``pbar`` the split's mean of p: sums over items, so
    batches, processes and resumed chunks add up. ``summary()`` returns ``(counts (S,), prob_sums (S, C),
    neg_entropy_sums (S,))`` as float64 numpy arrays.
    """

    def __init__(self, size: int, splits: int, classes: int):
        self.size, self.splits = int(size), int(splits)
        self.count = torch.zeros(self.splits, dtype=torch.float64)
        self.prob_sum = torch.zeros(self.splits, int(classes), dtype=torch.float64)
        self.neg_entropy_sum = torch.zeros(self.splits, dtype=torch.float64)

    @classmethod
    def factory(cls, splits: int, classes: int):
        return lambda size, seed: cls(size, splits, classes)

    def update(self, logits: Tensor, items: list[int]) -> None:
        p = _softmax_float64(logits)
        plogp = (p * torch.log(p.clamp_min(torch.finfo(torch.float64).tiny))).sum(1)
        split = torch.tensor([int(i) * self.splits // max(self.size, 1) for i in items], dtype=torch.long)
        split = split.clamp(0, self.splits - 1)
        self.count.index_add_(0, split, torch.ones(len(items), dtype=torch.float64))
        self.prob_sum.index_add_(0, split, p)
        self.neg_entropy_sum.index_add_(0, split, plogp)

    def summary(self):
        return self.count.numpy().copy(), self.prob_sum.numpy().copy(), self.neg_entropy_sum.numpy().copy()

    def state(self) -> dict[str, Tensor]:
        return {"count": self.count, "prob_sum": self.prob_sum, "neg_entropy_sum": self.neg_entropy_sum}

    def load(self, state: dict[str, Tensor]) -> None:
        self.count = state["count"].to(torch.float64).clone()
        self.prob_sum = state["prob_sum"].to(torch.float64).clone()
        self.neg_entropy_sum = state["neg_entropy_sum"].to(torch.float64).clone()


def inception_score(counts: np.ndarray, prob_sums: np.ndarray, neg_entropy_sums: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation over the non-empty splits of exp(E_x KL(p(y|x) || p(y))) (Salimans et al.
    2016), from the sums of ``SplitSoftmaxKL``."""
    keep = counts > 0
    if not keep.any():
        raise ValueError("the Inception Score needs at least one image")
    counts, prob_sums, neg_entropy_sums = counts[keep], prob_sums[keep], neg_entropy_sums[keep]
    pbar = prob_sums / counts[:, None]
    cross = (pbar * np.log(np.clip(pbar, np.finfo(np.float64).tiny, None))).sum(1)
    scores = np.exp(neg_entropy_sums / counts - cross)
    return float(scores.mean()), float(scores.std())
