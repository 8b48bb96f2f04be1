"""Distances between two sets of features: the Frechet distance (FID) and the kernel inception distance (KID).

All arithmetic is float64 numpy/scipy. Features are (N, d) arrays or tensors (e.g. Inception pool
features, d = 2048).

* FID (Heusel et al. 2017) fits a Gaussian to each set and returns
  ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``, exactly as pytorch-fid computes it. It is biased at
  small N: two 500-image samples of the *same* distribution give FID of about 38. Report N with every FID
  and compare only at equal N.
* KID (Binkowski et al. 2018) is the unbiased estimate of the squared MMD with the cubic polynomial kernel
  ``k(x, y) = (x . y / d + 1)^3``, averaged over random subsets (as torch-fidelity computes it). Its
  expectation does not depend on N, so it is the better choice at small N.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

SQRTM_EPS = 1e-6  # diagonal offset when the covariance product is singular (pytorch-fid's default)
IMAGINARY_ATOL = 1e-3  # largest tolerated imaginary part on the diagonal of sqrtm (pytorch-fid)


def _as_features(features, name: str = "features") -> np.ndarray:
    """(N, d) float64 array from a numpy array or a torch tensor (moved to the CPU)."""
    if hasattr(features, "detach"):
        features = features.detach().cpu().numpy()
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, d) array, got shape {array.shape}")
    return array


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) of features (N, d), float64, with the N - 1 normalisation."""
    array = _as_features(features)
    if len(array) < 2:
        raise ValueError(f"need at least 2 feature vectors for a covariance, got {len(array)}")
    return array.mean(axis=0), np.cov(array, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, *, eps: float = SQRTM_EPS, method: str = "sqrtm") -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (FID when fed Inception statistics).

    ``method="sqrtm"`` (default) follows pytorch-fid: ``scipy.linalg.sqrtm`` of ``sigma1 @ sigma2`` in
    float64; if the result is not finite the product is singular and ``eps * I`` is added to both
    covariances; if it is complex with an imaginary part above 1e-3 on its diagonal a ``ValueError`` is
    raised (the statistics are broken), otherwise the real part is used.

    ``method="eigh"`` computes the same trace as ``sum(sqrt(eigvalsh(A sigma2 A)))`` with
    ``A = sigma1^(1/2)`` (a symmetric matrix similar to ``sigma1 @ sigma2``; tiny negative eigenvalues from
    rounding are clipped to 0). It needs no imaginary-part check and was 2-10 times faster at d = 2048 on
    2 CPU cores (6.5 s against 14-62 s); it agrees with ``sqrtm`` to about 1e-7 relative.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"the means have different shapes: {mu1.shape} and {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0], mu1.shape[0]):
        raise ValueError(
            f"the covariances must both be ({mu1.shape[0]}, {mu1.shape[0]}); got {sigma1.shape} and {sigma2.shape}"
        )
    if method == "sqrtm":
        trace_covmean = _trace_sqrtm_product(sigma1, sigma2, eps)
    elif method == "eigh":
        trace_covmean = _trace_sqrt_product_eigh(sigma1, sigma2)
    else:
        raise ValueError(f"method must be 'sqrtm' or 'eigh', got {method!r}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_covmean)


def _trace_sqrtm_product(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> float:
    """tr((sigma1 sigma2)^(1/2)) with scipy's sqrtm, exactly as pytorch-fid (see ``frechet_distance``)."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0.0, atol=IMAGINARY_ATOL):
            largest = np.max(np.abs(covmean.imag))
            raise ValueError(
                f"the matrix square root in the Frechet distance has an imaginary component of {largest:.3g}; "
                "the feature statistics are degenerate (too few samples, NaNs or mismatched features)"
            )
        covmean = covmean.real
    return float(np.trace(covmean))


def _trace_sqrt_product_eigh(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((sigma1 sigma2)^(1/2)) through two symmetric eigendecompositions (see ``frechet_distance``)."""
    if not (np.isfinite(sigma1).all() and np.isfinite(sigma2).all()):
        raise ValueError("the covariances contain NaN or infinite values")
    values, vectors = np.linalg.eigh((sigma1 + sigma1.T) / 2.0)
    root1 = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    product = root1 @ sigma2 @ root1
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2.0), 0.0, None)).sum())


