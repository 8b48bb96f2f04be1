import math

import pytest
import torch

from specmatch.diagnostics.channel_eigenspectrum import ChannelEigenspectrum, condition_number, effective_rank
from toy_autoencoders import PoolAutoencoder


def test_effective_rank_and_condition_number_of_known_spectra():
    assert effective_rank(torch.tensor([2.0, 2.0, 2.0, 2.0])) == pytest.approx(4.0)
    assert effective_rank(torch.tensor([1.0, 1.0, 0.0, 0.0])) == pytest.approx(2.0)
    assert effective_rank(torch.tensor([5.0, 0.0, 0.0])) == pytest.approx(1.0)
    # p = (3/4, 1/4): exp(-(0.75 ln 0.75 + 0.25 ln 0.25))
    assert effective_rank(torch.tensor([3.0, 1.0])) == pytest.approx(math.exp(-(0.75 * math.log(0.75)
                                                                                + 0.25 * math.log(0.25))))
    assert condition_number(torch.tensor([8.0, 2.0, 0.5])) == pytest.approx(16.0)
    assert condition_number(torch.tensor([1.0, 0.0])) == math.inf


def test_latent_channels_built_with_a_known_covariance():
    # latent = A x per pixel on images whose channel covariance is S: the latent covariance is A S A^T
    g = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, 8, 8, generator=g) * 2 - 1
    a = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.5], [1.0, 1.0, 0.0]])
    report = ChannelEigenspectrum(latent="mean").run(PoolAutoencoder(factor=1, channel_map=a), images)
    s = torch.cov(images.double().transpose(0, 1).flatten(1))
    expected = torch.linalg.eigvalsh(a.double() @ s @ a.double().T).flip(0)
    assert report["n"] == 6 and report["channels"] == 4 and report["positions"] == 6 * 64
    assert report["eigenvalues"][:3] == pytest.approx(expected[:3].tolist(), rel=1e-9)
    # rank 3 by construction (4 channels from 3): the smallest eigenvalue is 0 up to rounding
    assert report["eigenvalues"][3] < 1e-10 * report["eigenvalues"][0]
    assert 1.0 < report["effective_rank"] < 3.0
    # singular covariance: the condition number is huge from rounding, or undefined (then not a scalar)
    scalars = ChannelEigenspectrum().scalars(report)
    if report["condition_number"] is None:
        assert set(scalars) == {"channel_effective_rank"}
    else:
        assert report["condition_number"] > 1e9 and scalars["channel_condition_number"] == report["condition_number"]


def test_well_conditioned_channels_report_their_condition_number():
    # latent channels = the image channels scaled by 1, 2 and 4: a full-rank covariance A S A^T
    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    a = torch.diag(torch.tensor([1.0, 2.0, 4.0]))
    report = ChannelEigenspectrum(latent="mean").run(PoolAutoencoder(factor=1, channel_map=a), images)
    s = torch.cov(images.double().transpose(0, 1).flatten(1))
    lam = torch.linalg.eigvalsh(a.double() @ s @ a.double().T)
    scalars = ChannelEigenspectrum().scalars(report)
    assert scalars["channel_condition_number"] == pytest.approx(float(lam.max() / lam.min()), rel=1e-9)
    assert scalars["channel_effective_rank"] == pytest.approx(effective_rank(lam), rel=1e-9)


def test_the_eigenvalues_are_drawn(tmp_path):
    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    diagnostic = ChannelEigenspectrum(latent="mean")
    diagnostic.write_figures(diagnostic.run(PoolAutoencoder(factor=1), images), tmp_path)
    assert (tmp_path / "channel_eigenspectrum.png").stat().st_size > 1000
