"""Independent checks of specmatch.spectral (no golden data needed).

The reference below is written the slow, obvious way from method.md s2-s3: a depthwise ``conv2d`` blur,
``F.interpolate`` bicubic, scipy's DCT, boolean masks per radial bin, per-block scipy DCTs. It shares no code
with specmatch.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import torch
import torch.nn.functional as F

from specmatch.core.errors import SpecmatchError
from specmatch.spectral import (
    block_lowpass,
    dct_2d,
    esm_distributions,
    esm_loss,
    image_to_latent_grid,
    lowpass_mask,
    radial_band_power,
    radial_bin_index,
)
from specmatch.spectral.dct import dct_matrix_f64

EPS = 1e-8

# ------------------------------------------------------------------------------------------------------
# Reference implementation (float64, torch autograd where gradients are compared)
# ------------------------------------------------------------------------------------------------------


def ref_blur(x: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """Depthwise 2-D Gaussian conv with zero padding, exactly as the authors' gaussian_blur."""
    c = x.shape[1]
    ax = torch.arange(kernel_size, dtype=x.dtype) - kernel_size // 2
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    k = torch.exp(-(xx**2 + yy**2) / (2 * sigma**2))
    k = (k / k.sum()).expand(c, 1, kernel_size, kernel_size)
    return F.conv2d(x, k, padding=kernel_size // 2, groups=c)


def ref_to_grid(x: torch.Tensor, hw, blur) -> torch.Tensor:
    if blur is not None:
        x = ref_blur(x, *blur)
    return F.interpolate(x, size=hw, mode="bicubic", align_corners=False)


def scipy_dct_matrix(n: int) -> torch.Tensor:
    """DCT-II ortho matrix from scipy: column i is the DCT of the unit vector e_i."""
    return torch.from_numpy(scipy.fft.dct(np.eye(n), type=2, norm="ortho", axis=0))


def ref_bins(h: int, w: int, n_bins: int) -> np.ndarray:
    """Bins with exact rational arithmetic (Python integers), no floating-point rounding."""
    corner_sq = max((h - 1) ** 2 + (w - 1) ** 2, 1)
    out = np.empty((h, w), dtype=int)
    for u in range(h):
        for v in range(w):
            k = 0  # largest k with k * r_max <= n * r, i.e. k^2 r_max^2 <= n^2 r^2
            while (k + 1) ** 2 * corner_sq <= n_bins**2 * (u * u + v * v):
                k += 1
            out[u, v] = min(k, n_bins - 1)
    return out


def ref_bands(t: torch.Tensor, n_bins: int, center: str, remove_dc: bool) -> torch.Tensor:
    b, c, h, w = t.shape
    if center == "mean":
        t = t - t.mean(dim=(-2, -1), keepdim=True)
    coeffs = scipy_dct_matrix(h) @ t @ scipy_dct_matrix(w).T
    power = (coeffs**2).mean(dim=1).clamp_min(EPS)
    if remove_dc:
        power = power * (1 - F.one_hot(torch.tensor(0), h * w).view(h, w).double())
    bins = torch.from_numpy(ref_bins(h, w, n_bins))
    cols = [power[:, bins == k].sum(dim=1) / (max(int((bins == k).sum()), 1) + EPS) for k in range(n_bins)]
    return torch.stack(cols, dim=1)


def ref_esm(x, z, *, delta=1.0, n_bins=16, center="mean", remove_dc=True, log_power=True, blur="ref"):
    """Returns (p, q, kl) in float64 with autograd through z."""
    x, z = x.double(), z.double()
    h, w = z.shape[-2:]
    if blur == "ref":
        blur = None if h == 32 else (7, 1.2)
    sx = ref_bands(ref_to_grid(x, (h, w), blur), n_bins, center, remove_dc)
    sz = ref_bands(z, n_bins, center, remove_dc)
    sx = sx * torch.arange(1, n_bins + 1, dtype=torch.float64) ** delta
    if log_power:
        sx, sz = torch.log(1 + sx + EPS), torch.log(1 + sz + EPS)
    p = sx.clamp_min(0) / (sx.clamp_min(0).sum(1, keepdim=True) + EPS)
    q = sz.clamp_min(0) / (sz.clamp_min(0).sum(1, keepdim=True) + EPS)
    kl = (p * (torch.log(p + EPS) - torch.log(q + EPS))).sum(1).mean()
    return p, q, kl


def scipy_block_lowpass(x: np.ndarray, mask_level: int, b: int) -> np.ndarray:
    """Per-block scipy DCT, zero u+v >= 2(b-1)-(k-1), inverse DCT (a loop over blocks)."""
    out = np.empty_like(x)
    u, v = np.meshgrid(np.arange(b), np.arange(b), indexing="ij")
    keep = (u + v) < 2 * (b - 1) - (mask_level - 1)
    for i in range(0, x.shape[-2], b):
        for j in range(0, x.shape[-1], b):
            block = scipy.fft.dctn(x[..., i : i + b, j : j + b], type=2, norm="ortho", axes=(-2, -1))
            out[..., i : i + b, j : j + b] = scipy.fft.idctn(block * keep, type=2, norm="ortho", axes=(-2, -1))
    return out


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)


