"""The scale-equivariance downsampling pair: sizes, filters, bad factors, floored sizes after a resize."""

import pytest
import torch
import torch.nn.functional as F

from specmatch.core.errors import SpecmatchError
from specmatch.regularizers.scale_equivariance import downsample_pair


def test_downsample_pair_sizes_and_values():
    z = torch.randn(2, 4, 8, 8)
    x = torch.randn(2, 3, 32, 32)
    z2, x2 = downsample_pair(z, x, 2, antialias=False)
    assert z2.shape == (2, 4, 4, 4) and x2.shape == (2, 3, 16, 16)
    # without antialiasing a x2 bilinear shrink is exactly a 2x2 average
    torch.testing.assert_close(z2, F.avg_pool2d(z, 2))
    torch.testing.assert_close(x2, F.avg_pool2d(x, 2))
    z4, x4 = downsample_pair(z, x, 4)
    assert z4.shape == (2, 4, 2, 2) and x4.shape == (2, 3, 8, 8)


def test_downsample_pair_antialias_is_a_triangle_filter():
    """Antialiased bilinear x2 = separable [1, 3, 3, 1] / 8 taps around each output (checked away from borders)."""
    x = torch.randn(1, 1, 16, 16)
    _, small = downsample_pair(torch.randn(1, 1, 4, 4), x, 2, antialias=True)
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8
    kernel = (taps[:, None] * taps[None, :]).view(1, 1, 4, 4)
    by_hand = F.conv2d(x, kernel, stride=2, padding=1)  # output i covers pixels 2i-1 .. 2i+2
    torch.testing.assert_close(small[..., 1:-1, 1:-1], by_hand[..., 1:-1, 1:-1], rtol=1e-5, atol=1e-6)


def test_downsample_pair_keeps_constants():
    z = torch.full((1, 2, 8, 8), 0.3)
    x = torch.full((1, 3, 32, 32), -0.7)
    for antialias in (True, False):
        z4, x4 = downsample_pair(z, x, 4, antialias=antialias)
        torch.testing.assert_close(z4, torch.full_like(z4, 0.3))
        torch.testing.assert_close(x4, torch.full_like(x4, -0.7))


@pytest.mark.parametrize("factor", [3, 1, 0, -2, 2.0, True])
def test_downsample_pair_rejects_bad_factors(factor):
    with pytest.raises(SpecmatchError, match="factor"):
        downsample_pair(torch.randn(1, 4, 8, 8), torch.randn(1, 3, 32, 32), factor)


def test_downsample_pair_with_downsample_factor_floors_like_eq_pair():
    z, x = torch.randn(2, 4, 8, 8), torch.randn(2, 3, 32, 32)
    for factor in (2, 4):  # divisible: the same as the strict form
        for a, b in zip(downsample_pair(z, x, factor), downsample_pair(z, x, factor, downsample_factor=4)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    # a 7x5 latent (e.g. after an EQ-VAE resize) shrunk by 2 -> 3x2, image exactly 4 times that
    z, x = torch.randn(1, 4, 7, 5), torch.randn(1, 3, 28, 20)
    z2, x2 = downsample_pair(z, x, 2, antialias=False, downsample_factor=4)
    assert z2.shape[-2:] == (3, 2) and x2.shape[-2:] == (12, 8)
    torch.testing.assert_close(z2, F.interpolate(z, size=(3, 2), mode="bilinear", align_corners=False))
    assert downsample_pair(z, x, 8, downsample_factor=4)[0].shape[-2:] == (1, 1)  # never below 1
    with pytest.raises(SpecmatchError, match="not divisible"):
        downsample_pair(z, x, 2)
    with pytest.raises(SpecmatchError, match="downsampling factor 2"):
        downsample_pair(z, x, 2, downsample_factor=2)