def frechet_distance_of_features(features1, features2) -> float:
    """FID between two feature sets (N1, d) and (N2, d), exact and cheap when a set is smaller than d.

    With centred features scaled as ``A_i = (F_i - mean_i) / sqrt(N_i - 1)`` (so ``S_i = A_i.T A_i``), the
    non-zero eigenvalues of ``S1 S2`` are the squared singular values of ``A1 A2.T`` (N1 x N2), so
    ``tr((S1 S2)^(1/2))`` is the nuclear norm of that small matrix: no d x d square root. For N >= d it
    falls back to :func:`frechet_distance` (``eigh``) on the covariances.
    """
    f1, f2 = _as_features(features1, "features1"), _as_features(features2, "features2")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature dimensions differ: {f1.shape[1]} and {f2.shape[1]}")
    if len(f1) < 2 or len(f2) < 2:
        raise ValueError(f"FID needs at least 2 features per set, got {len(f1)} and {len(f2)}")
    if min(len(f1), len(f2)) >= f1.shape[1]:
        (mu1, s1), (mu2, s2) = feature_statistics(f1), feature_statistics(f2)
        return frechet_distance(mu1, s1, mu2, s2, method="eigh")
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    a1 = (f1 - mu1) / np.sqrt(len(f1) - 1)
    a2 = (f2 - mu2) / np.sqrt(len(f2) - 1)
    trace_covmean = float(np.linalg.svd(a1 @ a2.T, compute_uv=False).sum())
    diff = mu1 - mu2
    return float(diff @ diff + (a1 * a1).sum() + (a2 * a2).sum() - 2.0 * trace_covmean)


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The KID kernel ``k(x, y) = (x . y / d + 1)^3`` between rows of x (n, d) and y (m, d) -> (n, m)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_unbiased_from_kernels(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    m = k_xx.shape[0]
    off_diagonal = (k_xx.sum() - np.trace(k_xx)) + (k_yy.sum() - np.trace(k_yy))
    return float(off_diagonal / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased squared MMD between equal-size samples x and y (m, d) with ``polynomial_kernel``.

    ``sum_{i != j} [k(x_i, x_j) + k(y_i, y_j)] / (m (m - 1)) - 2 sum_{i, j} k(x_i, y_j) / m^2``
    (torch-fidelity's ``mmd2(..., mmd_est="unbiased")``).
    """
    return _mmd2_unbiased_from_kernels(polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y))


GRAM_CACHE_MAX = 4096  # up to this many features per set, kernels are computed once for all subsets


def kernel_inception_distance(
    features1, features2, *, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID: mean and standard deviation of ``mmd2_unbiased`` over ``num_subsets`` random subset pairs.

    Each subset pair draws ``subset_size`` rows of each set without replacement
    (``numpy.random.RandomState(seed)``, as torch-fidelity does). ``subset_size`` is clipped to the size of
    the smaller set, so with fewer than 1000 features every subset is that whole smaller set (and the
    spread only reflects the larger set's resampling); report the effective size with the value.
    For sets of at most 4096 features the kernel matrices are computed once and indexed per subset.
    """
    f1, f2 = _as_features(features1, "features1"), _as_features(features2, "features2")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature dimensions differ: {f1.shape[1]} and {f2.shape[1]}")
    size = min(int(subset_size), len(f1), len(f2))
    if size < 2:
        raise ValueError(f"KID needs at least 2 features per set, got {len(f1)} and {len(f2)}")
    if int(num_subsets) < 1:
        raise ValueError(f"num_subsets must be a positive integer, got {num_subsets}")
    cached = max(len(f1), len(f2)) <= GRAM_CACHE_MAX
    if cached:
        k11, k22, k12 = polynomial_kernel(f1, f1), polynomial_kernel(f2, f2), polynomial_kernel(f1, f2)
    rng = np.random.RandomState(seed)
    values = np.empty(int(num_subsets))
    for i in range(int(num_subsets)):
        rows1 = rng.choice(len(f1), size, replace=False)
        rows2 = rng.choice(len(f2), size, replace=False)
        if cached:
            values[i] = _mmd2_unbiased_from_kernels(
                k11[np.ix_(rows1, rows1)], k22[np.ix_(rows2, rows2)], k12[np.ix_(rows1, rows2)]
            )
        else:
            values[i] = mmd2_unbiased(f1[rows1], f2[rows2])
    return float(values.mean()), float(values.std())
