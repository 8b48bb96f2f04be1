"""The built-in offline demo dataset: square crops of the photos bundled inside the scikit-image and matplotlib wheels.

Nothing is downloaded: the files are read with Pillow straight from the installed packages' folders
(``skimage/data/`` and ``matplotlib/mpl-data/sample_data/``), located with ``importlib.util.find_spec``
without importing either package (so scikit-image's pooch-based fetcher is never involved).

Photos (all RGB, free to use; licences from the packages' docstrings):

* train: astronaut (``skimage/data/astronaut.png``, 512x512; public domain, NASA),
  coffee (``coffee.png``, 600x400; CC0, Rachel Michetti),
  hubble_deep_field (``hubble_deep_field.jpg``, 1000x872; public domain, NASA),
  immunohistochemistry (``ihc.png``, 512x512; no known copyright restrictions),
  retina (``retina.jpg``, 1411x1411; CC0, Mikael Haggstrom),
  grace_hopper (``matplotlib/mpl-data/sample_data/grace_hopper.jpg``, 512x600; public domain, US Navy).
* test (held out entirely): chelsea (``chelsea.png``, 451x300; CC0, Stefan van der Walt) and
  rocket (``rocket.jpg``, 640x427; public domain, SpaceX).

With ``include_grey=True`` the train split also uses five grey images replicated to three channels: camera
(CC0, Lav Varshney), coins (Brooklyn Museum, no known copyright restrictions), brick, grass, gravel (CC0
textures). The test photos are never used for training, so there is no leakage between the splits.

Crops
-----
Item ``i`` is crop number ``i // P`` of photo ``i % P`` (P photos in the split). Each photo has its own
random stream seeded by ``(crop_seed, photo name)``, so the crops of a photo do not change when
``num_images`` or the photo list changes. A crop is a square of side ``s`` drawn log-uniformly from
``[R, min(H, W) / 2]`` (R = resolution; crops are upsampled only if a photo is smaller than 2R) at a
uniform position; nearly flat crops (grey-level standard deviation below 0.02, e.g. the black corners of
the retina photo or clear sky) are redrawn. The dataset stores the crop boxes (``crop_boxes``), not
pixels, and resizes each box to R x R with an area (box) filter when it is read.

Horizontal flips are drawn per ``(seed, epoch, index)`` (see ``specmatch.data.transforms``); call
``set_epoch`` every epoch. ``crop_seed`` fixes *which* crops form the dataset, ``seed`` only the flips.
"""

from __future__ import annotations

import importlib.util
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from specmatch.core.errors import DataError
from specmatch.data.image_file import load_rgb
from specmatch.data.transforms import (
    EpochAugmented,
    check_probability,
    check_resolution,
    check_seed_and_epoch,
    item_generator,
    random_hflip,
    uint8_to_signed,
)


class BundledPhoto(NamedTuple):
    """A photo shipped inside an installed package: ``package``/``relative_path``, with its licence."""

    package: str
    relative_path: str
    licence: str