def rand(rng, *shape, dtype=torch.float32):
    return (torch.rand(*shape, generator=rng, dtype=torch.float64) * 2 - 1).to(dtype)


# ------------------------------------------------------------------------------------------------------
# DCT and binning
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 7, 8, 16, 33])
def test_dct_matrix_equals_scipy(n):
    expected = scipy.fft.dct(np.eye(n), type=2, norm="ortho", axis=0)
    np.testing.assert_allclose(dct_matrix_f64(n).numpy(), expected, rtol=0, atol=1e-13)


def test_dct_2d_equals_scipy_dctn(rng):
    x = rand(rng, 2, 3, 8, 12, dtype=torch.float64)
    expected = scipy.fft.dctn(x.numpy(), type=2, norm="ortho", axes=(-2, -1))
    np.testing.assert_allclose(dct_2d(x).numpy(), expected, rtol=0, atol=1e-12)


# method.md s2.4
BIN_POPULATIONS = {
    (32, 16): [8, 22, 32, 42, 58, 68, 78, 86, 106, 118, 128, 118, 74, 46, 28, 12],
    (16, 16): [3, 5, 7, 13, 13, 15, 23, 19, 23, 31, 31, 31, 19, 11, 9, 3],
    (8, 16): [1, 2, 1, 4, 3, 4, 5, 2, 8, 7, 6, 9, 4, 5, 2, 1],
    (8, 8): [3, 5, 7, 7, 15, 15, 9, 3],
    (4, 16): [1, 0, 0, 2, 0, 1, 0, 2, 2, 0, 1, 4, 0, 2, 0, 1],
}


@pytest.mark.parametrize("grid,n_bins", sorted(BIN_POPULATIONS))
def test_radial_bin_populations_match_method_table(grid, n_bins):
    bins = radial_bin_index(grid, grid, n_bins)
    assert bins.shape == (grid, grid)
    counts = torch.bincount(bins.flatten(), minlength=n_bins).tolist()
    assert counts == BIN_POPULATIONS[(grid, n_bins)]


def test_bins_use_exact_arithmetic_on_bin_edges():
    # On 16x16 with 5 bins, (9, 9) has r / r_max = 9/15 = 0.6 exactly, so 5 r / r_max = 3: bin 3. (Float32
    # evaluation can land just below 3; the exact rule is the documented one.)
    assert radial_bin_index(16, 16, 5)[9, 9] == 3
    for h, w, n in [(16, 16, 5), (8, 8, 7), (64, 64, 7), (32, 32, 31), (16, 12, 16), (1, 1, 4), (1, 9, 3)]:
        np.testing.assert_array_equal(radial_bin_index(h, w, n).numpy(), ref_bins(h, w, n))


