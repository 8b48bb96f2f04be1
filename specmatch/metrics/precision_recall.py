"""Improved precision and recall (Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for
Assessing Generative Models"), on feature vectors.

Each set's manifold is the union of balls around its features, the radius of a ball being the distance to the
k-th nearest neighbour within the same set (k = 3, the paper's choice; the point itself is not counted).
Precision is the fraction of generated features inside the real manifold, recall the fraction of real
features inside the generated one. Distances are Euclidean, computed blockwise in float64 so memory stays
O(block * n).
"""

from __future__ import annotations

import numpy as np
import torch

BLOCK = 1024  # rows of the distance matrix computed at once


def _as_tensor(features) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(features, dtype=np.float64))
    if t.ndim != 2:
        raise ValueError(f"features must be a 2-D (N, d) array, got shape {tuple(t.shape)}")
    return t


def knn_radii(features, k: int = 3) -> np.ndarray:
    """Distance of every row to its k-th nearest other row (N,)."""
    f = _as_tensor(features)
    if len(f) <= k:
        raise ValueError(f"precision/recall with k = {k} needs more than {k} features per set, got {len(f)}")
    radii = []
    for block in f.split(BLOCK):
        d = torch.cdist(block, f)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # the 1st smallest is the row itself (distance 0)
    return torch.cat(radii).numpy()


def _coverage(manifold: torch.Tensor, radii: torch.Tensor, probes: torch.Tensor) -> float:
    """Fraction of probes within distance radii[j] of some manifold row j."""
    inside = 0
    for block in probes.split(BLOCK):
        inside += int((torch.cdist(block, manifold) <= radii[None, :]).any(dim=1).sum())
    return inside / len(probes)


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
    """(precision, recall) of generated features ``fake`` against real features ``real``."""
    r, f = _as_tensor(real), _as_tensor(fake)
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature dimensions differ: {r.shape[1]} and {f.shape[1]}")
    real_radii, fake_radii = torch.as_tensor(knn_radii(r, k)), torch.as_tensor(knn_radii(f, k))
    return _coverage(r, real_radii, f), _coverage(f, fake_radii, r)
