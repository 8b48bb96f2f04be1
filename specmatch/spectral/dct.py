"""The orthonormal 2-D DCT-II as dense matrix products."""

from __future__ import annotations

import math

import torch

from specmatch.spectral.cache import cached_operator
from specmatch.spectral.options import check_tensor, compute_dtype


def dct_matrix_f64(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``D`` (n, n), float64: ``X = D @ x`` transforms a column.

    ``D[u, i] = a_u cos(pi (2 i + 1) u / (2 n))`` with ``a_0 = sqrt(1/n)`` and ``a_u = sqrt(2/n)`` otherwise;
    it equals ``scipy.fft.dct(..., type=2, norm="ortho")`` and ``torch_dct.dct(..., norm="ortho")``.
    ``D`` is orthogonal, so the inverse DCT (type III) is ``D.T``.
    """
    u = torch.arange(n, dtype=torch.float64).view(n, 1)
    i = torch.arange(n, dtype=torch.float64).view(1, n)
    d = torch.cos(math.pi * (2.0 * i + 1.0) * u / (2.0 * n)) * math.sqrt(2.0 / n)
    d[0] = d[0] / math.sqrt(2.0)
    return d


@cached_operator
def dct_matrix(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """:func:`dct_matrix_f64` on ``device`` in ``dtype``, cached."""
    return dct_matrix_f64(n).to(device=device, dtype=dtype)


def separable_map(x: torch.Tensor, a_h: torch.Tensor, a_w: torch.Tensor) -> torch.Tensor:
    """``a_h @ x @ a_w.T`` on the last two axes of a (B, C, H, W) tensor -> (B, C, h, w)."""
    b, c, big_h, big_w = x.shape
    # Contract the width first as one large 2-D GEMM over every row of every image.
    y = (x.reshape(-1, big_w) @ a_w.T).view(b * c, big_h, a_w.shape[0])
    return torch.matmul(a_h, y).view(b, c, a_h.shape[0], a_w.shape[0])


def dct_2d_unchecked(x: torch.Tensor) -> torch.Tensor:
    """:func:`dct_2d` in ``x.dtype``, for callers that validated and cast ``x`` already."""
    h, w = x.shape[-2:]
    return separable_map(x, dct_matrix(h, x.device, x.dtype), dct_matrix(w, x.device, x.dtype))


def dct_2d(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two axes of a (B, C, h, w) tensor.

    Equals ``scipy.fft.dctn(x, type=2, norm="ortho", axes=(-2, -1))``. Computed in ``x.dtype`` (float32 for
    half inputs). Differentiable.
    """
    check_tensor("x", x)
    return dct_2d_unchecked(x.to(compute_dtype(x)))