def test_radial_band_power_is_mean_power_per_bin():
    # A separable cosine puts all its power in one DCT coefficient (u, v) = (3, 5) of an 8x8 grid, whose
    # corner-normalised bin is floor(16 * sqrt(34) / sqrt(98)) = 9. Every other power is clamped to eps.
    u, v = 3, 5
    grid = torch.arange(8, dtype=torch.float64)
    wave = torch.cos(math.pi * (2 * grid + 1) * u / 16).view(8, 1) * torch.cos(math.pi * (2 * grid + 1) * v / 16)
    x = torch.stack([wave, 2 * wave]).unsqueeze(0)  # (1, 2, 8, 8): channel powers c^2 and 4 c^2
    coeff_sq = 16.0  # ||wave||^2 = 64 / 4 all in one coefficient
    bands = radial_band_power(x, n_bins=16, center="mean", remove_dc=True)
    n_k = BIN_POPULATIONS[(8, 16)]
    # Bin k sums n_k clamped powers (eps each; DC set to 0) and divides by n_k + eps.
    expected = np.array([EPS * (n - (k == 0)) / (n + EPS) for k, n in enumerate(n_k)])
    expected[9] += (2.5 * coeff_sq - EPS) / (n_k[9] + EPS)  # channel mean of c^2 and 4 c^2
    np.testing.assert_allclose(bands[0].numpy(), expected, rtol=1e-12, atol=1e-22)


def test_radial_band_power_empty_bins_are_zero(rng):
    bands = radial_band_power(rand(rng, 2, 4, 4, 4), n_bins=16)
    empty = [k for k, n in enumerate(BIN_POPULATIONS[(4, 16)]) if n == 0]
    assert torch.all(bands[:, empty] == 0)
    assert torch.all(bands[:, [k for k in range(16) if k not in empty and k != 0]] > 0)


@pytest.mark.parametrize("center,remove_dc", [("mean", True), ("none", True), ("mean", False), ("none", False)])
def test_radial_band_power_matches_reference(rng, center, remove_dc):
    z = rand(rng, 2, 5, 16, 12, dtype=torch.float64) * 3 + 0.7
    got = radial_band_power(z, n_bins=16, center=center, remove_dc=remove_dc)
    np.testing.assert_allclose(got.numpy(), ref_bands(z, 16, center, remove_dc).numpy(), rtol=1e-10, atol=1e-20)


# ------------------------------------------------------------------------------------------------------
# Image to the latent grid
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size,hw,blur,expected_blur",
    [
        (64, (16, 16), "reference", (7, 1.2)),
        (64, (32, 32), "reference", None),  # the authors skip the blur iff h == 32
        (64, (32, 8), "reference", None),
        (48, (16, 8), "none", None),
        (48, (16, 8), None, None),
        (64, (32, 32), (5, 0.8), (5, 0.8)),  # an explicit blur is always applied
        (20, (40, 30), (7, 1.2), (7, 1.2)),  # upsampling works too
    ],
)
def test_image_to_latent_grid_equals_unfused_pipeline(rng, size, hw, blur, expected_blur):
    x = rand(rng, 2, 3, size, size)
    got = image_to_latent_grid(x, hw, blur=blur)
    expected = ref_to_grid(x, hw, expected_blur)
    assert got.shape == expected.shape and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=0, atol=2e-6)


