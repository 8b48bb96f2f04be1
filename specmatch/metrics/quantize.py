"""The image preprocessing a protocol pins before features and metrics: 8-bit quantisation (what a saved PNG
holds) and an optional JPEG round trip (what the Spectrum Matching authors' rFID reads)."""

from __future__ import annotations

import io

import numpy as np
import torch
from torch import Tensor

from .reconstruction import to_uint8_levels


def quantize_uint8(images: Tensor) -> Tensor:
    """[-1, 1] images rounded to the 256 levels of an 8-bit file, back in [-1, 1]."""
    return (to_uint8_levels(images) / 127.5 - 1.0).to(images.dtype)


def jpeg_round_trip(images: Tensor, quality: int) -> Tensor:
    """Every image saved as JPEG (PIL, this quality, 4:2:0 subsampling, PIL's default) and read back."""
    from PIL import Image

    levels = to_uint8_levels(images).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for array in levels:
        buffer = io.BytesIO()
        Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(buffer, format="JPEG",
                                                                                  quality=int(quality))
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
        out.append(torch.from_numpy(decoded.reshape(array.shape).copy()))
    back = torch.stack(out).permute(0, 3, 1, 2).to(device=images.device, dtype=torch.float32)
    return (back / 127.5 - 1.0).to(images.dtype)


def protocol_images(images: Tensor, *, quantize: bool, jpeg_quality: int) -> Tensor:
    """Apply the protocol's preprocessing (JPEG implies 8-bit levels)."""
    if jpeg_quality:
        return jpeg_round_trip(images, jpeg_quality)
    return quantize_uint8(images) if quantize else images
