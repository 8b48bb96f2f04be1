"""Unusual and broken image files: high-bit-depth modes are scaled, odd 8-bit modes converted, bad files named.

Also: with DataLoader workers the error message is the original one, not a worker traceback.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from specmatch.core.errors import DataError
from specmatch.data.image_file import load_rgb, to_rgb
from specmatch.data.image_folder import ImageFolderDataset


def read_one(folder: Path, resolution: int = 4) -> torch.Tensor:
    """The only image of ``folder`` at its own size (centre crop of an R x R image is the identity)."""
    return ImageFolderDataset(folder, resolution=resolution, hflip_p=0.0, split="all")[0][0]


def expected_from_unit(unit: np.ndarray) -> torch.Tensor:
    """Brightness in [0, 1] (H, W) -> the dataset's grey (3, H, W) in [-1, 1] after 8-bit rounding."""
    grey = torch.tensor(np.round(unit * 255.0), dtype=torch.float32) / 127.5 - 1.0
    return grey.expand(3, -1, -1)


RAMP16 = np.array([[0, 65535, 32768, 13107]] * 4, dtype=np.uint16)  # 0, 1, ~0.5, 0.2


# --------------------------------------------------------------------------------------------------------------
# High bit depth (these came out all white or all black before)


def test_16_bit_grey_png_is_scaled_not_saturated(tmp_path):
    Image.fromarray(RAMP16).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    image = read_one(tmp_path)
    assert torch.equal(image, expected_from_unit(RAMP16 / 65535.0))
    assert image.min() == -1.0 and image.max() == 1.0


def test_16_bit_big_endian_tiff_is_scaled(tmp_path):
    # (Pillow's convert("I;16B") clips to 255, so build the image from big-endian bytes)
    Image.frombytes("I;16B", (4, 4), RAMP16.astype(">u2").tobytes()).save(tmp_path / "g16b.tif")
    assert Image.open(tmp_path / "g16b.tif").mode == "I;16B"
    assert torch.equal(read_one(tmp_path), expected_from_unit(RAMP16 / 65535.0))


def test_float_tiff_in_unit_range_is_taken_as_brightness(tmp_path):
    values = np.array([[0.0, 1.0, 0.5, 0.25]] * 4, dtype=np.float32)
    Image.fromarray(values).save(tmp_path / "f.tif")
    assert Image.open(tmp_path / "f.tif").mode == "F"
    image = read_one(tmp_path)
    assert torch.equal(image, expected_from_unit(values.astype(np.float64)))
    assert image.min() == -1.0 and image.max() == 1.0


@pytest.mark.parametrize("bad", [2.0, -0.5, np.nan])
def test_float_tiff_outside_unit_range_is_refused_naming_file_and_mode(tmp_path, bad):
    values = np.array([[0.0, 1.0, 0.5, bad]] * 4, dtype=np.float32)
    Image.fromarray(values).save(tmp_path / "out.tif")
    with pytest.raises(DataError) as error:
        read_one(tmp_path)
    message = str(error.value)
    assert str(tmp_path / "out.tif") in message and "mode 'F'" in message and "[0, 1]" in message


def test_32_bit_integer_tiff_is_scaled_by_its_declared_depth(tmp_path):
    top = 2**31 - 1
    values = np.array([[0, top, 2**30, 0]] * 4, dtype=np.int32)
    Image.fromarray(values).save(tmp_path / "i.tif")
    assert Image.open(tmp_path / "i.tif").mode == "I"
    assert torch.equal(read_one(tmp_path), expected_from_unit(values / top))
    Image.fromarray(-values).save(tmp_path / "i.tif")
    with pytest.raises(DataError, match=r"i\.tif.*mode 'I'"):
        read_one(tmp_path)


def test_integer_image_without_declared_depth_is_taken_as_16_bit():
    values = np.array([[0, 65535, 13107, 0]], dtype=np.int32)
    rgb = np.asarray(to_rgb(Image.fromarray(values)))
    assert rgb.shape == (1, 4, 3) and rgb[0, :, 0].tolist() == [0, 255, 51, 0]
    with pytest.raises(ValueError, match="0..65535"):
        to_rgb(Image.fromarray(values * 2))


