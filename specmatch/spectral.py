"""Spectral functions of Spectrum Matching: the ESM loss and the DSM block low-pass.

These are exact, fast re-implementations of the authors' official functions (see ``docs/spectral.md`` and
``method.md`` sections 2-3):

* :func:`esm_loss` / :func:`esm_distributions` - the encoding spectrum matching loss
  (``utils_DCT.latent_spectral_reg_dct``): the latent's radial DCT power spectrum is matched to a flattened
  copy of the image's.
* :func:`radial_band_power` - channel-averaged orthonormal DCT-II power, averaged in corner-normalised radial
  bins.
* :func:`image_to_latent_grid` - the fixed "blur then bicubic" map that brings an image to the latent grid.
* :func:`block_lowpass` / :func:`lowpass_mask` - the decoding spectrum matching block-DCT low-pass.

Every data-independent step is a cached matrix (``specmatch.spectral_ops``), so a call is a few matrix
products. All functions are differentiable and run on any device.

**fp32 island.** The spectral statistics are computed in float32 at least: float16/bfloat16 inputs are
upcast inside, and :func:`radial_band_power`, :func:`esm_distributions`, :func:`esm_loss` and
:func:`image_to_latent_grid` return float32 for them (float64 inputs stay float64).
:func:`block_lowpass` also computes in float32 but returns the input's dtype, because its output is data.
"""

from __future__ import annotations

from typing import Tuple, Union

import torch
import torch.nn.functional as F

from specmatch.core.errors import SpecmatchError
from specmatch.spectral_ops import (
    BlurSpec,
    band_average_matrix,
    block_lowpass_projection,
    dct_matrix,
    image_spectrum_operator,
    lowpass_keep_mask,
    radial_bin_index,
    resize_matrix,
)

__all__ = [
    "SpectralArgumentError",
    "REFERENCE_BLUR",
    "radial_band_power",
    "esm_distributions",
    "esm_loss",
    "image_to_latent_grid",
    "block_lowpass",
    "lowpass_mask",
    "dct_2d",
    "radial_bin_index",
]

#: The authors' anti-alias blur before the bicubic resize: 7 taps, sigma 1.2, zero padding.
REFERENCE_BLUR: Tuple[int, float] = (7, 1.2)
#: The authors skip the blur when the latent height equals this (f8 at 256 px).
REFERENCE_BLUR_SKIPPED_AT_HEIGHT = 32

Blur = Union[str, None, Tuple[int, float]]


class SpectralArgumentError(SpecmatchError, ValueError):
    """A bad argument to a spectral function (a ``ValueError`` and a ``SpecmatchError``)."""


# --------------------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------------------


def _check_tensor(name: str, t: torch.Tensor, ndim: int = 4) -> None:
    if not isinstance(t, torch.Tensor):
        raise SpectralArgumentError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != ndim:
        raise SpectralArgumentError(
            f"{name} must be a {ndim}-D tensor (batch, channels, height, width), got shape {tuple(t.shape)}"
        )
    if not t.is_floating_point():
        raise SpectralArgumentError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")


def _check_center(center: str) -> None:
    if center not in ("mean", "none"):
        raise SpectralArgumentError(f"center must be 'mean' or 'none', got {center!r}")


def _check_n_bins(n_bins: int) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise SpectralArgumentError(f"n_bins must be an integer >= 1, got {n_bins!r}")


