import pytest
import torch

from specmatch.diagnostics.equivariance import Equivariance
from toy_autoencoders import PoolAutoencoder, blocky_images


def test_pool_autoencoder_is_equivariant_to_scale_half_and_rot90():
    # images constant on 4 x 4 blocks: the x2 pooling and the x2 area downscale are both exact
    images = blocky_images(3, 16, 4)
    diagnostic = Equivariance()
    report = diagnostic.run(PoolAutoencoder(factor=2), images)
    assert report["n"] == 3 and report["settings"]["scales"] == [0.5]
    values = diagnostic.scalars(report)
    assert set(values) == {"equivariance_encoder_scale0.5", "equivariance_decoder_scale0.5",
                           "equivariance_encoder_rot90", "equivariance_decoder_rot90"}
    assert all(v < 1e-6 for v in values.values()), values


def test_a_random_latent_convolution_breaks_encoder_equivariance():
    images = blocky_images(3, 16, 1)
    values = Equivariance().scalars(Equivariance().run(PoolAutoencoder(factor=2, latent_conv=True), images))
    assert values["equivariance_encoder_scale0.5"] > 0.05
    assert values["equivariance_encoder_rot90"] > 0.05


def test_decoder_error_is_the_relative_error_of_the_transformed_reconstruction():
    # pooling loses the detail of pixel-level noise: D(tau E(x)) differs from tau x by exactly that detail
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    report = Equivariance(scales=(), rotations=(2,)).run(PoolAutoencoder(factor=2), images)
    pooled = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(images, 2), scale_factor=2)
    expected = ((pooled - images).flatten(1).norm(dim=1) / images.flatten(1).norm(dim=1)).mean()
    assert report["transforms"]["rot180"]["decoder"] == pytest.approx(float(expected), rel=1e-5)
    assert report["transforms"]["rot180"]["encoder"] < 1e-6
