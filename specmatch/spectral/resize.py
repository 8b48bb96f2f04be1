"""The image on the latent grid: the authors' blur and PyTorch's bicubic resize as matrices.

Both are separable linear maps, so the image on the grid is ``M_h @ x @ M_w.T`` with one cached (h, H) and one
(w, W) matrix ``M = R G`` (bicubic after blur). ESM only needs the DCT of that image, so the DCT is folded in
as well; for integer decimation a short window filter replaces the matrix (see :func:`image_dct_on_grid`).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F

from specmatch.spectral.cache import cached_operator
from specmatch.spectral.dct import dct_matrix, dct_matrix_f64, separable_map
from specmatch.spectral.options import (
    Blur,
    BlurSpec,
    SpectralArgumentError,
    blur_spec,
    check_tensor,
    compute_dtype,
)


def gaussian_blur_matrix_f64(n: int, kernel_size: int, sigma: float) -> torch.Tensor:
    """Zero-padded 1-D Gaussian blur along one axis as an (n, n) float64 matrix.

    Taps ``t = -r..r`` (``r = kernel_size // 2``) with weights ``exp(-t^2 / (2 sigma^2))`` normalised to sum
    1. The 2-D kernel of the authors' depthwise ``conv2d`` (``padding = r``) is the outer product of this 1-D
    kernel, so blurring rows then columns reproduces it; samples outside the image count as 0.
    """
    r = kernel_size // 2
    taps = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-(taps**2) / (2.0 * sigma**2))
    g = g / g.sum()
    # out[i] = sum_t g[t] * x[i + t]: matrix entry (i, j) = g[j - i + r] where |j - i| <= r.
    offset = torch.arange(n).view(1, n) - torch.arange(n).view(n, 1) + r
    inside = (offset >= 0) & (offset < kernel_size)
    return torch.where(inside, g[offset.clamp(0, kernel_size - 1)], torch.zeros((), dtype=torch.float64))


def bicubic_matrix_f64(n_in: int, n_out: int) -> torch.Tensor:
    """PyTorch's bicubic resize along one axis as an (n_out, n_in) float64 matrix.

    Built by resizing the identity with ``F.interpolate(mode="bicubic", align_corners=False,
    antialias=False)``, so it has exactly PyTorch's semantics (Keys cubic a = -0.75, taps clamped at the
    border) by construction.
    """
    # Channel c holds the unit column e_c (height n_in, width 1); resizing it gives column c of the matrix.
    eye = torch.eye(n_in, dtype=torch.float64).view(1, n_in, n_in, 1)
    cols = F.interpolate(eye, size=(n_out, 1), mode="bicubic", align_corners=False, antialias=False)
    return cols[0, :, :, 0].T.contiguous()


def resize_matrix_f64(n_in: int, n_out: int, blur: BlurSpec) -> torch.Tensor:
    """Blur (optional) then bicubic resize along one axis: an (n_out, n_in) float64 matrix."""
    m = bicubic_matrix_f64(n_in, n_out)
    if blur is not None:
        m = m @ gaussian_blur_matrix_f64(n_in, *blur)
    return m


@cached_operator
def resize_matrix(n_in: int, n_out: int, blur: BlurSpec, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """:func:`resize_matrix_f64` on ``device`` in ``dtype``, cached."""
    return resize_matrix_f64(n_in, n_out, blur).to(device=device, dtype=dtype)


class WindowFilter(NamedTuple):
    """A resize along one axis that applies one short filter to equal, disjoint windows.

    Output i is ``sum_t weights[t] * input[period * i + first + t]``. Integer decimation has this form when
    the filter fits in its period: f8 without blur reads 4 taps (8i+2 ... 8i+5), f16 with the 7-tap blur 10.
    """

    period: int
    first: int
    weights: torch.Tensor  # (taps,)


def _window_filter(resize: torch.Tensor) -> Optional[WindowFilter]:
    """The :class:`WindowFilter` form of a float64 resize matrix (n_out, n_in), or None if it has none."""
    n_out, n_in = resize.shape
    if n_in % n_out:
        return None
    period = n_in // n_out
    taps = resize[0].nonzero().flatten()
    first, length = int(taps[0]), int(taps[-1]) - int(taps[0]) + 1
    if first + length > period:
        return None
    weights = resize[0, first : first + length]
    expected = torch.zeros(n_out, n_out, period, dtype=resize.dtype)
    expected[torch.arange(n_out), torch.arange(n_out), first : first + length] = weights
    if not torch.allclose(resize, expected.view(n_out, n_in), rtol=0.0, atol=1e-12):
        return None  # e.g. windows clipped or clamped at the image border
    return WindowFilter(period, first, weights)


class ImageDCTOperator(NamedTuple):
    """Blur, bicubic resize and DCT of an (H, W) image onto an (h, w) grid, in one of two forms.

    * ``windows``: the resize of each axis as a :class:`WindowFilter`, when both axes have that form. It
      reads each pixel once with a handful of taps where a folded matrix spends H (or W) multiply-adds per
      output; the speed target at f8 and f16 depends on it (benchmarks/spectral.py).
    * ``folded``: otherwise ``(A_h, A_w)`` with ``A = D R G`` per axis, so the coefficients are
      ``A_h @ x @ A_w.T``.
    """

    windows: Optional[Tuple[WindowFilter, WindowFilter]]
    folded: Optional[Tuple[torch.Tensor, torch.Tensor]]


@cached_operator
def image_dct_operator(
    big_h: int, big_w: int, h: int, w: int, blur: BlurSpec, device: torch.device, dtype: torch.dtype
) -> ImageDCTOperator:
    """The cached :class:`ImageDCTOperator` for an (H, W) image and an (h, w) latent grid."""
    r_h, r_w = resize_matrix_f64(big_h, h, blur), resize_matrix_f64(big_w, w, blur)
    filter_h, filter_w = _window_filter(r_h), _window_filter(r_w)
    if filter_h is not None and filter_w is not None:
        on_device = tuple(f._replace(weights=f.weights.to(device=device, dtype=dtype)) for f in (filter_h, filter_w))
        return ImageDCTOperator(windows=on_device, folded=None)
    folded = tuple((dct_matrix_f64(n) @ r).to(device=device, dtype=dtype) for n, r in ((h, r_h), (w, r_w)))
    return ImageDCTOperator(windows=None, folded=folded)


def image_dct_on_grid(x: torch.Tensor, h: int, w: int, blur: BlurSpec) -> torch.Tensor:
    """DCT coefficients (B, C, h, w) of the blurred, bicubic-resized image (B, C, H, W)."""
    b, c, big_h, big_w = x.shape
    op = image_dct_operator(big_h, big_w, h, w, blur, x.device, x.dtype)
    if op.windows is None:
        return separable_map(x, *op.folded)
    (period_h, first_h, taps_h), (period_w, first_w, taps_w) = op.windows
    # Along H first: each output row filters a strided window of whole input rows, so rows outside the windows
    # are never read (3x faster than starting along W, which touches every cache line).
    row_windows = x.reshape(b * c * h, period_h, big_w)[:, first_h : first_h + len(taps_h)]
    along_h = torch.matmul(taps_h, row_windows)  # (B*C*h, W)
    # Along W: the same on the h-times smaller result, one window per output column.
    along_w = along_h.view(b * c * h * w, period_w)[:, first_w : first_w + len(taps_w)] @ taps_w
    return separable_map(along_w.view(b, c, h, w), dct_matrix(h, x.device, x.dtype), dct_matrix(w, x.device, x.dtype))


def _check_hw(latent_hw: Tuple[int, int]) -> Tuple[int, int]:
    try:
        h, w = (int(v) for v in latent_hw)
    except (TypeError, ValueError):
        h = w = 0
    if h < 1 or w < 1:
        raise SpectralArgumentError(f"latent_hw must be a pair (h, w) of positive ints, got {latent_hw!r}")
    return h, w


def image_to_latent_grid(image: torch.Tensor, latent_hw: Tuple[int, int], blur: Blur = "reference") -> torch.Tensor:
    """Bring an image batch to the latent grid: blur (optional) then PyTorch bicubic (method.md s2.2 step 1).

    Args:
        image: (B, C, H, W) image, values in [-1, 1].
        latent_hw: target (h, w).
        blur: see :class:`~specmatch.spectral.SpectrumOptions`.

    Returns:
        (B, C, h, w), equal to ``F.interpolate(gauss_blur(image), (h, w), mode="bicubic",
        align_corners=False)``. float32 for half inputs, else ``image.dtype``. Differentiable.
    """
    check_tensor("image", image)
    h, w = _check_hw(latent_hw)
    spec = blur_spec(blur, h)
    image = image.to(compute_dtype(image))
    _, _, big_h, big_w = image.shape
    m_h = resize_matrix(big_h, h, spec, image.device, image.dtype)
    m_w = resize_matrix(big_w, w, spec, image.device, image.dtype)
    return separable_map(image, m_h, m_w)
