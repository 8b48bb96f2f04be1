"""EQ-VAE's scale-and-rotate transforms: sets, sampling, sizes, rotation direction, commuting with pooling."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from specmatch.core.errors import SpecmatchError
from specmatch.regularizers.eqvae import EQ_ROTATIONS, EQ_SCALES, SpatialTransform, eq_pair, sample_eq_transform


def smooth_images(batch=2, size=32, seed=0):
    """Low-frequency images (sums of a few long-wavelength sinusoids) in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    out = torch.zeros(batch, 3, size, size)
    for _ in range(3):
        fy, fx, phase = (torch.rand(3, generator=g) * torch.tensor([1.5, 1.5, 6.28])).tolist()
        amp = torch.rand(batch, 3, 1, 1, generator=g) * 0.3
        out += amp * torch.cos(2 * torch.pi * (fy * yy + fx * xx) / size + phase)
    return out.clamp(-1, 1)


def test_eq_sets():
    assert len(EQ_SCALES) == 24
    assert EQ_SCALES[0] == 8 / 32 and EQ_SCALES[-1] == 31 / 32
    assert EQ_ROTATIONS == (1, 2, 3)


def test_sampling_frequencies_and_reproducibility():
    g = torch.Generator().manual_seed(123)
    draws = [sample_eq_transform(g) for _ in range(4800)]
    rotations = np.array([t.rot90 for t in draws])
    scales = np.array([t.scale for t in draws])
    for k in (1, 2, 3):
        assert abs((rotations == k).mean() - 1 / 3) < 0.03
    assert set(scales.tolist()) <= set(EQ_SCALES)
    counts = np.array([(scales == s).sum() for s in EQ_SCALES])
    assert counts.min() > 200 - 60 and counts.max() < 200 + 60  # expected 200 each, std ~14
    # rotation and scale are drawn independently: no correlation
    assert abs(np.corrcoef(rotations, scales)[0, 1]) < 0.05
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert [sample_eq_transform(g1) for _ in range(20)] == [sample_eq_transform(g2) for _ in range(20)]


def test_rotation_is_clockwise_like_eqvae():
    image = torch.zeros(1, 1, 4, 6)
    image[0, 0, 0, 5] = 1.0  # top-right corner
    image[0, 0, 1, 0] = 2.0
    out = SpatialTransform(scale=1.0, rot90=1).apply(image)
    expected = np.rot90(image[0, 0].numpy(), k=-1)  # numpy: negative k = clockwise
    np.testing.assert_array_equal(out[0, 0].numpy(), expected)
    assert out[0, 0, 5, 3] == 1.0  # top-right -> bottom-right
    for k in (2, 3):
        np.testing.assert_array_equal(SpatialTransform(rot90=k).apply(image)[0, 0].numpy(),
                                      np.rot90(image[0, 0].numpy(), k=-k))


def test_sizes_floor_like_interpolate_scale_factor():
    t = SpatialTransform(scale=11 / 32, rot90=0)
    assert t.resized_size(8, 8) == (2, 2)  # floor(2.75)
    z = torch.randn(1, 4, 8, 8)
    assert t.apply(z).shape[-2:] == F.interpolate(z, scale_factor=11 / 32, mode="bilinear").shape[-2:]
    assert SpatialTransform(scale=8 / 32).resized_size(2, 2) == (1, 1)  # never below 1


@pytest.mark.parametrize("scale", [11 / 32, 0.5, 25 / 32])
def test_eq_pair_keeps_image_exactly_f_times_latent(scale):
    z = torch.randn(2, 4, 8, 6)
    x = torch.randn(2, 3, 32, 24)
    z_t, x_t = eq_pair(z, x, SpatialTransform(scale=scale, rot90=1), downsample_factor=4)
    h, w = int(8 * scale), int(6 * scale)
    assert z_t.shape == (2, 4, w, h)  # rotated: sides swap
    assert x_t.shape == (2, 3, 4 * w, 4 * h)


def test_eq_pair_matches_eqvae_code_when_sizes_are_exact():
    """At EQ-VAE's exact sizes, the pair equals interpolate(scale_factor) + rot90(dims=[-1, -2])."""
    z = torch.randn(1, 4, 32, 32)
    x = torch.randn(1, 3, 256, 256)
    t = SpatialTransform(scale=20 / 32, rot90=3)
    z_t, x_t = eq_pair(z, x, t, downsample_factor=8)
    ref_z = torch.rot90(F.interpolate(z, scale_factor=20 / 32, mode="bilinear", align_corners=False), 3, dims=[-1, -2])
    ref_x = torch.rot90(F.interpolate(x, scale_factor=20 / 32, mode="bilinear", align_corners=False), 3, dims=[-1, -2])
    torch.testing.assert_close(z_t, ref_z)
    torch.testing.assert_close(x_t, ref_x)


@pytest.mark.parametrize("rot", [1, 2, 3])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_transform_commutes_with_pooling_exactly(scale, rot):
    """Latent = 4x4 average pool of the image. Rotations, and a x0.5 bilinear resize (= 2x2 averaging), commute
    with pooling exactly."""
    x = torch.randn(2, 3, 32, 32)
    z = F.avg_pool2d(x, 4)
    z_t, x_t = eq_pair(z, x, SpatialTransform(scale=scale, rot90=rot), downsample_factor=4)
    torch.testing.assert_close(F.avg_pool2d(x_t, 4), z_t, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scale", [EQ_SCALES[4], EQ_SCALES[12], EQ_SCALES[20]])
def test_transform_approximately_commutes_on_smooth_images(scale):
    x = smooth_images(size=64)
    z = F.avg_pool2d(x, 4)
    z_t, x_t = eq_pair(z, x, SpatialTransform(scale=scale, rot90=1), downsample_factor=4)
    rms = lambda t: t.pow(2).mean().sqrt().item()  # noqa: E731
    error = rms(F.avg_pool2d(x_t, 4) - z_t)
    # control: the image rotated the other way does not match
    wrong = rms(F.avg_pool2d(torch.rot90(x_t, 2, dims=(-2, -1)), 4) - z_t)
    assert error < 0.05 * rms(z_t)
    assert wrong > 10 * error


def test_eq_pair_rejects_misaligned_sizes():
    with pytest.raises(SpecmatchError, match="downsampling factor"):
        eq_pair(torch.randn(1, 4, 8, 8), torch.randn(1, 3, 30, 32), SpatialTransform(0.5, 1), 4)
    with pytest.raises(SpecmatchError):
        SpatialTransform(scale=0.0)
