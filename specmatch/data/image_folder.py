"""A folder of image files of any layout as a dataset of (3, R, R) images in [-1, 1].

The folder is searched recursively; files are kept when their extension (case-insensitive) is one of
``extensions``; hidden files and folders (names starting with ".") are skipped. Paths are sorted, so the
dataset is the same on every machine. Images are read with Pillow and converted to 8-bit RGB (grey images
are replicated to three channels, an alpha channel is dropped, 16-bit and float images are scaled; see
``specmatch.data.image_file``).

Train/test split
----------------
Each file's place is decided by a hash of its path relative to ``root``: the ``n_test`` files with the
smallest hashes form the test split (``n_test = test_count``, or ``round(test_fraction * N)``). The split
therefore does not depend on ``seed``, is the same on every machine, and mostly survives adding files.

Unreadable files
----------------
``preflight(full=False)`` lists every unreadable file of the split without decoding pixels;
``preflight(full=True)`` decodes them all (see ``specmatch.data.check``).

Crops
-----
* ``"center"``: ADM's ``center_crop_arr`` (shorter side to R with box halving + bicubic, central crop);
  the preprocessing of the paper's ImageNet data.
* ``"random"``: the same resize, then an R x R crop at a random offset.
* ``"resize"``: squash the whole image to R x R (aspect ratio not kept).

Random crops and horizontal flips are reproducible: see ``specmatch.data.transforms`` (one generator per
``(seed, epoch, index)``; call ``set_epoch`` at the start of every epoch).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

from torch import Tensor
from torch.utils.data import Dataset

from specmatch.core.errors import DataError, Problem
from specmatch.data.check import image_files_preflight
from specmatch.data.image_file import load_rgb
from specmatch.data.transforms import (
    EpochAugmented,
    center_crop_arr,
    check_probability,
    check_resolution,
    check_seed_and_epoch,
    item_generator,
    random_crop_arr,
    random_hflip,
    squash_resize_arr,
    uint8_to_signed,
)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
CROP_MODES = ("center", "random", "resize")
SPLITS = ("train", "test", "all")


def find_images(root: Path, extensions: Sequence[str]) -> list[Path]:
    """All files under ``root`` (recursive, symlinks followed, hidden entries skipped) with an allowed extension.

    Returns paths sorted by their relative POSIX path. Symlinked folders seen twice are visited once.
    """
    allowed = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    found: list[Path] = []
    visited: set[str] = set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in visited:  # a symlink loop or a folder linked twice
            subfolders[:] = []
            continue
        visited.add(real)
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in files:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in allowed:
                found.append(Path(folder) / name)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _path_hash(relative: str) -> str:
    return hashlib.sha256(relative.encode("utf-8")).hexdigest()


class ImageFolderDataset(EpochAugmented, Dataset):
    """Images from a folder as ``(image, label)``: image float32 (3, R, R) in [-1, 1], label an int.

    Args:
        root: the folder (searched recursively).
        resolution: output side R in pixels.
        crop: ``"center"`` (ADM), ``"random"`` or ``"resize"``; see the module docstring.
        hflip_p: probability of a horizontal flip; ``None`` means 0.5 for ``split="train"``/``"all"`` and
            0 for ``"test"``.
        extensions: file endings to keep (case-insensitive).
        split: ``"train"``, ``"test"`` or ``"all"``.
        test_fraction: fraction of the files held out as the test split (0 = none).
        test_count: exact number of test files (instead of ``test_fraction``).
        seed: seed of the random crops and flips (not of the split).
        class_from_subfolder: label = index of the first-level folder under ``root`` (sorted names);
            otherwise every label is 0 and ``num_classes`` is 0.

    Attributes: ``files`` (paths of this split), ``labels``, ``classes`` (folder names or ``[]``),
    ``num_classes``, ``resolution``, ``root``, ``split``, ``epoch``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        resolution: int,
        crop: str = "center",
        hflip_p: float | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        split: str = "train",
        test_fraction: float = 0.0,
        test_count: int | None = None,
        seed: int = 0,
        class_from_subfolder: bool = False,
    ):
        self.root = Path(root)
        self.resolution = check_resolution(resolution)
        if crop not in CROP_MODES:
            raise DataError(f"crop must be one of {', '.join(CROP_MODES)}; got {crop!r}")
        if split not in SPLITS:
            raise DataError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
        if not 0.0 <= float(test_fraction) < 1.0:
            raise DataError(f"test_fraction must be in [0, 1), got {test_fraction}")
        if test_count is not None and test_fraction:
            raise DataError("give either test_fraction or test_count, not both")
        check_seed_and_epoch(seed)
        self.crop = crop
        self.split = split
        self.seed = int(seed)
        self.epoch = 0
        if hflip_p is None:
            hflip_p = 0.0 if split == "test" else 0.5
        self.hflip_p = check_probability("hflip_p", hflip_p)

        if not self.root.is_dir():
            raise DataError(f"image folder not found: {self.root} (expected a directory of images)")
        all_files = find_images(self.root, extensions)
        if not all_files:
            raise DataError(
                f"no images found under {self.root} (searched recursively for {', '.join(extensions)})"
            )

        relative = [p.relative_to(self.root).as_posix() for p in all_files]
        if class_from_subfolder:
            for rel, path in zip(relative, all_files):
                if "/" not in rel:
                    raise DataError(
                        f"class_from_subfolder is set, so every image must sit in a class folder under "
                        f"{self.root}; found {path} directly in it"
                    )
            self.classes = sorted({rel.split("/", 1)[0] for rel in relative})
        else:
            self.classes = []
        self.num_classes = len(self.classes)
        class_index = {name: i for i, name in enumerate(self.classes)}

        n_total = len(all_files)
        n_test = int(test_count) if test_count is not None else round(float(test_fraction) * n_total)
        if not 0 <= n_test <= n_total:
            raise DataError(f"test_count must be between 0 and {n_total} (the number of images), got {n_test}")
        by_hash = sorted(range(n_total), key=lambda i: (_path_hash(relative[i]), relative[i]))
        test_ids = set(by_hash[:n_test])
        if split == "all":
            keep = range(n_total)
        elif split == "test":
            keep = [i for i in range(n_total) if i in test_ids]
        else:
            keep = [i for i in range(n_total) if i not in test_ids]
        if not keep:
            hint = "set test_fraction or test_count" if split == "test" else "lower test_fraction or test_count"
            raise DataError(f"the {split} split of {self.root} is empty ({n_total} images, {n_test} held out); {hint}")

        self.files = [all_files[i] for i in keep]
        self.labels = [class_index[relative[i].split("/", 1)[0]] if self.classes else 0 for i in keep]

    def __len__(self) -> int:
        return len(self.files)

    def preflight(self, full: bool = False) -> list[Problem]:
        """Every file of this split that cannot be read, with why (see ``specmatch.data.check``).

        ``full=False`` checks headers only (format, mode, size; PNG checksums, JPEG end marker);
        ``full=True`` decodes every image as training does.
        """
        return image_files_preflight(self.files, full=full)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        index = int(index)
        if not 0 <= index < len(self.files):
            raise IndexError(f"index {index} out of range for {len(self.files)} images")
        generator = item_generator(self.seed, self.epoch, index)
        image = load_rgb(self.files[index])
        if self.crop == "center":
            arr = center_crop_arr(image, self.resolution)
        elif self.crop == "random":
            arr = random_crop_arr(image, self.resolution, generator)
        else:
            arr = squash_resize_arr(image, self.resolution)
        return random_hflip(uint8_to_signed(arr), self.hflip_p, generator), self.labels[index]

    def __repr__(self) -> str:
        return (
            f"ImageFolderDataset(root={str(self.root)!r}, split={self.split!r}, n={len(self)}, "
            f"resolution={self.resolution}, crop={self.crop!r}, num_classes={self.num_classes})"
        )
