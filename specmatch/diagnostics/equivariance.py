"""``equivariance``: does the autoencoder commute with simple spatial transforms tau?

* encoder side: ``||E(tau x) - tau E(x)|| / ||tau E(x)||``
* decoder side: ``||D(tau E(x)) - tau x|| / ||tau x||``

per image (Frobenius norms, posterior means), averaged over images. tau is EQ-VAE's
:class:`~specmatch.regularizers.eqvae.SpatialTransform`, applied to latent and image pairs by
:func:`~specmatch.regularizers.eqvae.eq_pair` exactly as the EQ-VAE training term does: scale 1/2 is bilinear
without antialiasing (``align_corners=False``), which at exactly 1/2 is the 2 x 2 area average; rot90 is one
clockwise quarter turn. Sources: EQ-VAE (Kouzelis et al. 2025) and scale equivariance (Skorokhodov et al.
2025). Cost per image and transform: two encoder passes (one shared) and one decoder pass.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .common import decode_latents, encode_latents, relative_error


def transform_name(scale: float, rot90: int) -> str:
    """``scale0.5``, ``rot90``, or both joined for a combined transform."""
    parts = ([f"scale{scale:g}"] if scale != 1 else []) + ([f"rot{90 * rot90}"] if rot90 % 4 else [])
    return "_".join(parts) or "identity"


class Equivariance:
    def __init__(self, scales: Sequence[float] = (0.5,), rotations: Sequence[int] = (1,), antialias: bool = False,
                 batch_size: int = 32):
        self.scales, self.rotations = tuple(float(s) for s in scales), tuple(int(r) for r in rotations)
        self.antialias, self.batch_size = bool(antialias), int(batch_size)

    def transforms(self):
        from specmatch.regularizers.eqvae import SpatialTransform

        return ([SpatialTransform(scale=s) for s in self.scales]
                + [SpatialTransform(rot90=r) for r in self.rotations])

    @torch.no_grad()
    def run(self, autoencoder, images: torch.Tensor) -> dict[str, Any]:
        from specmatch.regularizers.eqvae import eq_pair

        n = int(images.shape[0])
        settings = {"scales": list(self.scales), "rotations": list(self.rotations), "latent": "posterior mean",
                    "resize": "bilinear, antialias" if self.antialias else
                    "bilinear, no antialias (= 2x2 area average at scale 1/2)"}
        report: dict[str, Any] = {"settings": settings, "n": n, "transforms": {}}
        if n == 0:
            return report
        x = images.float()
        z = encode_latents(autoencoder, x, batch_size=self.batch_size, sample=False)
        factor = x.shape[-1] // z.shape[-1]
        for tau in self.transforms():
            z_t, x_t = eq_pair(z, x, tau, factor, antialias=self.antialias)
            encoded = encode_latents(autoencoder, x_t, batch_size=self.batch_size, sample=False)
            decoded = decode_latents(autoencoder, z_t, batch_size=self.batch_size)
            report["transforms"][transform_name(tau.scale, tau.rot90)] = {
                "encoder": relative_error(encoded, z_t), "decoder": relative_error(decoded, x_t)}
        return report

    def scalars(self, report: dict[str, Any]) -> dict[str, float]:
        out = {}
        for name, entry in report.get("transforms", {}).items():
            out[f"equivariance_encoder_{name}"] = entry["encoder"]
            out[f"equivariance_decoder_{name}"] = entry["decoder"]
        return out