@pytest.mark.parametrize(
    "image_size,latent_size,blur",
    [
        (64, 16, "reference"),  # x4 with blur: every image row is read (dense path)
        (64, 32, "reference"),  # x2, blur skipped at h == 32
        (64, 8, (3, 0.7)),  # x8, explicit blur: rows read in windows 8i+1 ... 8i+6 (windowed path)
        (128, 16, None),  # x8 without blur: windows of 4 rows, as f8 at 256 px
        (64, 4, "reference"),  # x16 with blur: windows of 10 rows, as f16 at 256 px
        (96, 12, (5, 1.0)),
        (48, 16, None),  # x3
    ],
)
def test_folded_target_spectrum_equals_unfused_pipeline(rng, image_size, latent_size, blur):
    x = rand(rng, 2, 3, image_size, image_size, dtype=torch.float64)
    z = rand(rng, 2, 4, latent_size, latent_size, dtype=torch.float64)
    p, q = esm_distributions(x, z, delta=0.8, blur=blur)
    p_ref, q_ref, _ = ref_esm(x, z, delta=0.8, blur="ref" if blur == "reference" else blur)
    np.testing.assert_allclose(p.numpy(), p_ref.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(q.numpy(), q_ref.numpy(), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------------------
# ESM loss
# ------------------------------------------------------------------------------------------------------

ESM_OPTIONS = [
    dict(delta=1.0, n_bins=16, center="mean", remove_dc=True, log_power=True),
    dict(delta=0.0, n_bins=16, center="none", remove_dc=False, log_power=True),
    dict(delta=1.2, n_bins=8, center="mean", remove_dc=False, log_power=False),
    dict(delta=0.6, n_bins=5, center="none", remove_dc=True, log_power=False),
]


@pytest.mark.parametrize("options", ESM_OPTIONS)
def test_esm_loss_and_gradient_match_reference(rng, options):
    x = rand(rng, 3, 3, 64, 64)
    z = (rand(rng, 3, 6, 16, 16) * 2).requires_grad_(True)
    loss = esm_loss(x, z, **options)
    loss.backward()
    z_ref = z.detach().double().requires_grad_(True)
    _, _, loss_ref = ref_esm(x, z_ref, **options)
    loss_ref.backward()
    assert loss.dtype == torch.float32 and loss.shape == ()
    assert abs(loss.item() - loss_ref.item()) <= 1e-5 * abs(loss_ref.item())
    grad_err = (z.grad.double() - z_ref.grad).abs().max()
    assert grad_err <= 1e-4 * z_ref.grad.abs().max()


@pytest.mark.parametrize("log_power", [True, False])
@pytest.mark.parametrize("center,remove_dc", [("mean", True), ("none", False)])
def test_esm_gradient_passes_gradcheck(rng, log_power, center, remove_dc):
    # Finite differences in float64 against the autograd gradient of the whole loss.
    x = rand(rng, 2, 3, 32, 32, dtype=torch.float64)
    z = (rand(rng, 2, 3, 8, 8, dtype=torch.float64) * 2).requires_grad_(True)

    def loss(latent):
        return esm_loss(x, latent, n_bins=6, center=center, remove_dc=remove_dc, log_power=log_power)

    assert torch.autograd.gradcheck(loss, (z,), eps=1e-6, atol=1e-9, rtol=1e-6)


@pytest.mark.parametrize("center,remove_dc", [("mean", True), ("mean", False), ("none", False)])
def test_radial_band_power_gradient_matches_reference(rng, center, remove_dc):
    z = (rand(rng, 2, 3, 6, 10, dtype=torch.float64) + 0.3).requires_grad_(True)
    weights = rand(rng, 2, 7, dtype=torch.float64)  # a generic upstream gradient
    (radial_band_power(z, n_bins=7, center=center, remove_dc=remove_dc) * weights).sum().backward()
    z_ref = z.detach().clone().requires_grad_(True)
    (ref_bands(z_ref, 7, center, remove_dc) * weights).sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), z_ref.grad.numpy(), rtol=1e-9, atol=1e-14)
    assert torch.autograd.gradcheck(lambda t: radial_band_power(t, n_bins=7, center=center, remove_dc=remove_dc), (z,))


def test_l2_loss_is_mse_between_distributions(rng):
    x = rand(rng, 2, 3, 32, 32)
    z = rand(rng, 2, 4, 8, 8, dtype=torch.float64).requires_grad_(True)
    z_ref = z.detach().clone().requires_grad_(True)
    p_ref, q_ref, _ = ref_esm(x, z_ref, delta=1.0)
    expected = ((q_ref - p_ref) ** 2).mean()
    expected.backward()
    got = esm_loss(x, z, loss="l2")
    got.backward()
    assert got.item() == pytest.approx(expected.item(), rel=1e-10)
    np.testing.assert_allclose(z.grad.numpy(), z_ref.grad.numpy(), rtol=1e-8, atol=1e-16)
    assert got.item() != pytest.approx(esm_loss(x, z, loss="kl").item(), rel=1e-3)


