"""``lowpass-rfid``: how gracefully the decoder degrades when the latent loses its high frequencies (the DSM
authors' diagnostic, method.md s3).

For each mask level k, the images and the posterior-mean latents are low-passed with DSM's shared block-DCT
mask (``spectral.block_lowpass``: per b x b block, the k highest anti-diagonals of DCT coefficients are
zeroed); then FID (Inception features) and PSNR of ``decode(lowpass_k(z))`` against ``lowpass_k(x)``. A
decoder that keeps frequency-to-frequency correspondence turns a band-limited latent into an equally
band-limited image. FID is biased at small N: compare only at equal N (in the report).
Cost per image: one encoder pass, one decoder pass per level, one Inception pass for the real set and one
per level for the decoded set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .common import (LazyFeatures, curve_figure, decode_latents, encode_latents, frechet_of, mean_psnr,
                     psnr_rfid_panels)


class LowpassRFID:
    def __init__(self, levels: Sequence[int] = (4,), block_size: int = 8, frechet: bool = True,
                 feature_network: str = "", batch_size: int = 32,
                 features: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.levels, self.block_size, self.frechet = tuple(int(k) for k in levels), int(block_size), bool(frechet)
        self.batch_size = int(batch_size)
        self.features = LazyFeatures(feature_network, features)

    @torch.no_grad()
    def run(self, autoencoder, images: torch.Tensor) -> dict[str, Any]:
        from specmatch.spectral import block_lowpass

        n = int(images.shape[0])
        settings = {"levels": list(self.levels), "block_size": self.block_size, "latent": "posterior mean",
                    "frechet": self.frechet}
        report: dict[str, Any] = {"settings": settings, "n": n, "levels": {}}
        if n == 0:
            return report
        z = encode_latents(autoencoder, images, batch_size=self.batch_size, sample=False)
        b = self.block_size
        if any(side % b for side in (*z.shape[-2:], *images.shape[-2:])):
            report["skipped"] = (f"latent {tuple(z.shape[-2:])} or image {tuple(images.shape[-2:])} sides are not "
                                 f"divisible by block_size {b}")
            return report
        use_fid = self.frechet and n >= 2  # a covariance needs two images
        for k in self.levels:
            x_low = block_lowpass(images.float(), k, b)
            decoded = decode_latents(autoencoder, block_lowpass(z, k, b), batch_size=self.batch_size)
            entry = {"psnr": mean_psnr(decoded, x_low)}
            if use_fid:
                entry["rfid"] = frechet_of(self.features(x_low), self.features(decoded))
                settings["feature_network"] = self.features.name
            report["levels"][str(k)] = entry
        return report

    figure = "lowpass_rfid.png"

    def write_figures(self, report: dict[str, Any], folder) -> None:
        """PSNR (and rFID) against the mask level k."""
        levels = report.get("levels", {})
        if not levels:
            return
        ks = sorted(levels, key=int)
        curve_figure(Path(folder) / self.figure, [int(k) for k in ks], psnr_rfid_panels(levels, ks),
                     xlabel="mask level k",
                     title=f"decode(lowpass_k z) vs lowpass_k x, block {report['settings']['block_size']}, "
                           f"N={report['n']}")

    def scalars(self, report: dict[str, Any]) -> dict[str, float]:
        out = {}
        for k, entry in report.get("levels", {}).items():
            out[f"lowpass_psnr_k{k}"] = entry["psnr"]
            if "rfid" in entry:
                out[f"lowpass_rfid_k{k}"] = entry["rfid"]
        return out