def _resolve_blur(blur: Blur, latent_height: int) -> BlurSpec:
    """Turn the user's ``blur`` into ``None`` (no blur) or a validated ``(kernel_size, sigma)``."""
    if isinstance(blur, str):
        if blur == "reference":
            return None if latent_height == REFERENCE_BLUR_SKIPPED_AT_HEIGHT else REFERENCE_BLUR
        if blur == "none":
            return None
        raise SpectralArgumentError(
            f"blur must be 'reference', 'none', None or a (kernel_size, sigma) tuple, got {blur!r}"
        )
    if blur is None:
        return None
    if isinstance(blur, (tuple, list)) and len(blur) == 2:
        size, sigma = blur
        size_ok = isinstance(size, int) and not isinstance(size, bool) and size >= 1 and size % 2 == 1
        sigma_ok = isinstance(sigma, (int, float)) and not isinstance(sigma, bool) and sigma > 0
        if size_ok and sigma_ok:
            return (int(size), float(sigma))
        raise SpectralArgumentError(
            f"blur (kernel_size, sigma) needs an odd kernel_size >= 1 and sigma > 0, got {tuple(blur)!r}"
        )
    raise SpectralArgumentError(
        f"blur must be 'reference', 'none', None or a (kernel_size, sigma) tuple, got {blur!r}"
    )


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32 (the fp32 island for float16/bfloat16)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


# --------------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------------


def _separable_map(x: torch.Tensor, a_h: torch.Tensor, a_w: torch.Tensor) -> torch.Tensor:
    """``a_h @ x @ a_w.T`` on the last two axes of a (B, C, H, W) tensor -> (B, C, h, w)."""
    b, c, big_h, big_w = x.shape
    # Contract the width first as one large 2-D GEMM over every row of every image.
    y = (x.reshape(-1, big_w) @ a_w.T).view(b * c, big_h, a_w.shape[0])
    return torch.matmul(a_h, y).view(b, c, a_h.shape[0], a_w.shape[0])