def test_center_none_equals_center_mean_with_dc_removed(rng):
    # s2.3: an orthonormal DCT moves the spatial mean into the DC coefficient only.
    x, z = rand(rng, 2, 3, 64, 64) + 0.5, rand(rng, 2, 4, 16, 16) - 0.3
    mean = esm_loss(x, z, center="mean", remove_dc=True).item()
    none = esm_loss(x, z, center="none", remove_dc=True).item()
    assert none == pytest.approx(mean, rel=1e-6)
    kept_dc = esm_loss(x, z, center="none", remove_dc=False).item()
    assert abs(kept_dc - mean) > 1e-3 * abs(mean)  # keeping DC really changes the loss


def test_kl_direction_is_target_first(rng):
    x, z = rand(rng, 2, 3, 64, 64), rand(rng, 2, 4, 16, 16) * 4
    p, q = esm_distributions(x, z)
    forward = (p * (torch.log(p + EPS) - torch.log(q + EPS))).sum(1).mean().item()
    backward = (q * (torch.log(q + EPS) - torch.log(p + EPS))).sum(1).mean().item()
    loss = esm_loss(x, z).item()
    assert loss == pytest.approx(forward, rel=1e-6)
    assert loss != pytest.approx(backward, rel=1e-3)


def test_gradient_flows_only_to_the_latent(rng):
    x = rand(rng, 2, 3, 32, 32).requires_grad_(True)
    z = rand(rng, 2, 4, 8, 8).requires_grad_(True)
    p, q = esm_distributions(x, z)
    assert not p.requires_grad and q.requires_grad
    esm_loss(x, z).backward()
    assert x.grad is None
    assert z.grad is not None and z.grad.abs().max() > 0


def test_float64_input_works(rng):
    x, z = rand(rng, 2, 3, 64, 64, dtype=torch.float64), rand(rng, 2, 4, 16, 16, dtype=torch.float64)
    loss = esm_loss(x, z)
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(ref_esm(x, z)[2].item(), rel=1e-12)
    assert radial_band_power(z).dtype == torch.float64


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_inputs_give_finite_float32_loss(rng, dtype):
    x, z = rand(rng, 2, 3, 64, 64, dtype=dtype), rand(rng, 2, 4, 16, 16, dtype=dtype).requires_grad_(True)
    loss = esm_loss(x, z)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert z.grad.dtype == dtype and torch.isfinite(z.grad.float()).all()
    # The island computes in float32 from the (rounded) half inputs: same as upcasting first.
    assert loss.item() == pytest.approx(esm_loss(x.float(), z.detach().float()).item(), rel=1e-6)
    assert image_to_latent_grid(x, (16, 16)).dtype == torch.float32


# ------------------------------------------------------------------------------------------------------
# DSM block low-pass
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level,kept", [(0, 64), (2, 61), (4, 54), (6, 43), (8, 28), (10, 15), (12, 6), (15, 0)])
def test_lowpass_mask_kept_counts(level, kept):
    mask = lowpass_mask(8, level)
    assert mask.shape == (8, 8) and mask.dtype == torch.bool
    assert int(mask.sum()) == kept


@pytest.mark.parametrize("level,kept", [(8, 28), (10, 15), (12, 6)])
def test_block_lowpass_keeps_exactly_the_low_coefficients(rng, level, kept):
    x = rand(rng, 2, 3, 16, 24, dtype=torch.float64)
    out = block_lowpass(x, level).numpy()
    u, v = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    for i in range(0, 16, 8):
        for j in range(0, 24, 8):
            coeffs = scipy.fft.dctn(out[..., i : i + 8, j : j + 8], type=2, norm="ortho", axes=(-2, -1))
            nonzero = np.abs(coeffs).max(axis=(0, 1)) > 1e-9
            assert nonzero.sum() == kept
            assert np.array_equal(nonzero, (u + v) <= 14 - level)


@pytest.mark.parametrize("level,block", [(8, 8), (10, 8), (12, 8), (4, 4), (1, 2)])
def test_block_lowpass_matches_per_block_scipy(rng, level, block):
    x = rand(rng, 2, 3, 16, 8)
    expected = scipy_block_lowpass(x.double().numpy(), level, block)
    np.testing.assert_allclose(block_lowpass(x, level, block).numpy(), expected, rtol=0, atol=2e-6)


