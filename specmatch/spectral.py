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

import functools
from typing import Tuple, Union

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

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

#: Slice size for the CPU block low-pass (fits the per-core cache).
_LOWPASS_CHUNK_BYTES = 1 << 20


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


def dct_2d(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two axes of a (B, C, h, w) tensor, as two dense matrix products.

    Equals ``scipy.fft.dctn(x, type=2, norm="ortho", axes=(-2, -1))``. Computed in ``x.dtype`` (float32 for
    half inputs).
    """
    _check_tensor("x", x)
    x = x.to(_compute_dtype(x))
    h, w = x.shape[-2:]
    return _separable_map(x, dct_matrix(h, x.device, x.dtype), dct_matrix(w, x.device, x.dtype))


def _bands_from_power(
    power: torch.Tensor, h: int, w: int, n_bins: int, center: str, remove_dc: bool, eps: float
) -> torch.Tensor:
    """Step 3: clamped power (B, h*w) of the *uncentred* signal -> mean power per radial bin (B, n_bins).

    Centring by the spatial mean changes only the DC coefficient of an orthonormal DCT (it becomes 0), so
    instead of subtracting the mean we set the DC power directly: 0 with ``remove_dc`` (a zero DC row in the
    binning matrix); else ``eps`` (the clamp of a zero) for ``center="mean"``; else the true DC power.
    """
    drop_dc = remove_dc or center == "mean"
    bands = power @ band_average_matrix(h, w, n_bins, drop_dc, eps, power.device, power.dtype)
    if center == "mean" and not remove_dc:
        # The centred DC power is the clamp value eps; add its share to bin 0 as a constant.
        dc_row = band_average_matrix(h, w, n_bins, False, eps, power.device, power.dtype)[0]
        bands = bands + eps * dc_row
    return bands


def _band_power_from_coefficients(
    coeffs: torch.Tensor, n_bins: int, center: str, remove_dc: bool, eps: float
) -> torch.Tensor:
    """Steps 2-3 from DCT coefficients (B, C, h, w): ``P = max(mean_c X^2, eps)``, then radial bin means."""
    _, _, h, w = coeffs.shape
    power = coeffs.square().mean(dim=1).clamp_min(eps).flatten(1)
    return _bands_from_power(power, h, w, n_bins, center, remove_dc, eps)


class _BandPower(torch.autograd.Function):
    """Steps 2-3 for a signal (B, C, h, w) -> (B, n_bins), with a closed-form backward, for speed.

    Forward: X = D_h x D_w^T, P = max(mean_c X^2, eps), s = P M (M: the cached binning matrix). Backward,
    for an upstream gradient g (B, n_bins):

        dL/dP = g M^T (zero where the clamp acted),  dL/dX_c = 2 X_c dL/dP / C,  dL/dx = D_h^T dL/dX D_w.

    One autograd node instead of about ten; the tests compare it with autograd and finite differences.
    Like the KL below it is once differentiable (a second derivative raises instead of being wrong).
    """

    @staticmethod
    def forward(ctx, x, n_bins, center, remove_dc, eps):
        h, w = x.shape[-2:]
        d_h, d_w = dct_matrix(h, x.device, x.dtype), dct_matrix(w, x.device, x.dtype)
        coeffs = _separable_map(x, d_h, d_w)
        power = coeffs.square().mean(dim=1)
        ctx.save_for_backward(coeffs, power >= eps)  # clamp_min passes the gradient where P >= eps
        drop_dc = remove_dc or center == "mean"
        ctx.constants = (d_h, d_w, band_average_matrix(h, w, n_bins, drop_dc, eps, x.device, x.dtype))
        return _bands_from_power(power.clamp_min(eps).flatten(1), h, w, n_bins, center, remove_dc, eps)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_bands):
        coeffs, unclamped = ctx.saved_tensors
        d_h, d_w, band_matrix = ctx.constants
        b, c, h, w = coeffs.shape
        grad_power = (grad_bands @ band_matrix.T).view(b, 1, h, w) * unclamped.unsqueeze(1)
        grad_coeffs = coeffs * (grad_power * (2.0 / c))
        return _separable_map(grad_coeffs, d_h.T, d_w.T), None, None, None, None


def _to_distribution(bands: torch.Tensor, log_power: bool, eps: float) -> torch.Tensor:
    """Steps 5-6: optional ``log(1 + s + eps)``, then ``s / (sum_k s_k + eps)``.

    The authors write ``max(s, 0)``; band powers are means of powers clamped at eps > 0, so s >= 0 (and so is
    ``log(1 + s + eps)``) and that clamp never acts. It is left out.
    """
    if log_power:
        bands = torch.log1p(bands + eps)
    return bands / (bands.sum(dim=1, keepdim=True) + eps)


def _kl(p: torch.Tensor, q: torch.Tensor, eps: float) -> torch.Tensor:
    """Step 7: ``mean_b sum_k p_k (log(p_k + eps) - log(q_k + eps))``, i.e. KL(target || latent)."""
    return (p * (torch.log(p + eps) - torch.log(q + eps))).sum(dim=1).mean()


class _KLFromLatentBands(torch.autograd.Function):
    """``_kl(p, _to_distribution(s))`` with a closed-form backward, for speed.

    The forward evaluates exactly the plain expression (in ``p.dtype``; the loss is returned in the bands'
    dtype). Autograd would record about fifteen tiny (B, n_bins) operations whose bookkeeping costs more
    than their arithmetic; the backward here is a few lines. With t = log(1 + s + eps) (or t = s),
    T = sum_k t_k + eps, q = t / T and g = dL/dq = -p / (B (q + eps)):

        dL/dt_j = (g_j - sum_k g_k q_k) / T,        dL/ds_j = dL/dt_j / (1 + s_j + eps)  (log power).

    The tests check it against autograd of the plain expression.
    """

    @staticmethod
    def forward(ctx, bands, p, log_power, eps):
        s = bands.to(p.dtype)
        q = _to_distribution(s, log_power, eps)
        ctx.save_for_backward(s, p, q)
        ctx.log_power, ctx.eps, ctx.bands_dtype = log_power, eps, bands.dtype
        return _kl(p, q, eps).to(bands.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        s, p, q = ctx.saved_tensors
        eps = ctx.eps
        t = torch.log1p(s + eps) if ctx.log_power else s
        total = t.sum(dim=1, keepdim=True) + eps
        g_q = -p / (q + eps) * (grad_loss / p.shape[0])
        g_t = (g_q - (g_q * q).sum(dim=1, keepdim=True)) / total
        g_s = g_t / (1.0 + s + eps) if ctx.log_power else g_t
        return g_s.to(ctx.bands_dtype), None, None, None


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
    return _BandPower.apply(x.to(_compute_dtype(x)), n_bins, center, remove_dc, eps)


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
    """DCT coefficients (B, C, h, w) of the blurred, bicubic-resized image.

    The image side of ESM is linear up to the squaring. In general it runs as ``A_h @ x @ A_w.T`` with blur,
    bicubic resize and DCT folded into one (h, H) and one (w, W) matrix. For integer decimation (f8, f16 at
    any size) the resize is a short filter on disjoint windows on both axes; then strided views feed each
    window to one matrix-vector product per axis (every pixel is read once, no copy) and the DCT follows
    on the small grid.
    """
    b, c, big_h, big_w = x.shape
    op = image_spectrum_operator(big_h, big_w, h, w, spec, x.device, x.dtype)
    if op.filter_h is None or op.filter_w is None:
        return _separable_map(x, op.a_h, op.a_w)
    (period_h, first_h, taps_h), (period_w, first_w, taps_w) = op.filter_h, op.filter_w
    # Along W: rows of length period_w, one per output column; the window is a strided slice of each.
    windows_w = x.reshape(b * c * big_h * w, period_w)[:, first_w : first_w + len(taps_w)]
    along_w = (windows_w @ taps_w).view(b * c * h, period_h, w)  # (B*C*h, period_h, w)
    # Along H: the same on row windows of the (much smaller) result.
    along_h = torch.matmul(taps_h, along_w[:, first_h : first_h + len(taps_h)])  # (B*C*h, w)
    return _separable_map(along_h.view(b, c, h, w), op.d_h, op.d_w)


def _distribution_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """dtype of the tiny (B, n_bins) tail: tilt, log, normalise and KL.

    The KL of two close distributions is ill-conditioned: merely rounding p and q to float32 moves an ESM loss
    of 0.01 by ~5e-6 relative. The tail costs nothing, so it runs in float64 on devices that support it.
    """
    return torch.float64 if device.type in ("cpu", "cuda") else dtype


@functools.lru_cache(maxsize=32)
def _tilt(n_bins: int, delta: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Step 4 factors ``(k + 1) ** delta`` for k = 0 .. n_bins - 1 (cached)."""
    with torch.inference_mode(False), torch.no_grad():
        return torch.arange(1, n_bins + 1, dtype=torch.float64).pow(delta).to(device=device, dtype=dtype)


def _target_distribution(image, h, w, delta, n_bins, center, remove_dc, log_power, blur, eps, dtype, tail_dtype):
    """Steps 1-6 for the image: the target p (B, n_bins) in ``tail_dtype``, without gradient."""
    with torch.no_grad():
        coeffs = _image_coefficients_on_grid(image.detach().to(dtype), h, w, _resolve_blur(blur, h))
        bands = _band_power_from_coefficients(coeffs, n_bins, center, remove_dc, eps).to(tail_dtype)
        return _to_distribution(bands * _tilt(n_bins, delta, bands.device, tail_dtype), log_power, eps)


def _esm_parts(image, latent, delta, n_bins, center, remove_dc, log_power, blur, eps):
    """Target p (no gradient, tail dtype) and the latent's band powers (compute dtype, with gradient)."""
    _, _, h, w = latent.shape
    dtype = _compute_dtype(image, latent)
    tail_dtype = _distribution_dtype(latent.device, dtype)
    p = _target_distribution(
        image, h, w, delta, n_bins, center, remove_dc, log_power, blur, eps, dtype, tail_dtype
    )
    latent_bands = _BandPower.apply(latent.to(dtype), n_bins, center, remove_dc, eps)
    return p, latent_bands


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
    _resolve_blur(blur, latent.shape[-2])  # validate before any work
    p, latent_bands = _esm_parts(image, latent, delta, n_bins, center, remove_dc, log_power, blur, eps)
    q = _to_distribution(latent_bands.to(p.dtype), log_power, eps)
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
    _resolve_blur(blur, latent.shape[-2])  # validate before any work
    p, latent_bands = _esm_parts(image, latent, delta, n_bins, center, remove_dc, log_power, blur, eps)
    if loss == "l2":
        value = F.mse_loss(_to_distribution(latent_bands.to(p.dtype), log_power, eps), p)
    else:
        value = _KLFromLatentBands.apply(latent_bands, p, log_power, eps)
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
    centring, level shift or clamp. The whole operation is one fixed orthogonal projection of each block
    (a cached (b*b, b*b) matrix), applied as a matrix product to the flattened blocks.

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
    b, nw = block_size, big_w // block_size
    dtype = _compute_dtype(x)
    proj = block_lowpass_projection(b, mask_level, x.device, dtype)
    # Rows of blocks: (..., H, W) -> (R, b, nw, b) with R = (...) * H / b block rows.
    block_rows = x.to(dtype).reshape(-1, b, nw, b)

    def project(rows: torch.Tensor) -> torch.Tensor:
        """(r, b, nw, b) block rows -> flattened blocks (r*nw, b*b) -> one matrix product -> back."""
        blocks = rows.transpose(1, 2).reshape(-1, b * b)
        return (blocks @ proj).view(rows.shape[0], nw, b, b).transpose(1, 2)

    chunk = max(1, _LOWPASS_CHUNK_BYTES // (b * big_w * block_rows.element_size()))
    needs_graph = torch.is_grad_enabled() and x.requires_grad
    if x.device.type != "cpu" or needs_graph or block_rows.shape[0] <= chunk:
        out = project(block_rows)
    else:
        # On CPU, large images go through in ~1 MB slices of block rows so that the block gather, the
        # product and the scatter back stay in cache (about 2x faster than three passes over memory).
        out = torch.empty_like(block_rows)
        for start in range(0, block_rows.shape[0], chunk):
            out[start : start + chunk] = project(block_rows[start : start + chunk])
    return out.reshape(x.shape).to(x.dtype)