def _dct_2d(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    return _separable_map(x, dct_matrix(h, x.device, x.dtype), dct_matrix(w, x.device, x.dtype))


def dct_2d(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two axes of a (B, C, h, w) tensor, as two dense matrix products.

    Equals ``scipy.fft.dctn(x, type=2, norm="ortho", axes=(-2, -1))``. Computed in ``x.dtype`` (float32 for
    half inputs).
    """
    _check_tensor("x", x)
    return _dct_2d(x.to(_compute_dtype(x)))


def _band_power_from_coefficients(
    coeffs: torch.Tensor, n_bins: int, center: str, remove_dc: bool, eps: float
) -> torch.Tensor:
    """Steps 2-3 of ESM from DCT coefficients (B, C, h, w) of the *uncentred* signal -> (B, n_bins).

    Centring by the spatial mean changes only the DC coefficient of an orthonormal DCT (it becomes 0), so
    instead of subtracting the mean we set the DC power directly: 0 with ``remove_dc``; else ``eps`` (the
    clamp of a zero) for ``center="mean"``; else the true DC power for ``center="none"``.
    """
    _, _, h, w = coeffs.shape
    power = coeffs.square().mean(dim=1).clamp_min(eps).flatten(1)  # (B, h*w), P = mean_c X^2 >= eps
    drop_dc = remove_dc or center == "mean"
    bands = power @ band_average_matrix(h, w, n_bins, drop_dc, eps, coeffs.device, coeffs.dtype)
    if center == "mean" and not remove_dc:
        # The centred DC power is the clamp value eps; add its share to bin 0 as a constant.
        dc_row = band_average_matrix(h, w, n_bins, False, eps, coeffs.device, coeffs.dtype)[0]
        bands = bands + eps * dc_row
    return bands


def _to_distribution(bands: torch.Tensor, log_power: bool, eps: float) -> torch.Tensor:
    """Steps 5-6: optional ``log(1 + s + eps)``, then ``max(s, 0) / (sum_k max(s_k, 0) + eps)``."""
    if log_power:
        bands = torch.log1p(bands + eps)
    bands = bands.clamp_min(0.0)
    return bands / (bands.sum(dim=1, keepdim=True) + eps)


# --------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------


def radial_band_power(
    x: torch.Tensor,
    n_bins: int = 16,
    *,
    center: str = "mean",
    remove_dc: bool = True,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Mean DCT power per corner-normalised radial bin (method.md s2.2 steps 2-3).

    Args:
        x: (B, C, h, w) signal (image or latent), any range.
        n_bins: number of radial bins (>= 1).
        center: ``"mean"`` subtracts each (sample, channel) spatial mean first; ``"none"`` does not.
        remove_dc: set the DC power ``P(0, 0)`` to 0 before binning.
        eps: clamp floor of the power and the bin-count guard.

    Returns:
        (B, n_bins) tensor ``s_k = sum_{bin(u,v)=k} P(u,v) / (max(n_k, 1) + eps)`` with
        ``P = max(mean_c DCT(x)^2, eps)`` and ``bin = min(floor(n_bins r / r_max), n_bins - 1)``,
        ``r = sqrt(u^2 + v^2)``, ``r_max = sqrt((h-1)^2 + (w-1)^2)``. Empty bins are 0. float32 for half
        inputs (fp32 island), else ``x.dtype``.
    """
    _check_tensor("x", x)
    _check_n_bins(n_bins)
    _check_center(center)
    x = x.to(_compute_dtype(x))
    return _band_power_from_coefficients(_dct_2d(x), n_bins, center, remove_dc, eps)


def image_to_latent_grid(
    image: torch.Tensor, latent_hw: Tuple[int, int], blur: Blur = "reference"
) -> torch.Tensor:
    """Bring an image batch to the latent grid: blur (optional) then PyTorch bicubic (method.md s2.2 step 1).

    Args:
        image: (B, C, H, W) image, values in [-1, 1].
        latent_hw: target (h, w).
        blur: ``"reference"`` - the authors' rule: Gaussian 7 taps, sigma 1.2, zero padding, skipped iff
            ``h == 32``; ``None`` or ``"none"`` - no blur; ``(kernel_size, sigma)`` - that blur, always.

    Returns:
        (B, C, h, w), equal to ``F.interpolate(gauss_blur(image), (h, w), mode="bicubic",
        align_corners=False)``, computed as ``M_h @ image @ M_w.T`` with cached 1-D matrices. float32 for
        half inputs, else ``image.dtype``. Differentiable.
    """
    _check_tensor("image", image)
    h, w = _check_hw(latent_hw)
    spec = _resolve_blur(blur, h)
    image = image.to(_compute_dtype(image))
    _, _, big_h, big_w = image.shape
    m_h = resize_matrix(big_h, h, spec, image.device, image.dtype)
    m_w = resize_matrix(big_w, w, spec, image.device, image.dtype)
    return _separable_map(image, m_h, m_w)


def _check_hw(latent_hw: Tuple[int, int]) -> Tuple[int, int]:
    try:
        h, w = (int(v) for v in latent_hw)
    except (TypeError, ValueError):
        raise SpectralArgumentError(f"latent_hw must be a pair (h, w) of positive ints, got {latent_hw!r}")
    if h < 1 or w < 1:
        raise SpectralArgumentError(f"latent_hw must be a pair (h, w) of positive ints, got {latent_hw!r}")
    return h, w


def _check_esm_inputs(image: torch.Tensor, latent: torch.Tensor, n_bins: int, center: str) -> None:
    _check_tensor("image", image)
    _check_tensor("latent", latent)
    _check_n_bins(n_bins)
    _check_center(center)
    if image.shape[0] != latent.shape[0]:
        raise SpectralArgumentError(
            f"image and latent need the same batch size, got image {tuple(image.shape)} "
            f"and latent {tuple(latent.shape)}"
        )


def _image_coefficients_on_grid(x: torch.Tensor, h: int, w: int, spec: BlurSpec) -> torch.Tensor:
    """DCT coefficients (B, C, h, w) of the blurred, bicubic-resized image, as ``A_h @ x @ A_w.T``.

    The image side of ESM is linear up to the squaring, so blur, bicubic resize and DCT fold into one (h, H)
    and one (w, W) matrix. When each output row reads only a window of image rows (integer decimation), only
    those windows are gathered (one strided copy) before the products.
    """
    b, c, big_h, big_w = x.shape
    op = image_spectrum_operator(big_h, big_w, h, w, spec, x.device, x.dtype)
    if op.row_window is not None:
        period, first, length = op.row_window
        x = x.reshape(b, c, h, period, big_w)[:, :, :, first : first + length].reshape(b, c, h * length, big_w)
    return _separable_map(x, op.a_h, op.a_w)


def _distribution_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """dtype of the tiny (B, n_bins) tail: tilt, log, normalise and KL.

    The KL of two close distributions is ill-conditioned: merely rounding p and q to float32 moves an ESM loss
    of 0.01 by ~5e-6 relative. The tail costs nothing, so it runs in float64 on devices that support it.
    """
    return torch.float64 if device.type in ("cpu", "cuda") else dtype


def _esm_distributions(image, latent, delta, n_bins, center, remove_dc, log_power, blur, eps):
    """:func:`esm_distributions` without checks, returning p and q in :func:`_distribution_dtype`."""
    _, _, h, w = latent.shape
    spec = _resolve_blur(blur, h)
    dtype = _compute_dtype(image, latent)
    tail_dtype = _distribution_dtype(latent.device, dtype)

    with torch.no_grad():
        target_coeffs = _image_coefficients_on_grid(image.detach().to(dtype), h, w, spec)
        target_bands = _band_power_from_coefficients(target_coeffs, n_bins, center, remove_dc, eps)
        target_bands = target_bands.to(tail_dtype)
        tilt = torch.arange(1, n_bins + 1, device=latent.device, dtype=tail_dtype) ** delta
        p = _to_distribution(target_bands * tilt, log_power, eps)

    latent_bands = _band_power_from_coefficients(_dct_2d(latent.to(dtype)), n_bins, center, remove_dc, eps)
    q = _to_distribution(latent_bands.to(tail_dtype), log_power, eps)
    return p, q


def esm_distributions(
    image: torch.Tensor,
    latent: torch.Tensor,
    *,
    delta: float = 1.0,
    n_bins: int = 16,
    center: str = "mean",
    remove_dc: bool = True,
    log_power: bool = True,
    blur: Blur = "reference",
    eps: float = 1e-8,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Target and latent radial spectrum distributions of ESM (method.md s2.2 steps 1-6).

    Args:
        image: (B, 3, H, W) images in [-1, 1]. Treated as a constant (no gradient).
        latent: (B, C, h, w) latent (the sampled posterior in the authors' training). Carries the gradient.
        delta: tilt exponent; the target bins are multiplied by ``(k + 1) ** delta``, k = 0..n_bins-1.
        n_bins, center, remove_dc, eps: see :func:`radial_band_power`.
        log_power: apply ``s -> log(1 + s + eps)`` to both sides before normalising.
        blur: how the image reaches the latent grid; see :func:`image_to_latent_grid`.

    Returns:
        ``(p, q)``: target p (B, n_bins), detached, and latent q (B, n_bins), each ``max(s, 0) / (sum + eps)``.
        float32 for half inputs (fp32 island), float64 for float64 inputs.
    """
    _check_esm_inputs(image, latent, n_bins, center)
    p, q = _esm_distributions(image, latent, delta, n_bins, center, remove_dc, log_power, blur, eps)
    dtype = _compute_dtype(image, latent)
    return p.to(dtype), q.to(dtype)


def esm_loss(
    image: torch.Tensor,
    latent: torch.Tensor,
    *,
    delta: float = 1.0,
    n_bins: int = 16,
    center: str = "mean",
    remove_dc: bool = True,
    log_power: bool = True,
    loss: str = "kl",
    blur: Blur = "reference",
    eps: float = 1e-8,
) -> torch.Tensor:
    """The ESM loss (authors' ``latent_spectral_reg_dct``), a scalar; only ``latent`` receives gradient.

    ``loss="kl"``: ``mean_b sum_k p_k (log(p_k + eps) - log(q_k + eps))`` = KL(target || latent).
    ``loss="l2"``: ``mean((q - p)^2)`` over batch and bins. Other arguments: :func:`esm_distributions`.
    Returns float32 for half inputs (fp32 island), float64 for float64 inputs.
    """
    if loss not in ("kl", "l2"):
        raise SpectralArgumentError(f"loss must be 'kl' or 'l2', got {loss!r}")
    _check_esm_inputs(image, latent, n_bins, center)
    p, q = _esm_distributions(image, latent, delta, n_bins, center, remove_dc, log_power, blur, eps)
    if loss == "l2":
        value = F.mse_loss(q, p)
    else:
        value = (p * (torch.log(p + eps) - torch.log(q + eps))).sum(dim=1).mean()
    return value.to(_compute_dtype(image, latent))


def lowpass_mask(block_size: int, mask_level: int) -> torch.Tensor:
    """Boolean (b, b) keep-mask of the DSM low-pass: keep (u, v) iff ``u + v < 2(b-1) - (k-1)``.

    For b = 8: k = 0 keeps all 64, k = 8 keeps 28 (u+v <= 6), k = 10 keeps 15, k = 12 keeps 6. CPU tensor.
    """
    _check_block_args(block_size, mask_level)
    return lowpass_keep_mask(block_size, mask_level).clone()


def _check_block_args(block_size: int, mask_level: int) -> None:
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise SpectralArgumentError(f"block_size must be an integer >= 1, got {block_size!r}")
    top = 2 * block_size - 1  # at this level every coefficient is zeroed
    if isinstance(mask_level, bool) or not isinstance(mask_level, int) or not 0 <= mask_level <= top:
        raise SpectralArgumentError(
            f"mask_level must be an integer in [0, {top}] for block_size {block_size}, got {mask_level!r}"
        )


def block_lowpass(x: torch.Tensor, mask_level: int, block_size: int = 8) -> torch.Tensor:
    """DSM block-DCT low-pass (method.md s3): per b x b block, DCT, zero high frequencies, inverse DCT.

    Coefficient (u, v) of every non-overlapping ``block_size`` x ``block_size`` block is zeroed when
    ``u + v >= 2(b-1) - (k-1)`` (k = ``mask_level``), i.e. the k highest of the 2b-1 anti-diagonals go. No
    centring, level shift or clamp. The whole operation is one fixed orthogonal projection of each block,
    applied as a single matrix product.

    Args:
        x: (..., H, W) tensor, H and W divisible by ``block_size`` (images (B, 3, H, W) and latents alike).
        mask_level: k in [0, 2b-1]; 0 returns ``x`` itself (the same object, not a copy).
        block_size: b.

    Returns:
        Low-passed tensor, same shape and dtype as ``x`` (computed in float32 for half inputs).
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or not x.is_floating_point():
        raise SpectralArgumentError(
            f"x must be a floating-point tensor with at least 2 dims (..., H, W), got "
            f"{getattr(x, 'shape', type(x).__name__)}"
        )
    _check_block_args(block_size, mask_level)
    if mask_level == 0:
        return x  # the mask keeps every coefficient (max u+v = 2(b-1) < 2(b-1)+1)
    *lead, big_h, big_w = x.shape
    if big_h % block_size or big_w % block_size:
        raise SpectralArgumentError(
            f"block_lowpass needs H and W divisible by block_size {block_size}, got x of shape {tuple(x.shape)}"
        )
    b = block_size
    dtype = _compute_dtype(x)
    proj = block_lowpass_projection(b, mask_level, x.device, dtype)
    nh, nw = big_h // b, big_w // b
    # (..., H, W) -> (N, nh, b, nw, b) -> rows of flattened blocks (N*nh*nw, b*b) -> project -> back.
    blocks = x.to(dtype).reshape(-1, nh, b, nw, b).transpose(2, 3).reshape(-1, b * b)
    out = (blocks @ proj).view(-1, nh, nw, b, b).transpose(2, 3).reshape(x.shape)
    return out.to(x.dtype)
