"""Image utilities shared by the datasets: reproducible per-item randomness, crops, flips, [-1, 1] scaling.

Reading files is in ``specmatch.data.image_file``.

Reproducible augmentation
-------------------------
Every random choice a dataset makes for one item (a random crop offset, a horizontal flip) is drawn from a
fresh ``torch.Generator`` seeded by ``item_seed(seed, epoch, index)``. The draw therefore depends only on
the dataset's ``seed``, the epoch set with ``set_epoch(epoch)`` and the item's index, and not on the
worker process, the order in which items are fetched, or how many items were fetched before. Resuming a
run at epoch e and re-reading item i gives exactly the augmentation of the uninterrupted run.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from specmatch.core.errors import DataError


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed that depends only on ``(seed, epoch, index)``.

    ``numpy.random.SeedSequence`` hashes the three integers, so neighbouring indices or epochs get unrelated
    streams. The result is the same on every platform and Python run (unlike ``hash()`` of a str).
    """
    state = np.random.SeedSequence([int(seed), int(epoch), int(index)]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))  # keep it inside int64 for torch.Generator.manual_seed


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A CPU ``torch.Generator`` for one item's augmentation (data loading always runs on the CPU)."""
    return torch.Generator().manual_seed(item_seed(seed, epoch, index))


def check_seed_and_epoch(seed: int, epoch: int = 0) -> None:
    """Seeds and epochs are non-negative integers (``SeedSequence`` needs that)."""
    if int(seed) < 0:
        raise DataError(f"data seed must be a non-negative integer, got {seed}")
    if int(epoch) < 0:
        raise DataError(f"epoch must be a non-negative integer, got {epoch}")


class EpochAugmented:
    """Mixin of datasets whose augmentation is drawn from (seed, epoch, index): the engine calls
    ``set_epoch`` on a shallow copy at the start of every epoch (see docs/plugins.md, datasets)."""

    seed: int
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation of epoch ``epoch``."""
        check_seed_and_epoch(self.seed, epoch)
        self.epoch = int(epoch)


def check_probability(name: str, p: float) -> float:
    if not 0.0 <= float(p) <= 1.0:
        raise DataError(f"{name} must be a probability in [0, 1], got {p}")
    return float(p)


def check_resolution(resolution: int) -> int:
    if int(resolution) != resolution or int(resolution) < 1:
        raise DataError(f"resolution must be a positive integer (pixels), got {resolution!r}")
    return int(resolution)


def random_hflip(image: Tensor, p: float, generator: torch.Generator) -> Tensor:
    """Flip a (C, H, W) image left-right with probability ``p`` (one draw from ``generator`` if p > 0)."""
    if p > 0.0 and torch.rand((), generator=generator).item() < p:
        return image.flip(-1)
    return image


def uint8_to_signed(array: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1] (0 -> -1, 255 -> 1)."""
    tensor = torch.from_numpy(np.array(array, dtype=np.uint8, copy=True)).permute(2, 0, 1)  # PIL arrays are read-only
    return tensor.to(torch.float32) / 127.5 - 1.0


def resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side equals ``size``, as ADM's ``center_crop_arr`` does.

    Halve with a box filter while the image is at least twice too large (cheap and alias-free), then one
    bicubic resize to the exact size.
    """
    while min(*image.size) >= 2 * size:
        image = image.resize(tuple(x // 2 for x in image.size), resample=Image.BOX)
    scale = size / min(*image.size)
    return image.resize(tuple(round(x * scale) for x in image.size), resample=Image.BICUBIC)


def center_crop_arr(image: Image.Image, size: int) -> np.ndarray:
    """ADM's ``center_crop_arr``: shorter side to ``size``, then the central (size, size) crop as uint8 HWC."""
    arr = np.asarray(resize_shorter_side(image, size))
    top = (arr.shape[0] - size) // 2
    left = (arr.shape[1] - size) // 2
    return arr[top : top + size, left : left + size]


def random_crop_arr(image: Image.Image, size: int, generator: torch.Generator) -> np.ndarray:
    """Shorter side to ``size`` (as ``center_crop_arr``), then a (size, size) crop at a random offset."""
    arr = np.asarray(resize_shorter_side(image, size))
    top = int(torch.randint(0, arr.shape[0] - size + 1, (), generator=generator))
    left = int(torch.randint(0, arr.shape[1] - size + 1, (), generator=generator))
    return arr[top : top + size, left : left + size]


def squash_resize_arr(image: Image.Image, size: int) -> np.ndarray:
    """Resize to (size, size) ignoring the aspect ratio (bicubic; PIL antialiases when shrinking)."""
    return np.asarray(image.resize((size, size), resample=Image.BICUBIC))
