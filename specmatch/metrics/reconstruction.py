"""Per-image reconstruction metrics: PSNR and SSIM between images in [-1, 1].

Conventions (method.md s4.3 evaluates "PSNR on the uint8 JPEGs" and "SSIM (torchmetrics, range [-1, 1])"):

* ``psnr(x, y)`` works on the float images with ``data_range = 2`` (the width of [-1, 1]):
  ``10 log10(data_range^2 / mse)`` per image. Identical images give ``inf``.
* ``psnr_uint8(x, y)`` first rounds both images to 8-bit levels (as saving a PNG would) and computes PSNR
  on [0, 255] with ``data_range = 255``: the paper's convention minus the JPEG compression. The two differ
  by the quantisation error, which matters only above about 40 dB.
* ``ssim(x, y)`` is torchmetrics' SSIM (Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03) on the float
  images with ``data_range = 2``, averaged over channels and pixels of each image. It needs images of at
  least 11 x 11 pixels.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure


def _check_pair(x: Tensor, y: Tensor) -> None:
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(
            f"expected two image batches of equal shape (B, C, H, W); got {tuple(x.shape)} and {tuple(y.shape)}"
        )


def psnr(x: Tensor, y: Tensor, data_range: float = 2.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per image: (B, C, H, W) x 2 -> (B,) float32 (``inf`` if equal)."""
    _check_pair(x, y)
    mse = (x.to(torch.float64) - y.to(torch.float64)).square().flatten(1).mean(1)
    return (10.0 * torch.log10(data_range**2 / mse)).to(torch.float32)


def to_uint8_levels(images: Tensor) -> Tensor:
    """[-1, 1] images -> the float values 0..255 of the 8-bit image a PNG would store (clamped, rounded)."""
    return ((images.to(torch.float32).clamp(-1.0, 1.0) + 1.0) * 127.5).round()


def psnr_uint8(x: Tensor, y: Tensor) -> Tensor:
    """PSNR in dB per image on 8-bit quantised copies of x and y ([-1, 1] in, [0, 255] and range 255 inside)."""
    return psnr(to_uint8_levels(x), to_uint8_levels(y), data_range=255.0)


def ssim(x: Tensor, y: Tensor, data_range: float = 2.0) -> Tensor:
    """Structural similarity per image: (B, C, H, W) x 2 -> (B,) float32 (1 for identical images)."""
    _check_pair(x, y)
    values = structural_similarity_index_measure(
        x.to(torch.float32), y.to(torch.float32), data_range=data_range, reduction="none"
    )
    return values.reshape(x.shape[0])
