"""The pixel-mse metric and the latent-channel-variance diagnostic (torch; imported only when built).

Contracts (docs/evaluation.md): a per-image metric has ``per_image(real, fake) -> (B,)`` on image pairs in
[-1, 1] and the engine reports the mean over all pairs as ``recon_<name>``; a diagnostic has
``run(autoencoder, images) -> report`` (a JSON-able dict with its settings and ``n_images``) and
``scalars(report) -> {name: float}`` for ``metrics.json``.
"""

from __future__ import annotations

import torch


class PixelMSE:
    """Mean squared error of each image pair, over channels and pixels (images in [-1, 1])."""

    def per_image(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return (real.float() - fake.float()).pow(2).flatten(1).mean(dim=1)


class ChannelVariance:
    """Per latent channel: mean and variance of the encoder's posterior mean over images and positions.

    A latent whose channels have very unequal variances spends its capacity unevenly; the scalars report the
    smallest and largest channel variance and their ratio.
    """

    def __init__(self, *, batch_size: int = 32):
        self.batch_size = batch_size

    def run(self, autoencoder, images: torch.Tensor) -> dict:
        latents = torch.cat([autoencoder.encode(images[i:i + self.batch_size]).mean.float()
                             for i in range(0, images.shape[0], self.batch_size)])
        per_channel = latents.transpose(0, 1).flatten(1)             # (C, B * h * w)
        variance = per_channel.var(dim=1, unbiased=False)
        return {"n_images": int(images.shape[0]), "batch_size": self.batch_size,
                "latent_shape": list(latents.shape[1:]), "mean": per_channel.mean(dim=1).tolist(),
                "variance": variance.tolist()}

    def scalars(self, report: dict) -> dict[str, float]:
        variance = report["variance"]
        low, high = min(variance), max(variance)
        scalars = {"channel_var_min": low, "channel_var_max": high}
        if low > 0:   # a dead channel (variance 0) has no finite ratio; min = 0 already says it
            scalars["channel_var_ratio"] = high / low
        return scalars
