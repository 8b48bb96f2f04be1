"""Image folder, demo photo and Fashion-MNIST datasets: layout, crops, ranges, reproducible flips, splits."""

from __future__ import annotations

import gzip
import socket
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from specmatch.core.errors import DataError
from specmatch.data.demo import TEST_PHOTOS, TRAIN_PHOTOS, DemoPhotosDataset
from specmatch.data.fashion_mnist import FashionMNISTDataset
from specmatch.data.image_folder import ImageFolderDataset


def to_signed(arr: np.ndarray) -> torch.Tensor:
    """Reference conversion: uint8 HWC -> float CHW in [-1, 1]."""
    return torch.tensor(arr, dtype=torch.float32).permute(2, 0, 1) / 127.5 - 1.0


def asymmetric_rgb(height: int, width: int, offset: int = 0) -> np.ndarray:
    """A uint8 image that differs from its mirror image (a horizontal ramp plus stripes)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 7 + offset) % 256, (y * 5 + offset) % 256, ((x * y) + offset) % 256], -1).astype(np.uint8)


# --------------------------------------------------------------------------------------------------------------
# ImageFolderDataset


@pytest.fixture
def nested_folder(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    (root / "cats" / "deep").mkdir(parents=True)
    (root / "dogs").mkdir()
    (root / ".cache").mkdir()
    Image.fromarray(asymmetric_rgb(24, 32)).save(root / "cats" / "a.png")
    Image.fromarray(asymmetric_rgb(40, 30, 50)).save(root / "cats" / "deep" / "b.JPG", quality=95)
    Image.fromarray(asymmetric_rgb(20, 20, 90)[..., 0]).save(root / "dogs" / "c.bmp")  # grey
    Image.fromarray(np.dstack([asymmetric_rgb(30, 30), np.full((30, 30), 128, np.uint8)])).save(root / "dogs" / "d.png")
    (root / "dogs" / "notes.txt").write_text("not an image")
    Image.fromarray(asymmetric_rgb(8, 8)).save(root / ".cache" / "hidden.png")
    return root


def test_folder_finds_nested_images_sorted_and_ignores_others(nested_folder):
    ds = ImageFolderDataset(nested_folder, resolution=16, split="all")
    relative = [p.relative_to(nested_folder).as_posix() for p in ds.files]
    assert relative == ["cats/a.png", "cats/deep/b.JPG", "dogs/c.bmp", "dogs/d.png"]
    assert ds.num_classes == 0 and ds.labels == [0, 0, 0, 0]
    for i in range(len(ds)):
        image, label = ds[i]
        assert image.shape == (3, 16, 16) and image.dtype == torch.float32
        assert image.min() >= -1.0 and image.max() <= 1.0
        assert label == 0 and isinstance(label, int)


def test_folder_class_from_subfolder(nested_folder):
    ds = ImageFolderDataset(nested_folder, resolution=8, split="all", class_from_subfolder=True)
    assert ds.classes == ["cats", "dogs"] and ds.num_classes == 2
    assert ds.labels == [0, 0, 1, 1]
    assert ds[3][1] == 1


def test_folder_class_from_subfolder_rejects_top_level_file(nested_folder):
    Image.fromarray(asymmetric_rgb(8, 8)).save(nested_folder / "loose.png")
    with pytest.raises(DataError, match="loose.png"):
        ImageFolderDataset(nested_folder, resolution=8, class_from_subfolder=True)


def test_center_crop_matches_adm_by_hand(tmp_path):
    # 32x24 (W x H) at resolution 24: no resize, central crop starts at x = (32 - 24) // 2 = 4.
    arr = asymmetric_rgb(24, 32)
    Image.fromarray(arr).save(tmp_path / "x.png")
    image, _ = ImageFolderDataset(tmp_path, resolution=24, crop="center", hflip_p=0.0)[0]
    assert torch.equal(image, to_signed(arr[:, 4:28]))


def test_center_crop_downscales_shorter_side(tmp_path):
    # A 96x64 image whose left and right thirds are red and the middle blue: after the shorter side goes
    # to 16 the image is 24x16 and the central 16 columns start at 4, so the border columns are red-ish.
    arr = np.zeros((64, 96, 3), np.uint8)
    arr[:, :32, 0] = 255
    arr[:, 64:, 0] = 255
    arr[:, 32:64, 2] = 255
    Image.fromarray(arr).save(tmp_path / "x.png")
    image, _ = ImageFolderDataset(tmp_path, resolution=16, hflip_p=0.0)[0]
    assert image.shape == (3, 16, 16)
    assert image[0, :, 0].mean() > 0.9 and image[2, :, 8].mean() > 0.9


def test_resize_squashes_whole_image(tmp_path):
    arr = np.zeros((20, 60, 3), np.uint8)
    arr[..., 0] = 255
    Image.fromarray(arr).save(tmp_path / "red.png")
    image, _ = ImageFolderDataset(tmp_path, resolution=8, crop="resize", hflip_p=0.0)[0]
    assert image.shape == (3, 8, 8)
    assert torch.allclose(image[0], torch.ones(8, 8)) and torch.allclose(image[1:], -torch.ones(2, 8, 8))


def test_random_crop_is_a_window_and_varies_with_epoch(tmp_path):
    arr = asymmetric_rgb(16, 40)
    Image.fromarray(arr).save(tmp_path / "x.png")
    ds = ImageFolderDataset(tmp_path, resolution=16, crop="random", hflip_p=0.0)
    windows = [to_signed(arr[:, k : k + 16]) for k in range(40 - 16 + 1)]
    offsets = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        image, _ = ds[0]
        matches = [k for k, w in enumerate(windows) if torch.equal(image, w)]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert len(offsets) > 3


def test_flips_reproducible_per_seed_epoch_index(tmp_path):
    for i in range(6):
        Image.fromarray(asymmetric_rgb(16, 16, 30 * i)).save(tmp_path / f"{i}.png")
    reference = ImageFolderDataset(tmp_path, resolution=16, hflip_p=0.0)
    unflipped = [reference[i][0] for i in range(6)]

    def flips(ds, epoch, order):
        ds.set_epoch(epoch)
        out = {}
        for i in order:
            image = ds[i][0]
            if torch.equal(image, unflipped[i]):
                out[i] = False
            else:
                assert torch.equal(image, unflipped[i].flip(-1))
                out[i] = True
        return out

    a = ImageFolderDataset(tmp_path, resolution=16, hflip_p=0.5, seed=3)
    b = ImageFolderDataset(tmp_path, resolution=16, hflip_p=0.5, seed=3)
    c = ImageFolderDataset(tmp_path, resolution=16, hflip_p=0.5, seed=4)
    per_epoch = [flips(a, e, range(6)) for e in range(8)]
    # Same (seed, epoch, index) -> same flip, whatever the fetch order or the dataset instance.
    assert per_epoch == [flips(b, e, reversed(range(6))) for e in range(8)]
    all_flags = [f for epoch in per_epoch for f in epoch.values()]
    assert 10 < sum(all_flags) < 38  # about half of 48
    assert per_epoch[0] != per_epoch[1] or per_epoch[1] != per_epoch[2]  # epochs differ
    assert per_epoch != [flips(c, e, range(6)) for e in range(8)]  # seeds differ
    assert ImageFolderDataset(tmp_path, resolution=16, split="all").hflip_p == 0.5


def test_split_disjoint_deterministic_and_independent_of_seed(tmp_path):
    for i in range(10):
        Image.fromarray(asymmetric_rgb(8, 8, i)).save(tmp_path / f"img{i}.png")
    train = ImageFolderDataset(tmp_path, resolution=8, split="train", test_fraction=0.3)
    test = ImageFolderDataset(tmp_path, resolution=8, split="test", test_fraction=0.3, seed=9)
    assert len(train) == 7 and len(test) == 3
    assert set(train.files).isdisjoint(test.files)
    assert set(train.files) | set(test.files) == set(tmp_path.glob("*.png"))
    assert test.hflip_p == 0.0
    assert ImageFolderDataset(tmp_path, resolution=8, split="test", test_fraction=0.3).files == test.files
    by_count = ImageFolderDataset(tmp_path, resolution=8, split="test", test_count=2)
    assert len(by_count) == 2 and set(by_count.files) <= set(test.files)  # smallest hashes come first


def test_empty_test_split_is_an_error(tmp_path):
    Image.fromarray(asymmetric_rgb(8, 8)).save(tmp_path / "x.png")
    with pytest.raises(DataError, match="test split"):
        ImageFolderDataset(tmp_path, resolution=8, split="test")


def test_unreadable_image_names_the_file(tmp_path):
    Image.fromarray(asymmetric_rgb(8, 8)).save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"this is not a png")
    ds = ImageFolderDataset(tmp_path, resolution=8, split="all")
    assert ds[1][0].shape == (3, 8, 8)  # good.png sorts after broken.png
    with pytest.raises(DataError, match="broken.png"):
        ds[0]


def test_empty_and_missing_folder_messages(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError) as error:
        ImageFolderDataset(tmp_path / "empty", resolution=8)
    assert str(tmp_path / "empty") in str(error.value) and ".png" in str(error.value) and ".webp" in str(error.value)
    with pytest.raises(DataError, match="not found"):
        ImageFolderDataset(tmp_path / "nowhere", resolution=8)
    with pytest.raises(DataError, match="crop"):
        ImageFolderDataset(tmp_path / "empty", resolution=8, crop="zoom")


# --------------------------------------------------------------------------------------------------------------
# DemoPhotosDataset


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the demo dataset tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_demo_shapes_range_and_split_disjointness(no_network):
    train = DemoPhotosDataset(resolution=16, split="train", num_images=30)
    test = DemoPhotosDataset(resolution=16, split="test", num_images=6)
    assert len(train) == 30 and len(test) == 6 and train.num_classes == 0
    assert train.photo_names == list(TRAIN_PHOTOS) and test.photo_names == list(TEST_PHOTOS)
    assert set(train.photo_names).isdisjoint(test.photo_names)
    assert {p.resolve() for p in train.photo_paths}.isdisjoint({p.resolve() for p in test.photo_paths})
    assert all("site-packages" in str(p) or "dist-packages" in str(p) for p in train.photo_paths + test.photo_paths)
    for ds in (train, test):
        for i in range(len(ds)):
            image, label = ds[i]
            assert image.shape == (3, 16, 16) and image.dtype == torch.float32 and label == 0
            assert image.min() >= -1.0 and image.max() <= 1.0
    assert train.hflip_p == 0.5 and test.hflip_p == 0.0


def test_demo_crop_boxes_valid_and_deterministic(no_network):
    a = DemoPhotosDataset(resolution=16, num_images=60)
    b = DemoPhotosDataset(resolution=16, num_images=60)
    assert np.array_equal(a.crop_boxes, b.crop_boxes)
    assert all(torch.equal(a[i][0], b[i][0]) for i in range(0, 60, 7))
    assert not np.array_equal(a.crop_boxes, DemoPhotosDataset(resolution=16, num_images=60, crop_seed=1).crop_boxes)
    # A longer dataset extends the shorter one (each photo has its own stream).
    longer = DemoPhotosDataset(resolution=16, num_images=120)
    assert np.array_equal(longer.crop_boxes[:60], a.crop_boxes)
    for photo_index, left, top, side in a.crop_boxes:
        width, height = a.photos[photo_index].size
        assert 16 <= side <= min(width, height) // 2
        assert 0 <= left <= width - side and 0 <= top <= height - side
    assert np.array_equal(a.crop_boxes[:, 0], np.arange(60) % len(TRAIN_PHOTOS))


def test_demo_crops_are_not_flat(no_network):
    ds = DemoPhotosDataset(resolution=16, num_images=120)
    greys = [np.asarray(photo.convert("L"), dtype=np.float64) / 255.0 for photo in ds.photos]
    stds = [greys[p][t : t + s, l : l + s].std() for p, l, t, s in ds.crop_boxes]
    assert min(stds) >= 0.0199


def test_demo_pixels_are_area_averages_of_the_box(no_network):
    ds = DemoPhotosDataset(resolution=8, num_images=6, hflip_p=0.0)
    ds.crop_boxes[0] = (1, 40, 16, 16)  # photo 1 (coffee, 600x400): x 40..56, y 16..32, 2x2 blocks
    photo = np.asarray(ds.photos[1], dtype=np.float64)
    blocks = photo[16:32, 40:56].reshape(8, 2, 8, 2, 3).mean(axis=(1, 3))
    expected = torch.tensor(blocks, dtype=torch.float32).permute(2, 0, 1) / 127.5 - 1.0
    assert torch.allclose(ds[0][0], expected, atol=1.01 / 127.5)


def test_demo_flips_depend_on_seed_epoch_index(no_network):
    ds = DemoPhotosDataset(resolution=16, num_images=12, hflip_p=0.5)
    plain = DemoPhotosDataset(resolution=16, num_images=12, hflip_p=0.0)
    pattern = []
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(12):
            image = ds[i][0]
            assert torch.equal(image, plain[i][0]) or torch.equal(image, plain[i][0].flip(-1))
            pattern.append(torch.equal(image, plain[i][0]))
    assert 8 < sum(pattern) < 40
    again = DemoPhotosDataset(resolution=16, num_images=12, hflip_p=0.5)
    again.set_epoch(3)
    assert all(torch.equal(again[i][0], ds[i][0]) for i in range(12))


def test_demo_default_sizes_and_grey_extras(no_network):
    assert len(DemoPhotosDataset(resolution=16, split="test")) == 512
    grey = DemoPhotosDataset(resolution=16, num_images=22, include_grey=True)
    assert "camera" in grey.photo_names and not set(grey.photo_names) & set(TEST_PHOTOS)
    image = grey[grey.photo_names.index("camera")][0]
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


def test_demo_never_imports_downloaders():
    code = (
        "import sys; from specmatch.data.demo import DemoPhotosDataset; "
        "ds = DemoPhotosDataset(resolution=8, num_images=4); ds[0]; "
        "bad = [m for m in ('skimage', 'pooch', 'matplotlib', 'requests') if m in sys.modules]; "
        "assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------------------------------------------
# FashionMNISTDataset


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_fashion(tmp_path: Path):
    rng = np.random.default_rng(0)
    data = {}
    for prefix, n in (("train", 5), ("t10k", 3)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) * 2
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
        data[prefix] = (images, labels)
    return tmp_path, data


def test_fashion_mnist_reads_pads_and_scales(tiny_fashion):
    root, data = tiny_fashion
    ds = FashionMNISTDataset(root=root, split="train")
    images, labels = data["train"]
    assert len(ds) == 5 and ds.num_classes == 10 and ds.resolution == 32
    for i in range(5):
        image, label = ds[i]
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32
        assert label == int(labels[i]) and isinstance(label, int)
        assert torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])
        assert torch.allclose(image[0, 2:30, 2:30], torch.tensor(images[i], dtype=torch.float32) / 127.5 - 1.0)
        border = torch.ones(32, 32, dtype=torch.bool)
        border[2:30, 2:30] = False
        assert torch.all(image[0][border] == -1.0)
    test = FashionMNISTDataset(root=root, split="test")
    assert len(test) == 3 and [test[i][1] for i in range(3)] == [0, 2, 4]


def test_fashion_mnist_resolution_and_flips(tiny_fashion):
    root, _ = tiny_fashion
    small = FashionMNISTDataset(root=root, resolution=16)
    image, _ = small[0]
    assert image.shape == (3, 16, 16) and image.min() >= -1.0 and image.max() <= 1.0
    plain = FashionMNISTDataset(root=root)
    flipping = FashionMNISTDataset(root=root, hflip_p=1.0)
    assert torch.equal(flipping[1][0], plain[1][0].flip(-1))


def test_fashion_mnist_missing_message(tmp_path):
    with pytest.raises(DataError) as error:
        FashionMNISTDataset(root=tmp_path / "fm")
    message = str(error.value)
    assert str(tmp_path / "fm") in message
    assert "train-images-idx3-ubyte.gz" in message and "apt-get install dataset-fashion-mnist" in message
    assert "data.params.root" in message


def test_fashion_mnist_corrupt_files(tiny_fashion):
    root, _ = tiny_fashion
    with gzip.open(root / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01" + struct.pack(">I", 7) + bytes(7))  # 7 labels for 3 images
    with pytest.raises(DataError, match="do not match"):
        FashionMNISTDataset(root=root, split="test")
    (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x12\x34\x56\x78"))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        FashionMNISTDataset(root=root, split="train")
