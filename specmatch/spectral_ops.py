"""Cached linear operators behind :mod:`specmatch.spectral`.

Every step of the spectral losses that does not depend on the data is a fixed matrix: the orthonormal DCT-II,
the zero-padded Gaussian blur, PyTorch's bicubic resize, the radial bin averaging and the block-DCT low-pass.
This module builds those matrices once (in float64 on the CPU, so the cached copy is as exact as the dtype it
is cast to) and caches them per size, device and dtype. The public functions then run as a handful of
matrix products, which is much faster on CPU and GPU than FFTs, convolutions and scatters.

Nothing here is user facing; argument checks live in :mod:`specmatch.spectral`.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F

#: A blur setting after validation: ``None`` (no blur) or ``(kernel_size, sigma)`` (odd size, sigma > 0).
BlurSpec = Optional[Tuple[int, float]]

# Cached tensors are plain constants. They are built outside inference mode so that a first call made under
# ``torch.inference_mode()`` does not poison the cache for later training calls.


def _build(fn):
    """Run a matrix builder with autograd off and inference mode off (see the note above)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.inference_mode(False), torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------------------------------------
# 1-D building blocks (float64, CPU)
# --------------------------------------------------------------------------------------------------------


def dct_matrix_f64(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``D`` (n, n), float64: ``X = D @ x`` transforms the last axis of a column.

    ``D[u, i] = a_u cos(pi (2 i + 1) u / (2 n))`` with ``a_0 = sqrt(1/n)`` and ``a_u = sqrt(2/n)`` otherwise;
    it equals ``scipy.fft.dct(..., type=2, norm="ortho")`` and ``torch_dct.dct(..., norm="ortho")``.
    ``D`` is orthogonal, so the inverse DCT (type III) is ``D.T``.
    """
    u = torch.arange(n, dtype=torch.float64).view(n, 1)
    i = torch.arange(n, dtype=torch.float64).view(1, n)
    d = torch.cos(math.pi * (2.0 * i + 1.0) * u / (2.0 * n)) * math.sqrt(2.0 / n)
    d[0] = d[0] / math.sqrt(2.0)
    return d


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
    border) by construction. The 2-D bicubic resize is separable: ``R_h @ x @ R_w.T``.
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


def radial_bin_index(h: int, w: int, n_bins: int) -> torch.Tensor:
    """Corner-normalised radial bin of every DCT coefficient, an (h, w) int64 tensor with values in [0, n_bins).

    ``r = sqrt(u^2 + v^2)``, ``r_max = sqrt((h-1)^2 + (w-1)^2)`` (the corner, at least 1) and
    ``bin = min(floor(n_bins * r / r_max), n_bins - 1)``.

    Evaluated exactly in integers: ``floor(n r / r_max) = isqrt(floor(n^2 (u^2 + v^2) / r_max^2))``. The
    authors' float32 expression agrees everywhere except on coefficients lying exactly on a bin edge, which
    happens only for a few unusual (grid, n_bins) pairs (e.g. (9, 9) on 16x16 with 5 bins) and none used by
    the method (16 bins on 8/16/32 grids, 8 bins on 8x8); there float32 rounding, which differs between
    PyTorch's CPU and GPU kernels, decides the side. Exact arithmetic is device independent.
    """
    u = torch.arange(h, dtype=torch.int64).view(h, 1)
    v = torch.arange(w, dtype=torch.int64).view(1, w)
    corner_sq = max((h - 1) ** 2 + (w - 1) ** 2, 1)
    ratio_sq = (n_bins**2 * (u**2 + v**2)) // corner_sq  # floor((n r / r_max)^2)
    # Integer square root via float64 sqrt, then corrected by one step either way (exact for any size).
    root = torch.sqrt(ratio_sq.to(torch.float64)).floor().to(torch.int64)
    root = root - (root * root > ratio_sq).to(torch.int64)
    root = root + ((root + 1) * (root + 1) <= ratio_sq).to(torch.int64)
    return root.clamp(max=n_bins - 1)


# --------------------------------------------------------------------------------------------------------
# Cached operators on the caller's device and dtype
# --------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
@_build
def dct_matrix(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Cached orthonormal DCT-II matrix (n, n) on ``device``/``dtype`` (see :func:`dct_matrix_f64`)."""
    return dct_matrix_f64(n).to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=64)