def test_unknown_mode_is_refused_naming_the_mode():
    with pytest.raises(ValueError, match="mode 'La' is not supported"):
        to_rgb(Image.new("La", (2, 2)))


# --------------------------------------------------------------------------------------------------------------
# 8-bit modes that are converted (section 4 of the reliability probe)


def test_odd_8_bit_modes_convert_to_the_expected_colours(tmp_path):
    cases = {
        "cmyk.jpg": (Image.new("CMYK", (4, 4), (0, 255, 255, 0)), (255, 0, 0)),  # red
        "rgba.png": (Image.new("RGBA", (4, 4), (0, 0, 255, 0)), (0, 0, 255)),  # alpha dropped, not blended
        "grey.png": (Image.new("L", (4, 4), 200), (200, 200, 200)),
        "grey_alpha.png": (Image.new("LA", (4, 4), (60, 10)), (60, 60, 60)),
    }
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    cases["palette.png"] = (palette, (10, 200, 30))
    for name, (image, rgb) in cases.items():
        folder = tmp_path / name.split(".")[0]
        folder.mkdir()
        image.save(folder / name, quality=100) if name.endswith(".jpg") else image.save(folder / name)
        expected = torch.tensor(rgb, dtype=torch.float32)[:, None, None].expand(3, 4, 4) / 127.5 - 1.0
        assert torch.allclose(read_one(folder), expected, atol=2 / 127.5), name


def test_one_pixel_image_is_upscaled_flat(tmp_path):
    Image.new("RGB", (1, 1), (255, 0, 0)).save(tmp_path / "dot.png")
    image = read_one(tmp_path, resolution=16)
    assert image.shape == (3, 16, 16)
    assert torch.equal(image[0], torch.ones(16, 16)) and torch.equal(image[1:], -torch.ones(2, 16, 16))


# --------------------------------------------------------------------------------------------------------------
# Unreadable files: a DataError naming the file


def png_bytes(size: int = 32) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes(size: int = 32) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (size, size, 3), np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize("name, content, reason", [
    ("zero.png", b"", "cannot identify image file"),
    ("text.jpg", b"just some text", "cannot identify image file"),
    ("cut.png", png_bytes()[:300], "truncated"),
    ("cut.jpg", jpeg_bytes()[:400], "truncated"),
])
def test_unreadable_file_raises_data_error_naming_it(tmp_path, name, content, reason):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError) as error:
        load_rgb(tmp_path / name)
    message = str(error.value)
    assert message.startswith(f"cannot read image {tmp_path / name}: ") and reason in message.lower()


def test_decompression_bomb_is_refused_naming_the_file(tmp_path, monkeypatch):
    # Pillow refuses images over twice MAX_IMAGE_PIXELS; a small limit stands in for a 20000 x 20000 file.
    (tmp_path / "huge.png").write_bytes(png_bytes(32))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(DataError, match=r"huge\.png: Image size \(1024 pixels\) exceeds limit"):
        read_one(tmp_path)


# --------------------------------------------------------------------------------------------------------------
# DataLoader workers


def test_worker_error_message_is_the_original_one(tmp_path):
    for i in range(3):
        Image.new("RGB", (8, 8), (i, i, i)).save(tmp_path / f"good{i}.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    dataset = ImageFolderDataset(tmp_path, resolution=8, split="all")
    loader = DataLoader(dataset, batch_size=1, num_workers=2)
    with pytest.raises(DataError) as error:
        list(loader)
    message = str(error.value)
    assert message == f"cannot read image {tmp_path / 'broken.png'}: cannot identify image file " \
                      f"{str(tmp_path / 'broken.png')!r}"
    assert "Traceback" in error.value.worker_traceback and "worker process" in error.value.worker_traceback


def test_worker_message_unwrapping_keeps_multi_line_messages_and_leaves_others_alone():
    wrapped = ("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
               '  File "x.py", line 1, in f\n    raise DataError(msg)\n'
               "specmatch.core.errors.DataError: 2 unreadable items:\n  a.png: bad\n  b.png: bad\n")
    assert str(DataError(wrapped)) == "2 unreadable items:\n  a.png: bad\n  b.png: bad"
    assert str(DataError("cannot read image a.png: Caught DataError in x")) == \
        "cannot read image a.png: Caught DataError in x"
    assert DataError("plain").worker_traceback is None
