"""Fashion-MNIST (Xiao, Rasul and Vollgraf 2017; MIT licence) from its original idx files.

The Debian package ``dataset-fashion-mnist`` installs the four files to ``/usr/share/datasets/fashion-mnist``:
``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` (60,000 train and 10,000 test images, 28x28 grey,
10 classes). Uncompressed copies (without ``.gz``) are read too.

Each 28x28 image is zero-padded to 32x32 (as is usual for 32-pixel models; the background is black, so
padding adds background), resized to R x R if ``resolution != 32`` (bilinear, antialiased), replicated to
three channels and scaled to [-1, 1]. Horizontal flips (off by default) are drawn per
``(seed, epoch, index)``; see ``specmatch.data.transforms``.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from specmatch.core.errors import DataError
from specmatch.data.transforms import (
    EpochAugmented,
    check_probability,
    check_resolution,
    check_seed_and_epoch,
    item_generator,
    random_hflip,
)

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
FILE_PREFIX = {"train": "train", "test": "t10k"}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
IDX_UINT8 = 0x08  # the idx type code of unsigned bytes


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (optionally gzipped) of unsigned bytes into an array of its declared shape.

    Header: two zero bytes, the type code (0x08 = uint8), the number of dimensions, then one big-endian
    uint32 per dimension.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as error:
        raise DataError(f"cannot read the idx file {path}: {error}") from error
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != IDX_UINT8:
        raise DataError(f"{path} is not an idx file of unsigned bytes (bad header {data[:4].hex()})")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(f"{path} is truncated or corrupt: {len(data)} bytes, the header declares {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _find_file(root: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    return None


class FashionMNISTDataset(EpochAugmented, Dataset):
    """Fashion-MNIST as ``(image, label)``: image float32 (3, R, R) in [-1, 1], label in 0..9.

    Args:
        root: folder holding the idx files (see the module docstring).
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
        resolution: output side R (the padded 32x32 image is resized when R != 32).
        hflip_p: probability of a horizontal flip (0 by default).
        seed: seed of the flips.

    Attributes: ``images`` (N, 28, 28) uint8, ``labels`` (N,) int64, ``classes``, ``num_classes`` = 10.
    """

    num_classes = 10
    classes = CLASSES

    def __init__(
        self,
        *,
        root: str | os.PathLike = DEFAULT_ROOT,
        split: str = "train",
        resolution: int = 32,
        hflip_p: float = 0.0,
        seed: int = 0,
    ):
        if split not in FILE_PREFIX:
            raise DataError(f"split must be 'train' or 'test' for Fashion-MNIST; got {split!r}")
        self.root = Path(root)
        self.split = split
        self.resolution = check_resolution(resolution)
        self.hflip_p = check_probability("hflip_p", hflip_p)
        check_seed_and_epoch(seed)
        self.seed = int(seed)
        self.epoch = 0

        prefix = FILE_PREFIX[split]
        stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
        images_path, labels_path = (_find_file(self.root, stem) for stem in stems)
        if images_path is None or labels_path is None:
            raise DataError(
                f"Fashion-MNIST not found at {self.root} (expected {stems[0]}.gz and {stems[1]}.gz); "
                f"install it with `apt-get install dataset-fashion-mnist` or set data.params.root"
            )
        self.images = read_idx(images_path)
        labels = read_idx(labels_path)
        if self.images.ndim != 3 or labels.ndim != 1 or len(labels) != len(self.images):
            raise DataError(
                f"Fashion-MNIST files at {self.root} do not match: images {images_path.name} have shape "
                f"{self.images.shape}, labels {labels_path.name} have shape {labels.shape}"
            )
        if len(labels) and labels.max() >= self.num_classes:
            raise DataError(f"{labels_path} holds label {labels.max()}, but Fashion-MNIST has 10 classes")
        self.labels = labels.astype(np.int64)

    def preflight(self, full: bool = False) -> list:
        """Nothing left to check: the idx files are read and validated when the dataset is built (see ``specmatch.data.check``)."""
        return []

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        index = int(index)
        if not 0 <= index < len(self.images):
            raise IndexError(f"index {index} out of range for {len(self.images)} images")
        grey = torch.from_numpy(self.images[index].astype(np.float32)) / 127.5 - 1.0  # (28, 28) in [-1, 1]
        height, width = grey.shape
        pad_h, pad_w = max(32 - height, 0), max(32 - width, 0)
        # Pad with -1 (black, the background colour) to 32x32: 2 pixels on each side for 28x28.
        grey = F.pad(grey, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=-1.0)
        if grey.shape[-1] != self.resolution or grey.shape[-2] != self.resolution:
            grey = F.interpolate(
                grey[None, None], size=(self.resolution, self.resolution), mode="bilinear",
                align_corners=False, antialias=True,
            )[0, 0]
        image = grey.expand(3, -1, -1).contiguous()
        image = random_hflip(image, self.hflip_p, item_generator(self.seed, self.epoch, index))
        return image, int(self.labels[index])

    def __repr__(self) -> str:
        return (
            f"FashionMNISTDataset(root={str(self.root)!r}, split={self.split!r}, n={len(self)}, "
            f"resolution={self.resolution})"
        )
