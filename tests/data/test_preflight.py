"""Preflight: every bad file of a dataset is listed up front, by the function and by `specmatch data check`."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import Dataset

from specmatch.core.errors import DataError, Problem
from specmatch.data.check import preflight_dataset, preflight_datasets
from specmatch.data.image_folder import ImageFolderDataset
from specmatch.testing import invoke_cli, write_recipe


def encoded(fmt: str, size: int = 32, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), np.uint8)).save(buffer, fmt)
    return buffer.getvalue()


BAD_FOR_EVERY_CHECK = {
    "zero.png": b"",
    "text.jpg": b"just some text",
    "cut.png": encoded("PNG")[:300],
    "cut.jpg": encoded("JPEG")[:400],
}


@pytest.fixture
def bad_folder(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    for i in range(6):
        Image.new("RGB", (16, 16), (40 * i, 0, 0)).save(root / f"good{i}.png")
    (root / "sub" / "good.jpg").write_bytes(encoded("JPEG") + b"\x00" * 100_000)  # data after the image is fine
    for name, content in BAD_FOR_EVERY_CHECK.items():
        (root / "sub" / name).write_bytes(content)
    # Readable header, but values a float image must not hold: only a full decode finds it.
    Image.fromarray(np.full((8, 8), 3.0, np.float32)).save(root / "sub" / "bright.tif")
    return root


def bad_names(problems) -> set[str]:
    return {Path(p.path).name for p in problems}


def test_header_check_lists_every_bad_file_not_only_the_first(bad_folder):
    report = preflight_dataset(ImageFolderDataset(bad_folder, resolution=8, split="all"))
    assert report.offered and not report.ok and report.items == 12
    assert bad_names(report.problems) == set(BAD_FOR_EVERY_CHECK)
    reasons = {Path(p.path).name: p.message.lower() for p in report.problems}
    assert "cannot identify image file" in reasons["zero.png"] and "truncated" in reasons["cut.png"]
    assert "truncated" in reasons["cut.jpg"]
    text = report.render()
    assert all(str(bad_folder / "sub" / name) in text for name in BAD_FOR_EVERY_CHECK)


def test_full_check_also_decodes_pixels(bad_folder):
    report = preflight_dataset(ImageFolderDataset(bad_folder, resolution=8, split="all"), full=True)
    assert bad_names(report.problems) == set(BAD_FOR_EVERY_CHECK) | {"bright.tif"}
    assert "mode 'F'" in next(p.message for p in report.problems if p.path.endswith("bright.tif"))


def test_a_clean_folder_passes_both_checks(tmp_path):
    for i in range(4):
        Image.new("RGB", (8, 8), (i, i, i)).save(tmp_path / f"{i}.png")
    (tmp_path / "x.jpg").write_bytes(encoded("JPEG"))
    dataset = ImageFolderDataset(tmp_path, resolution=8, split="all")
    for full in (False, True):
        report = preflight_datasets({"train": dataset}, full=full)
        assert report.ok and report.problems == []
        report.raise_if_bad()  # nothing to raise


def test_decompression_bomb_is_found_by_the_header_check(tmp_path, monkeypatch):
    (tmp_path / "huge.png").write_bytes(encoded("PNG", size=32))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # stands in for a 20000 x 20000 file
    report = preflight_dataset(ImageFolderDataset(tmp_path, resolution=8, split="all"))
    assert [p.message for p in report.problems] == ["Image size (1024 pixels) exceeds limit of 200 pixels, "
                                                    "could be decompression bomb DOS attack."]


class NoPreflight(Dataset):
    def __len__(self):
        return 3

    def __getitem__(self, index):
        return index


class ItemPreflight(Dataset):
    """A plugin dataset that is not file-backed: it reports item indices."""

    def __len__(self):
        return 5

    def preflight(self, full=False):
        return [Problem("item 3", "label out of range")] + ([Problem("item 4", "decoded badly")] if full else [])


def test_datasets_without_preflight_are_reported_not_failed():
    report = preflight_datasets({"train": NoPreflight(), "test": ItemPreflight()})
    assert report.datasets[0].offered is False and report.datasets[0].ok
    assert "train: NoPreflight: no preflight offered" in report.render()
    assert report.problems == [Problem("item 3", "label out of range")]
    assert preflight_datasets({"x": ItemPreflight()}, full=True).problems[-1].path == "item 4"


def test_raise_if_bad_names_the_files(bad_folder):
    report = preflight_datasets({"train": ImageFolderDataset(bad_folder, resolution=8, split="all")})
    with pytest.raises(DataError) as error:
        report.raise_if_bad()
    message = str(error.value)
    assert message.startswith("4 unreadable items in the dataset:")
    assert all(str(bad_folder / "sub" / name) in message for name in BAD_FOR_EVERY_CHECK)


# --------------------------------------------------------------------------------------------------------------
# specmatch data check


@pytest.fixture
def data_command():
    """The `data` group wired into the CLI as specmatch.cli does it (restored afterwards)."""
    from specmatch.cli import main
    from specmatch.data.check_command import data

    previous = main.commands.get("data")
    main.add_command(data)
    yield
    if previous is None:
        main.commands.pop("data", None)
    else:
        main.add_command(previous)


def image_folder_recipe(folder: Path, root: Path) -> Path:
    return write_recipe(folder, f'[data]\nname = "image-folder"\nparams = {{ root = "{root}", resolution = 8, '
                                f'test_fraction = 0.2 }}\n\n[autoencoder]\nname = "sdvae"\n'
                                f'params = {{ preset = "micro-f2d4" }}\n')


def test_data_check_lists_each_bad_file_and_exits_1(data_command, bad_folder, tmp_path):
    result = invoke_cli("data", "check", str(image_folder_recipe(tmp_path, bad_folder)))
    assert result.exit_code == 1, result.output
    assert all(str(bad_folder / "sub" / name) in result.output for name in BAD_FOR_EVERY_CHECK)
    assert "bright.tif" not in result.output and "train:" in result.output and "test:" in result.output
    full = invoke_cli("data", "check", "--full", str(image_folder_recipe(tmp_path, bad_folder)))
    assert full.exit_code == 1 and "bright.tif" in full.output and "full decode" in full.output


def test_data_check_passes_a_clean_folder(data_command, tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    for i in range(5):
        Image.new("RGB", (8, 8), (i, i, i)).save(root / f"{i}.png")
    result = invoke_cli("data", "check", str(image_folder_recipe(tmp_path, root)))
    assert result.exit_code == 0, result.output
    assert "every checked item is readable" in result.output


def test_data_check_reports_a_missing_folder_without_traceback(data_command, tmp_path):
    result = invoke_cli("data", "check", str(image_folder_recipe(tmp_path, tmp_path / "nowhere")))
    # the recipe check finds the missing folder first: an invalid recipe (exit 2) naming the key and the path
    assert result.exit_code == 2, result.output
    assert "data.params.root" in result.output and "nowhere" in result.output and "Traceback" not in result.output
