import torch

from specmatch.diagnostics.latent_spectrum import LatentSpectrum
from toy_autoencoders import PoolAutoencoder


class ImageOnLatentGrid(PoolAutoencoder):
    """latent = the image mapped to the latent grid the way ESM maps it: the delta = 0 target itself."""

    def encode(self, x):
        from specmatch.nn.posterior import DeterministicPosterior
        from specmatch.spectral import image_to_latent_grid

        return DeterministicPosterior(image_to_latent_grid(x, (x.shape[-2] // 2, x.shape[-1] // 2)))


def test_a_latent_equal_to_the_target_has_kl_zero(tmp_path):
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    diagnostic = LatentSpectrum(deltas=(0.0, 1.0), n_bins=8)
    report = diagnostic.run(ImageOnLatentGrid(factor=2), x)
    assert report["n"] == 4 and report["settings"]["deltas"] == [0.0, 1.0]
    assert report["targets"]["0"]["kl_to_latent"] < 1e-6
    assert report["targets"]["1"]["kl_to_latent"] > 1e-3
    scalars = diagnostic.scalars(report)
    assert scalars["spectrum_kl_delta0"] < 1e-6 and "spectrum_latent_slope" in scalars
    diagnostic.write_figures(report, tmp_path)
    assert (tmp_path / "spectrum.png").stat().st_size > 1000
