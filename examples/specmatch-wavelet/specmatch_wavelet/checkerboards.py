"""The ``checkerboards`` dataset: synthetic images drawn on the fly (numpy and torch; imported lazily).

Image ``i`` of a split depends only on ``(seed, split, i)``: a checkerboard with ``n`` squares per side
(``n`` from 2, 4, 8, ... up to half the resolution; the label is the index of ``n``), a random phase shift
along each axis and two random RGB colours in [-1, 1].
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

_SPLIT_IDS = {"train": 0, "test": 1}


def squares_per_side(resolution: int) -> tuple[int, ...]:
    """The frequency classes: 2, 4, 8, ... squares per side, each square at least 2 pixels wide."""
    out, n = [], 2
    while n <= resolution // 2:
        out.append(n)
        n *= 2
    return tuple(out)


class CheckerboardsDataset(Dataset):
    """Items are ``(image float32 (3, R, R) in [-1, 1], label int in [0, num_classes))``."""

    def __init__(self, *, split: str, num_images: int, resolution: int, seed: int = 0):
        if split not in _SPLIT_IDS:
            raise ValueError(f"split must be one of {sorted(_SPLIT_IDS)}; got {split!r}")
        if resolution < 4:
            raise ValueError(f"resolution must be >= 4; got {resolution}")
        self.split, self.num_images, self.resolution, self.seed = split, num_images, resolution, seed
        self.squares = squares_per_side(resolution)
        self.num_classes = len(self.squares)

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        rng = np.random.default_rng([self.seed, _SPLIT_IDS[self.split], index])
        label = int(rng.integers(self.num_classes))
        period = self.resolution / self.squares[label]  # square side in pixels (may be fractional)
        phase_x, phase_y = rng.uniform(0.0, 2.0 * period, size=2)
        colours = rng.uniform(-1.0, 1.0, size=(2, 3)).astype(np.float32)
        centres = np.arange(self.resolution) + 0.5
        col = np.floor((centres + phase_x) / period).astype(np.int64)
        row = np.floor((centres + phase_y) / period).astype(np.int64)
        parity = (row[:, None] + col[None, :]) % 2  # (R, R): which of the two colours
        image = colours[parity].transpose(2, 0, 1)  # (R, R, 3) -> (3, R, R)
        return torch.from_numpy(np.ascontiguousarray(image)), label
