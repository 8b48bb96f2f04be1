"""Reading one image file as 8-bit RGB, and checking a file cheaply without decoding it.

Pillow's ``convert("RGB")`` clips high-bit-depth pixels to 0..255 instead of scaling them, so a 16-bit grey
PNG would come out all white and a float TIFF all black. Modes are therefore handled explicitly:

* 8-bit modes (``1 L LA P PA RGB RGBA RGBX RGBa CMYK YCbCr LAB HSV``): converted with Pillow (grey is
  replicated to three channels, alpha is dropped).
* 16-bit grey (``I;16 I;16L I;16B I;16N``): divided by 65535.
* 32-bit integer grey (``I``): divided by the largest value of the file's declared bit depth: 2**bits - 1 for
  TIFF ``BitsPerSample`` = bits (2**31 - 1 for 32-bit or signed samples, the most Pillow's int32 holds), and
  65535 when the file declares none (the 16-bit PNG and PGM files older Pillow versions open as ``I``).
  Negative values or values above that maximum are refused: their scale cannot be known.
* 32-bit float grey (``F``): taken as brightness in [0, 1]. Non-finite values, or values outside
  [-0.0001, 1.0001], are refused (the small slack absorbs rounding and is clipped).
* Any other mode is refused with an error naming the file and the mode.

High-bit-depth images are then rounded to 8 bits per channel, as Pillow does for 16-bit RGB files, since
every dataset produces 8-bit-quantised images.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from specmatch.core.errors import DataError

EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV"})
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
HIGH_BIT_MODES = SIXTEEN_BIT_MODES | {"I", "F"}
SUPPORTED_MODES = EIGHT_BIT_MODES | HIGH_BIT_MODES
FLOAT_SLACK = 1e-4
TIFF_BITS_PER_SAMPLE, TIFF_SAMPLE_FORMAT, TIFF_SIGNED = 258, 339, 2
JPEG_END_MARKER = b"\xff\xd9"
JPEG_TAIL_BYTES = 4096  # where a whole JPEG's end-of-image marker must sit (some writers pad a little)
# What Pillow raises for unreadable, truncated or oversized files (ValueError also covers our own checks).
READ_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def mode_problem(mode: str) -> str | None:
    """Why an image mode cannot be read (``None`` if it can)."""
    if mode in SUPPORTED_MODES:
        return None
    return (f"image mode {mode!r} is not supported (expected 8-bit grey, palette, RGB(A), CMYK, YCbCr, "
            f"16-bit grey, 32-bit integer grey or float grey in [0, 1])")


def _integer_maximum(image: Image.Image) -> int:
    """The largest value of a mode ``I`` image's declared bit depth (65535 when the file declares none)."""
    tags = getattr(image, "tag_v2", None)
    if tags is None or TIFF_BITS_PER_SAMPLE not in tags:
        return 65535
    bits = tags[TIFF_BITS_PER_SAMPLE]
    bits = int(bits[0] if isinstance(bits, tuple) else bits)
    sample_format = tags.get(TIFF_SAMPLE_FORMAT, 1)
    signed = (sample_format[0] if isinstance(sample_format, tuple) else sample_format) == TIFF_SIGNED
    return 2 ** (bits - 1 if signed or bits >= 32 else bits) - 1  # Pillow holds I as int32


def _high_bit_to_unit(image: Image.Image) -> np.ndarray:
    """A decoded ``I;16*``, ``I`` or ``F`` image as float64 brightness in [0, 1]; ``ValueError`` if out of range."""
    values = np.asarray(image).astype(np.float64)
    if image.mode in SIXTEEN_BIT_MODES:
        return values / 65535.0
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if image.mode == "I":
        maximum = _integer_maximum(image)
        if low < 0 or high > maximum:
            raise ValueError(f"32-bit integer image (mode 'I') holds values {low:g}..{high:g}, outside "
                             f"0..{maximum} of its declared bit depth; save it as 8- or 16-bit")
        return values / maximum
    if not np.isfinite(values).all():
        raise ValueError("float image (mode 'F') holds NaN or infinite values; expected brightness in [0, 1]")
    if low < -FLOAT_SLACK or high > 1 + FLOAT_SLACK:
        raise ValueError(f"float image (mode 'F') holds values {low:g}..{high:g}; expected brightness in [0, 1]")
    return np.clip(values, 0.0, 1.0)


def to_rgb(image: Image.Image) -> Image.Image:
    """A decoded image as 8-bit RGB (see the module docstring); ``ValueError`` for a mode or range it refuses."""
    problem = mode_problem(image.mode)
    if problem:
        raise ValueError(problem)
    if image.mode in HIGH_BIT_MODES:
        grey = np.round(_high_bit_to_unit(image) * 255.0).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    return image.convert("RGB")


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Open an image file as 8-bit RGB; a ``DataError`` naming the file (and why) if it cannot be read."""
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except READ_ERRORS as error:
        raise DataError(f"cannot read image {path}: {error}") from error


def _check_jpeg_end(path: Path, image: Image.Image) -> None:
    """A JPEG ends with an end-of-image marker; without one near the end, decode at 1/8 scale to be sure
    (files with data appended after the image, such as phones' motion photos, pass that way)."""
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - JPEG_TAIL_BYTES))
        if JPEG_END_MARKER in f.read():
            return
    image.draft("L", (max(1, image.size[0] // 8), max(1, image.size[1] // 8)))
    image.load()  # raises for a truncated file


def image_file_problem(path: str | os.PathLike, full: bool = False) -> str | None:
    """Why ``path`` cannot be used as an image (``None`` if it can).

    ``full=False`` is cheap: the header (format, mode, size, Pillow's decompression bomb limit), the chunk
    checksums of a PNG and the end marker of a JPEG, without decoding pixels. ``full=True`` decodes the image
    as training will, which also finds corrupt pixel data and out-of-range high-bit-depth values.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            problem = mode_problem(image.mode)
            if problem:
                return problem
            if full:
                image.load()
                to_rgb(image)
            elif image.format == "JPEG":
                _check_jpeg_end(path, image)
            else:
                image.verify()  # PNG: every chunk's CRC, without decompressing
    except READ_ERRORS as error:
        return str(error) or type(error).__name__
    return None
