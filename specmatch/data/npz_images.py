"""The images of an ADM-layout ``.npz`` (``arr_0``: uint8, N x H x W x 3), as a dataset.

ADM's evaluator (openai/guided-diffusion ``evaluations/evaluator.py``) keeps sample and reference batches in
this layout: the published ImageNet reference batches hold 10 000 training images in ``arr_0`` next to the
statistics of the whole training set (``mu``/``sigma``). ``specmatch stats BATCH.npz`` reads the images
through this class to add a feature subset (for KID and precision/recall) to such a file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from specmatch.core.errors import DataError

IMAGES_KEY = "arr_0"


class NpzImages(torch.utils.data.Dataset):
    """Items ``(image float32 (3, H, W) in [-1, 1], 0)`` of ``arr_0``; ``num_classes`` 0, ``resolution`` H."""

    num_classes = 0

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            with np.load(self.path, allow_pickle=False) as data:
                if IMAGES_KEY not in data.files:
                    raise DataError(f"{self.path}: no {IMAGES_KEY} array of images (found "
                                    f"{', '.join(data.files) or 'nothing'}); expected ADM's layout, uint8 "
                                    f"N x H x W x 3")
                images = data[IMAGES_KEY]
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.path}: cannot read it as an .npz file ({exc})") from None
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
            raise DataError(f"{self.path}: {IMAGES_KEY} is {images.dtype} {tuple(images.shape)}; expected uint8 "
                            f"N x H x W x 3 with square images (ADM's layout)")
        self.images = images
        self.resolution = int(images.shape[1])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = torch.from_numpy(np.ascontiguousarray(self.images[index])).permute(2, 0, 1).float()
        return image / 127.5 - 1.0, 0

    def moments(self) -> dict[str, np.ndarray]:
        """The statistics arrays the file already holds (``mu``, ``sigma``, ``mu_s``, ``sigma_s``), if any."""
        with np.load(self.path, allow_pickle=False) as data:
            return {k: data[k] for k in ("mu", "sigma", "mu_s", "sigma_s") if k in data.files}
