import pytest
import torch
from PIL import Image

from specmatch.diagnostics.latent_pca import LatentPCA
from toy_autoencoders import PoolAutoencoder


def patterned_images(n: int, side: int = 8) -> torch.Tensor:
    """Channel 0 = 2 x checkerboard, channel 1 = row stripes (orthogonal, zero mean), channel 2 = 0: the
    channel covariance is diag(4, 1, 0) up to one factor."""
    i = torch.arange(side).view(-1, 1)
    j = torch.arange(side).view(1, -1)
    checker = ((-1.0) ** (i + j)).expand(side, side)
    stripes = ((-1.0) ** i).expand(side, side)
    image = torch.stack([0.5 * checker, 0.25 * stripes, torch.zeros(side, side)])
    return image.expand(n, -1, -1, -1).clone()


def test_explained_variance_of_a_latent_with_known_principal_axes(tmp_path):
    diagnostic = LatentPCA(shown=2)
    report = diagnostic.run(PoolAutoencoder(factor=1), patterned_images(3))
    assert report["n"] == 3
    assert report["explained_variance_ratio"] == pytest.approx([0.8, 0.2, 0.0], abs=1e-9)
    assert diagnostic.scalars(report) == pytest.approx({"latent_pca_explained_1": 0.8,
                                                        "latent_pca_explained_2": 0.2,
                                                        "latent_pca_explained_3": 0.0}, abs=1e-9)
    # the first component is the checkerboard channel, the second the stripes channel
    assert abs(report["components"][0][0]) == pytest.approx(1.0)
    assert abs(report["components"][1][1]) == pytest.approx(1.0)
    diagnostic.write_figures(report, tmp_path)
    with Image.open(tmp_path / "latent_pca.png") as png:
        # two rows (images, PCA pictures) of two 8 px images enlarged 12 times (to 96 px), 1 px padding
        assert png.size == (2 * 97 + 1, 2 * 97 + 1)


def test_fewer_than_three_channels_fill_missing_components_with_zero():
    a = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    report = LatentPCA().run(PoolAutoencoder(factor=1, channel_map=a), patterned_images(2))
    assert report["explained_variance_ratio"] == pytest.approx([0.8, 0.2, 0.0], abs=1e-9)