def test_block_lowpass_sliced_cpu_path_matches(rng, monkeypatch):
    # Large CPU images are processed in slices of block rows; force tiny slices (3 block rows, uneven split).
    import specmatch.spectral.dsm as dsm

    monkeypatch.setattr(dsm, "_LOWPASS_CHUNK_BYTES", 3 * 8 * 16 * 4)
    x = rand(rng, 2, 3, 16, 16)
    expected = scipy_block_lowpass(x.double().numpy(), 10, 8)
    np.testing.assert_allclose(block_lowpass(x, 10).numpy(), expected, rtol=0, atol=2e-6)


def test_block_lowpass_is_an_orthogonal_projection(rng):
    x = rand(rng, 2, 4, 16, 16, dtype=torch.float64)
    once = block_lowpass(x, 10)
    np.testing.assert_allclose(block_lowpass(once, 10).numpy(), once.numpy(), rtol=0, atol=1e-12)  # idempotent
    residual = x - once
    assert abs(float((residual * once).sum())) < 1e-10  # residual orthogonal to the kept part
    assert float(once.norm()) < float(x.norm())


def test_block_lowpass_level_zero_returns_input():
    x = torch.randn(1, 3, 12, 12)  # not even divisible: level 0 never looks at the blocks
    assert block_lowpass(x, 0) is x


def test_block_lowpass_keeps_dtype_and_gradient(rng):
    x = rand(rng, 1, 2, 8, 8, dtype=torch.bfloat16)
    out = block_lowpass(x, 8)
    assert out.dtype == torch.bfloat16 and out.shape == x.shape
    z = rand(rng, 1, 2, 8, 8).requires_grad_(True)
    block_lowpass(z, 12).sum().backward()
    # d/dz sum(P z) = P 1: a constant block is pure DC, so it passes unchanged.
    np.testing.assert_allclose(z.grad.numpy(), np.ones((1, 2, 8, 8)), atol=1e-6)


# ------------------------------------------------------------------------------------------------------
# Argument errors
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(center="median"), "center must be 'mean' or 'none'"),
        (dict(loss="l1"), "loss must be 'kl' or 'l2'"),
        (dict(blur="gaussian"), "blur must be"),
        (dict(blur=(4, 1.0)), "odd kernel_size"),
        (dict(blur=(7, 0.0)), "sigma > 0"),
        (dict(n_bins=0), "n_bins must be an integer >= 1"),
    ],
)
def test_esm_bad_arguments(rng, kwargs, message):
    x, z = rand(rng, 2, 3, 32, 32), rand(rng, 2, 4, 8, 8)
    with pytest.raises(ValueError, match=message):
        esm_loss(x, z, **kwargs)


def test_esm_shape_errors(rng):
    x, z = rand(rng, 2, 3, 32, 32), rand(rng, 2, 4, 8, 8)
    with pytest.raises(ValueError, match=r"same batch size.*\(3, 3, 32, 32\).*\(2, 4, 8, 8\)"):
        esm_loss(rand(rng, 3, 3, 32, 32), z)
    with pytest.raises(ValueError, match=r"latent must be a 4-D tensor.*\(4, 8, 8\)"):
        esm_loss(x, z[0])
    with pytest.raises(ValueError, match=r"x must be a 4-D tensor"):
        radial_band_power(z[0])
    with pytest.raises(SpecmatchError):  # also a user-facing specmatch error
        esm_distributions(x[0], z)


def test_block_lowpass_bad_arguments(rng):
    x = rand(rng, 1, 3, 20, 16)
    with pytest.raises(ValueError, match=r"divisible by block_size 8.*\(1, 3, 20, 16\)"):
        block_lowpass(x, 8)
    with pytest.raises(ValueError, match=r"mask_level must be an integer in \[0, 15\]"):
        block_lowpass(x[..., :16, :], 16)
    with pytest.raises(ValueError, match="block_size must be an integer >= 1"):
        lowpass_mask(0, 0)