@_build
def resize_matrix(
    n_in: int, n_out: int, blur: BlurSpec, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Cached blur + bicubic map along one axis, (n_out, n_in) (see :func:`resize_matrix_f64`)."""
    return resize_matrix_f64(n_in, n_out, blur).to(device=device, dtype=dtype)


class WindowFilter(NamedTuple):
    """A resize matrix (n_out, n_in) that applies one short filter to equal, disjoint windows.

    Output i is ``sum_t weights[t] * input[period * i + first + t]``. Integer decimation gives this shape
    away from the borders: f8 without blur reads 4 taps (8i+2 ... 8i+5), f16 with the 7-tap blur 10 taps.
    """

    period: int
    first: int
    weights: torch.Tensor  # (L,)


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


class ImageSpectrumOperator(NamedTuple):
    """The image side of ESM: blur, bicubic resize and DCT of an (H, W) image onto an (h, w) grid.

    * ``a_h`` (h, H), ``a_w`` (w, W): the whole map folded per axis, ``A = D @ R @ G`` (DCT after bicubic
      after blur), so the coefficients are ``a_h @ x @ a_w.T``. Always valid.
    * ``filter_h``, ``filter_w``: the resize part as :class:`WindowFilter` (weights on the target device),
      when both axes have that form; ``d_h``, ``d_w`` are then the DCT matrices to apply afterwards. A
      window filter reads each pixel once with a handful of taps, where the folded matrix spends H (or W)
      multiply-adds per output.
    """

    a_h: torch.Tensor
    a_w: torch.Tensor
    filter_h: Optional[WindowFilter]
    filter_w: Optional[WindowFilter]
    d_h: torch.Tensor
    d_w: torch.Tensor


@functools.lru_cache(maxsize=64)
@_build
def image_spectrum_operator(
    big_h: int, big_w: int, h: int, w: int, blur: BlurSpec, device: torch.device, dtype: torch.dtype
) -> ImageSpectrumOperator:
    """Cached :class:`ImageSpectrumOperator` for an (H, W) image mapped to an (h, w) latent grid."""
    r_h, r_w = resize_matrix_f64(big_h, h, blur), resize_matrix_f64(big_w, w, blur)
    d_h, d_w = dct_matrix_f64(h), dct_matrix_f64(w)
    filter_h, filter_w = _window_filter(r_h), _window_filter(r_w)
    if filter_h is None or filter_w is None:
        filter_h = filter_w = None

    def cast(t: torch.Tensor) -> torch.Tensor:
        return t.to(device=device, dtype=dtype)

    def cast_filter(f: Optional[WindowFilter]) -> Optional[WindowFilter]:
        return None if f is None else f._replace(weights=cast(f.weights))

    return ImageSpectrumOperator(
        cast(d_h @ r_h), cast(d_w @ r_w), cast_filter(filter_h), cast_filter(filter_w), cast(d_h), cast(d_w)
    )


@functools.lru_cache(maxsize=64)
@_build
def band_average_matrix(
    h: int, w: int, n_bins: int, drop_dc: bool, eps: float, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Cached (h*w, n_bins) matrix that turns a flattened power map into mean power per radial bin.

    Entry ``(i, k)`` is ``1 / (n_k + eps)`` when coefficient ``i`` lies in bin ``k`` (``n_k`` = bin
    population, counted with DC) and 0 otherwise, so ``P.flatten(1) @ M`` is the authors'
    ``scatter_add`` sum divided by ``max(n_k, 1) + eps``; an empty bin gives 0. With ``drop_dc`` the DC row is
    zero, which is the same as setting ``P(0, 0) = 0`` before binning (``remove_dc``) and also blocks the
    gradient there.
    """
    bins = radial_bin_index(h, w, n_bins).view(-1)
    counts = torch.bincount(bins, minlength=n_bins).to(torch.float64).clamp_min(1.0)
    m = torch.zeros(h * w, n_bins, dtype=torch.float64)
    m[torch.arange(h * w), bins] = 1.0 / (counts[bins] + eps)
    if drop_dc:
        m[0] = 0.0
    return m.to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=64)
@_build
def lowpass_keep_mask(block_size: int, mask_level: int) -> torch.Tensor:
    """Boolean (b, b) mask of kept block-DCT coefficients: keep (u, v) iff ``u + v < 2(b-1) - (k-1)``."""
    u = torch.arange(block_size).view(block_size, 1)
    v = torch.arange(block_size).view(1, block_size)
    return (u + v) < (2 * (block_size - 1) - (mask_level - 1))


@functools.lru_cache(maxsize=64)
@_build
def block_lowpass_projection(
    block_size: int, mask_level: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Cached (b*b, b*b) projection ``P = K.T diag(mask) K`` with ``K = D kron D`` (row-major block vectors).

    ``K`` maps a flattened b x b block to its flattened 2-D DCT, so ``P`` is "DCT, zero the masked
    coefficients, inverse DCT" in one matrix. ``P`` is symmetric and idempotent (an orthogonal projection).
    """
    d = dct_matrix_f64(block_size)
    k = torch.kron(d, d)
    keep = lowpass_keep_mask(block_size, mask_level).reshape(-1).to(torch.float64)
    return (k.T @ (keep.view(-1, 1) * k)).to(device=device, dtype=dtype)
