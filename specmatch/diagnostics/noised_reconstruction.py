"""``noised-reconstruction``: how robust the decoder is to latent noise of the size a denoiser leaves.

With z the posterior mean and std_z its per-channel standard deviation over the analysed images (over images
and positions), decode ``z + sigma * std_z * eps`` (eps seeded standard normal, the same draw for every sigma) and
compare with the images: PSNR and rFID per sigma. sigma = 0 is the plain posterior-mean reconstruction. A
latent whose decoder degrades slowly here forgives the denoiser's residual errors.
Cost per image: one encoder pass, one decoder pass per sigma, Inception on the images once and on the
decodings once per sigma.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .common import (LazyFeatures, curve_figure, decode_latents, encode_latents, frechet_of, mean_psnr,
                     psnr_rfid_panels)


class NoisedReconstruction:
    def __init__(self, sigmas: Sequence[float] = (0.0, 0.1, 0.2, 0.5, 1.0), seed: int = 0, frechet: bool = True,
                 feature_network: str = "", batch_size: int = 32,
                 features: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.sigmas, self.seed, self.frechet = tuple(float(s) for s in sigmas), int(seed), bool(frechet)
        self.batch_size = int(batch_size)
        self.features = LazyFeatures(feature_network, features)

    @torch.no_grad()
    def run(self, autoencoder, images: torch.Tensor) -> dict[str, Any]:
        n = int(images.shape[0])
        settings = {"sigmas": list(self.sigmas), "seed": self.seed, "latent": "posterior mean",
                    "frechet": self.frechet}
        report: dict[str, Any] = {"settings": settings, "n": n, "sigmas": {}}
        if n == 0:
            return report
        z = encode_latents(autoencoder, images, batch_size=self.batch_size, sample=False)
        std_z = z.double().transpose(0, 1).flatten(1).std(dim=1).to(z.dtype).view(1, -1, 1, 1)
        report["latent_channel_std"] = std_z.flatten().tolist()
        use_fid = self.frechet and n >= 2  # a covariance needs two images
        real = None
        if use_fid:
            real = self.features(images)
            settings["feature_network"] = self.features.name
        # one eps for every sigma: the grid scales the same noise, so the curve is not resampled per point
        eps = torch.randn(z.shape, generator=torch.Generator(device="cpu").manual_seed(self.seed))
        eps = eps.to(z.device, z.dtype)
        for sigma in self.sigmas:
            decoded = decode_latents(autoencoder, z + sigma * std_z * eps, batch_size=self.batch_size)
            entry = {"psnr": mean_psnr(decoded, images)}
            if use_fid:
                entry["rfid"] = frechet_of(real, self.features(decoded))
            report["sigmas"][f"{sigma:g}"] = entry
        return report

    figure = "noised_reconstruction.png"

    def write_figures(self, report: dict[str, Any], folder) -> None:
        """PSNR (and rFID) against sigma."""
        sigmas = report.get("sigmas", {})
        if not sigmas:
            return
        keys = sorted(sigmas, key=float)
        curve_figure(Path(folder) / self.figure, [float(s) for s in keys], psnr_rfid_panels(sigmas, keys),
                     xlabel="sigma (x latent std)",
                     title=f"decode(z + sigma std_z eps) vs x, N={report['n']}")

    def scalars(self, report: dict[str, Any]) -> dict[str, float]:
        out = {}
        for sigma, entry in report.get("sigmas", {}).items():
            out[f"noised_psnr_sigma{sigma}"] = entry["psnr"]
            if "rfid" in entry:
                out[f"noised_rfid_sigma{sigma}"] = entry["rfid"]
        return out
