"""lowpass-rfid and noised-reconstruction with a stand-in feature network (the Inception file is exercised
by the end-to-end test and by the missing-file case)."""

import pytest
import torch

from specmatch.core.errors import WeightsError
from specmatch.diagnostics.lowpass_rfid import LowpassRFID
from specmatch.diagnostics.noised_reconstruction import NoisedReconstruction
from specmatch.metrics.frechet import feature_statistics, frechet_distance, frechet_distance_of_features
from specmatch.metrics.reconstruction import psnr
from specmatch.spectral import block_lowpass
from toy_autoencoders import PoolAutoencoder, small_features


def images(n=6, side=16, seed=0):
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_gram_fid_matches_the_covariance_fid():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(7, 20, generator=g, dtype=torch.float64)
    b = torch.randn(9, 20, generator=g, dtype=torch.float64) + 0.3
    (m1, s1), (m2, s2) = feature_statistics(a), feature_statistics(b)
    assert frechet_distance_of_features(a, b) == pytest.approx(frechet_distance(m1, s1, m2, s2, method="eigh"),
                                                                rel=1e-6)
    assert frechet_distance_of_features(a, a) == pytest.approx(0.0, abs=1e-9)


def test_lowpass_of_an_identity_autoencoder_is_exact():
    # encoder = decoder = identity: decode(lowpass_k(z)) is lowpass_k(x), so rFID = 0
    x = images()
    diagnostic = LowpassRFID(levels=(0, 4, 8), block_size=8, features=small_features)
    report = diagnostic.run(PoolAutoencoder(factor=1), x)
    assert report["n"] == 6 and report["settings"]["levels"] == [0, 4, 8]
    for k in ("0", "4", "8"):
        assert report["levels"][k]["rfid"] == pytest.approx(0.0, abs=1e-8)
        assert report["levels"][k]["psnr"] > 100
    assert set(diagnostic.scalars(report)) == {f"lowpass_{m}_k{k}" for m in ("psnr", "rfid") for k in (0, 4, 8)}


def test_lowpass_of_a_pooling_autoencoder_against_direct_computation():
    x = images(side=32)
    ae = PoolAutoencoder(factor=4)  # latent 8 x 8: one DCT block
    report = LowpassRFID(levels=(4,), features=small_features).run(ae, x)
    x_low = block_lowpass(x, 4, 8)
    decoded = ae.decode(block_lowpass(ae.encode(x).mean, 4, 8))
    assert report["levels"]["4"]["psnr"] == pytest.approx(float(psnr(decoded, x_low).mean()), rel=1e-5)
    assert report["levels"]["4"]["rfid"] > 1e-3


def test_lowpass_skips_a_latent_the_block_does_not_divide():
    report = LowpassRFID(levels=(4,), features=small_features).run(PoolAutoencoder(factor=4), images(side=16))
    assert "skipped" in report and report["levels"] == {}


def test_lowpass_without_the_inception_file_names_it(tmp_path):
    diagnostic = LowpassRFID(levels=(4,), feature_network=str(tmp_path / "missing.pt"))
    with pytest.raises(WeightsError, match="missing.pt"):
        diagnostic.run(PoolAutoencoder(factor=1), images(n=2))


def test_noised_reconstruction_at_sigma_zero_is_the_plain_reconstruction():
    x = images()
    ae = PoolAutoencoder(factor=2)
    diagnostic = NoisedReconstruction(sigmas=(0.0, 0.5, 2.0), features=small_features)
    report = diagnostic.run(ae, x)
    plain = ae.decode(ae.encode(x).mean)
    assert report["sigmas"]["0"]["psnr"] == pytest.approx(float(psnr(plain, x).mean()), rel=1e-6)
    (m1, s1), (m2, s2) = feature_statistics(small_features(x)), feature_statistics(small_features(plain))
    assert report["sigmas"]["0"]["rfid"] == pytest.approx(frechet_distance(m1, s1, m2, s2, method="eigh"), rel=1e-5)
    # more latent noise, worse reconstruction
    assert report["sigmas"]["0"]["psnr"] > report["sigmas"]["0.5"]["psnr"] > report["sigmas"]["2"]["psnr"]
    assert report["sigmas"]["2"]["rfid"] > report["sigmas"]["0"]["rfid"]
    assert len(report["latent_channel_std"]) == 3 and report["n"] == 6
    assert "noised_rfid_sigma0.5" in diagnostic.scalars(report)


def test_noised_reconstruction_is_seeded():
    x, ae = images(), PoolAutoencoder(factor=2)
    a = NoisedReconstruction(sigmas=(1.0,), frechet=False).run(ae, x)
    b = NoisedReconstruction(sigmas=(1.0,), frechet=False).run(ae, x)
    c = NoisedReconstruction(sigmas=(1.0,), seed=1, frechet=False).run(ae, x)
    assert a == b and a != c and "rfid" not in a["sigmas"]["1"]


def test_the_sweeps_draw_their_curves(tmp_path):
    from PIL import Image

    ae = PoolAutoencoder(factor=2)
    lowpass = LowpassRFID(levels=(0, 4, 8), block_size=8, features=small_features)
    lowpass.write_figures(lowpass.run(ae, images()), tmp_path)
    noised = NoisedReconstruction(sigmas=(0.0, 0.5), features=small_features)
    noised.write_figures(noised.run(ae, images()), tmp_path)
    for name in ("lowpass_rfid.png", "noised_reconstruction.png"):
        with Image.open(tmp_path / name) as png:  # two panels (PSNR and rFID) side by side
            assert png.size[0] > 1.8 * png.size[1]
            assert len(png.convert("L").getcolors(maxcolors=4096) or range(4097)) > 10  # drawn, not blank