PHOTOS: dict[str, BundledPhoto] = {
    "astronaut": BundledPhoto("skimage", "data/astronaut.png", "public domain (NASA)"),
    "coffee": BundledPhoto("skimage", "data/coffee.png", "CC0 (Rachel Michetti)"),
    "hubble_deep_field": BundledPhoto("skimage", "data/hubble_deep_field.jpg", "public domain (NASA)"),
    "immunohistochemistry": BundledPhoto("skimage", "data/ihc.png", "no known copyright restrictions (CMMI)"),
    "retina": BundledPhoto("skimage", "data/retina.jpg", "CC0 (Mikael Haggstrom)"),
    "grace_hopper": BundledPhoto("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "public domain (US Navy)"),
    "chelsea": BundledPhoto("skimage", "data/chelsea.png", "CC0 (Stefan van der Walt)"),
    "rocket": BundledPhoto("skimage", "data/rocket.jpg", "public domain (SpaceX)"),
    # grey extras (train only, replicated to RGB)
    "camera": BundledPhoto("skimage", "data/camera.png", "CC0 (Lav Varshney)"),
    "coins": BundledPhoto("skimage", "data/coins.png", "no known copyright restrictions (Brooklyn Museum)"),
    "brick": BundledPhoto("skimage", "data/brick.png", "CC0 (cc0textures.com)"),
    "grass": BundledPhoto("skimage", "data/grass.png", "CC0 (DeviantArt, linolafett)"),
    "gravel": BundledPhoto("skimage", "data/gravel.png", "CC0 (cc0textures.com)"),
}

TRAIN_PHOTOS = ("astronaut", "coffee", "hubble_deep_field", "immunohistochemistry", "retina", "grace_hopper")
TEST_PHOTOS = ("chelsea", "rocket")
GREY_EXTRAS = ("camera", "coins", "brick", "grass", "gravel")
DEFAULT_NUM_IMAGES = {"train": 4096, "test": 512}

FLAT_CROP_STD = 0.02  # grey std (on a 0..1 scale) below which a crop counts as flat and is redrawn
MAX_CROP_ATTEMPTS = 50  # after this many flat draws the last one is kept (never loops forever)


def bundled_photo_path(name: str) -> Path:
    """Where photo ``name`` lives inside its installed package; ``DataError`` if the package or file is missing.

    Uses ``find_spec`` only, so neither package is imported.
    """
    photo = PHOTOS[name]
    spec = importlib.util.find_spec(photo.package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"the demo photo {name!r} ships with the {photo.package!r} package, which is not installed"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / photo.relative_path
    if not path.is_file():
        raise DataError(
            f"the demo photo {name!r} is missing: expected {path} inside the installed {photo.package!r} "
            f"package (reinstall it; the demo dataset never downloads)"
        )
    return path


def _integral_images(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Summed-area tables of g and g^2 (with a zero first row/column), for O(1) crop statistics."""
    padded = np.pad(grey.astype(np.float64), ((1, 0), (1, 0)))
    return padded.cumsum(0).cumsum(1), (padded**2).cumsum(0).cumsum(1)


def _box_sum(table: np.ndarray, top: int, left: int, side: int) -> float:
    b, r = top + side, left + side
    return float(table[b, r] - table[top, r] - table[b, left] + table[top, left])


def sample_crop_boxes(photo: Image.Image, name: str, count: int, resolution: int, crop_seed: int) -> np.ndarray:
    """``count`` crop boxes (left, top, side) of one photo, from the stream seeded by (crop_seed, name)."""
    rng = np.random.default_rng([crop_seed, zlib.crc32(name.encode("utf-8"))])
    width, height = photo.size
    short = min(width, height)
    side_max = max(short // 2, min(resolution, short))
    side_min = min(resolution, side_max)
    grey = np.asarray(photo.convert("L"), dtype=np.float64) / 255.0
    sums, squares = _integral_images(grey)
    boxes = np.zeros((count, 3), dtype=np.int64)
    for k in range(count):
        for _ in range(MAX_CROP_ATTEMPTS):
            side = int(round(np.exp(rng.uniform(np.log(side_min), np.log(side_max)))))
            top = int(rng.integers(0, height - side + 1))
            left = int(rng.integers(0, width - side + 1))
            n = side * side
            mean = _box_sum(sums, top, left, side) / n
            variance = max(_box_sum(squares, top, left, side) / n - mean * mean, 0.0)
            if variance >= FLAT_CROP_STD**2:
                break
        boxes[k] = (left, top, side)
    return boxes


class DemoPhotosDataset(EpochAugmented, Dataset):
    """Crops of bundled photos as ``(image, 0)``: image float32 (3, R, R) in [-1, 1]; unlabelled.

    Args:
        resolution: output side R in pixels.
        split: ``"train"`` (six photos) or ``"test"`` (two held-out photos); see the module docstring.
        num_images: number of crops (dataset length); default 4096 for train and 512 for test.
        hflip_p: probability of a horizontal flip; ``None`` means 0.5 for train and 0 for test.
        seed: seed of the flips.
        crop_seed: seed of the crop boxes (which crops make up the dataset).
        include_grey: add the five grey images to the train split.

    Attributes: ``photo_names``, ``photo_paths``, ``crop_boxes`` (N, 4) int64 rows
    ``(photo index, left, top, side)``, ``num_classes`` = 0, ``resolution``, ``split``, ``epoch``.
    """

    num_classes = 0

    def __init__(
        self,
        *,
        resolution: int = 32,
        split: str = "train",
        num_images: int | None = None,
        hflip_p: float | None = None,
        seed: int = 0,
        crop_seed: int = 0,
        include_grey: bool = False,
    ):
        if split not in DEFAULT_NUM_IMAGES:
            raise DataError(f"split must be 'train' or 'test' for the demo photos; got {split!r}")
        self.resolution = check_resolution(resolution)
        self.split = split
        check_seed_and_epoch(seed)
        check_seed_and_epoch(crop_seed)
        self.seed = int(seed)
        self.epoch = 0
        if hflip_p is None:
            hflip_p = 0.5 if split == "train" else 0.0
        self.hflip_p = check_probability("hflip_p", hflip_p)
        num_images = DEFAULT_NUM_IMAGES[split] if num_images is None else int(num_images)
        if num_images < 1:
            raise DataError(f"num_images must be a positive integer, got {num_images}")

        if split == "train":
            names = TRAIN_PHOTOS + (GREY_EXTRAS if include_grey else ())
        else:
            names = TEST_PHOTOS
        self.photo_names = list(names)
        self.photo_paths = [bundled_photo_path(name) for name in names]
        self.photos = [load_rgb(path) for path in self.photo_paths]

        # Round robin over photos: item i is crop i // P of photo i % P.
        n_photos = len(self.photos)
        per_photo = [len(range(p, num_images, n_photos)) for p in range(n_photos)]
        boxes_per_photo = [
            sample_crop_boxes(photo, name, count, self.resolution, int(crop_seed))
            for photo, name, count in zip(self.photos, names, per_photo)
        ]
        self.crop_boxes = np.zeros((num_images, 4), dtype=np.int64)
        for i in range(num_images):
            p = i % n_photos
            self.crop_boxes[i, 0] = p
            self.crop_boxes[i, 1:] = boxes_per_photo[p][i // n_photos]

    def preflight(self, full: bool = False) -> list:
        """Nothing left to check: the photos are read when the dataset is built (see ``specmatch.data.check``)."""
        return []

    def __len__(self) -> int:
        return len(self.crop_boxes)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        index = int(index)
        if not 0 <= index < len(self.crop_boxes):
            raise IndexError(f"index {index} out of range for {len(self.crop_boxes)} crops")
        photo_index, left, top, side = (int(v) for v in self.crop_boxes[index])
        # Box filter = exact area averaging when shrinking; bicubic in the rare upsampling case.
        resample = Image.BOX if side >= self.resolution else Image.BICUBIC
        crop = self.photos[photo_index].resize(
            (self.resolution, self.resolution), resample=resample, box=(left, top, left + side, top + side)
        )
        image = uint8_to_signed(np.asarray(crop))
        return random_hflip(image, self.hflip_p, item_generator(self.seed, self.epoch, index)), 0

    def describe(self) -> dict:
        """Sources and settings, for run records."""
        return {
            "name": "demo-photos",
            "split": self.split,
            "num_images": len(self),
            "resolution": self.resolution,
            "photos": {
                name: {"path": str(path), "licence": PHOTOS[name].licence}
                for name, path in zip(self.photo_names, self.photo_paths)
            },
        }

    def __repr__(self) -> str:
        return (
            f"DemoPhotosDataset(split={self.split!r}, n={len(self)}, resolution={self.resolution}, "
            f"photos={self.photo_names})"
        )

