"""DSM, decoding spectrum matching: the block-DCT low-pass of the authors' branch ``DSM`` (method.md s3)."""

from __future__ import annotations

import torch

from specmatch.spectral.cache import cached_operator
from specmatch.spectral.dct import dct_matrix_f64
from specmatch.spectral.options import SpectralArgumentError, compute_dtype

#: Slice size for the CPU block low-pass (fits the per-core cache).
_LOWPASS_CHUNK_BYTES = 1 << 20


def _check_block_args(block_size: int, mask_level: int) -> None:
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise SpectralArgumentError(f"block_size must be an integer >= 1, got {block_size!r}")
    top = 2 * block_size - 1  # at this level every coefficient is zeroed
    if isinstance(mask_level, bool) or not isinstance(mask_level, int) or not 0 <= mask_level <= top:
        raise SpectralArgumentError(
            f"mask_level must be an integer in [0, {top}] for block_size {block_size}, got {mask_level!r}"
        )


def _keep_mask(block_size: int, mask_level: int) -> torch.Tensor:
    u = torch.arange(block_size).view(block_size, 1)
    v = torch.arange(block_size).view(1, block_size)
    return (u + v) < (2 * (block_size - 1) - (mask_level - 1))


def lowpass_mask(block_size: int, mask_level: int) -> torch.Tensor:
    """Boolean (b, b) keep-mask of the DSM low-pass: keep (u, v) iff ``u + v < 2(b-1) - (k-1)``.

    For b = 8: k = 0 keeps all 64, k = 8 keeps 28 (u+v <= 6), k = 10 keeps 15, k = 12 keeps 6. CPU tensor.
    """
    _check_block_args(block_size, mask_level)
    return _keep_mask(block_size, mask_level)


@cached_operator
def _block_projection(block_size: int, mask_level: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(b*b, b*b) projection ``P = K.T diag(mask) K`` with ``K = D kron D`` (row-major block vectors).

    ``K`` maps a flattened b x b block to its flattened 2-D DCT, so ``P`` is "DCT, zero the masked
    coefficients, inverse DCT" in one matrix. ``P`` is symmetric and idempotent (an orthogonal projection).
    """
    d = dct_matrix_f64(block_size)
    k = torch.kron(d, d)
    keep = _keep_mask(block_size, mask_level).reshape(-1, 1).to(torch.float64)
    return (k.T @ (keep * k)).to(device=device, dtype=dtype)


def block_lowpass(x: torch.Tensor, mask_level: int, block_size: int = 8) -> torch.Tensor:
    """DSM block-DCT low-pass: per b x b block, DCT, zero high frequencies, inverse DCT.

    Coefficient (u, v) of every non-overlapping ``block_size`` x ``block_size`` block is zeroed when
    ``u + v >= 2(b-1) - (k-1)`` (k = ``mask_level``), i.e. the k highest of the 2b-1 anti-diagonals go. No
    centring, level shift or clamp. Computed as one matrix product of the flattened blocks with a cached
    (b*b, b*b) projection.

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
    *_, big_h, big_w = x.shape
    if big_h % block_size or big_w % block_size:
        raise SpectralArgumentError(
            f"block_lowpass needs H and W divisible by block_size {block_size}, got x of shape {tuple(x.shape)}"
        )
    b, nw = block_size, big_w // block_size
    dtype = compute_dtype(x)
    proj = _block_projection(b, mask_level, x.device, dtype)
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
        # On CPU, large images go through in ~1 MB slices of block rows so that the block gather, the product
        # and the scatter back stay in cache. Kept for the 10x target: one product over the whole image measured
        # 10-30 % slower (12-14x against 15-16x in benchmarks/spectral.py on a lightly loaded machine).
        out = torch.empty_like(block_rows)
        for start in range(0, block_rows.shape[0], chunk):
            out[start : start + chunk] = project(block_rows[start : start + chunk])
    return out.reshape(x.shape).to(x.dtype)
