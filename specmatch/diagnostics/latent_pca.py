"""``latent-pca``: the latent shown as a picture (the authors' latent figures).

The posterior-mean latents of all analysed images are pooled over images and positions (N*h*w rows of C
channels, centred); the three leading principal components of the channel covariance (float64) map each
latent position to R, G, B. Each component is scaled to [0, 1] by its 1st and 99th percentile over all
images, so colours compare across images of one run. ``latent_pca.png``: a row of images above the row of
their latent PCA pictures (nearest-upsampled to the image size; images under 96 px are enlarged). Scalars:
the explained-variance ratio of each of the three components. Cost: one encoder pass per image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .common import encode_latents


def principal_components(latents: torch.Tensor, k: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(components (k, C), explained-variance ratios (k,), mean (C,)) of the channels of latents (N, C, h, w),
    float64. A component's sign is fixed so its largest-magnitude loading is positive; with C < k the missing
    components are zero."""
    rows = latents.double().transpose(0, 1).flatten(1)  # (C, M)
    mean = rows.mean(dim=1)
    values, vectors = torch.linalg.eigh(torch.cov(rows))
    values, vectors = values.flip(0).clamp_min(0), vectors.flip(1).T  # descending; rows are components
    signs = torch.sign(vectors.gather(1, vectors.abs().argmax(dim=1, keepdim=True)))
    vectors = vectors * torch.where(signs == 0, torch.ones_like(signs), signs)
    total = values.sum()
    ratios = values / total if total > 0 else torch.zeros_like(values)
    c = latents.shape[1]
    comps = torch.zeros(k, c, dtype=torch.float64, device=latents.device)
    out_ratios = torch.zeros(k, dtype=torch.float64, device=latents.device)
    comps[:min(k, c)], out_ratios[:min(k, c)] = vectors[:k], ratios[:k]
    return comps, out_ratios, mean


def pca_rgb(latents: torch.Tensor, components: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """(N, 3, h, w) in [0, 1]: the latents projected on three components, each scaled by its 1st..99th
    percentile over all images."""
    centred = latents.double() - mean.view(1, -1, 1, 1)
    projected = torch.einsum("kc,nchw->nkhw", components, centred)
    flat = projected.transpose(0, 1).flatten(1)
    lo, hi = flat.quantile(0.01, dim=1), flat.quantile(0.99, dim=1)
    scale = (hi - lo).clamp_min(1e-12)
    return ((projected - lo.view(1, -1, 1, 1)) / scale.view(1, -1, 1, 1)).clamp(0, 1).float()


MIN_SHOWN_SIDE = 96  # pixels: smaller images are enlarged (nearest) in the figure


class LatentPCA:
    figure = "latent_pca.png"

    def __init__(self, shown: int = 8, batch_size: int = 32):
        self.shown, self.batch_size = int(shown), int(batch_size)
        self._pictures: tuple[torch.Tensor, torch.Tensor] | None = None  # (images, rgb) of the last run

    @torch.no_grad()
    def run(self, autoencoder, images: torch.Tensor) -> dict[str, Any]:
        n = int(images.shape[0])
        report: dict[str, Any] = {"settings": {"latent": "posterior mean", "components": 3, "shown": self.shown,
                                               "scaling": "1st..99th percentile per component"}, "n": n}
        self._pictures = None
        if n == 0:
            return report
        z = encode_latents(autoencoder, images, batch_size=self.batch_size, sample=False)
        components, ratios, mean = principal_components(z)
        report.update({"channels": int(z.shape[1]), "explained_variance_ratio": ratios.tolist(),
                       "components": components.tolist()})
        shown = min(self.shown, n)
        self._pictures = (images[:shown].float().cpu(), pca_rgb(z, components, mean)[:shown].cpu())
        return report

    def scalars(self, report: dict[str, Any]) -> dict[str, float]:
        return {f"latent_pca_explained_{i + 1}": r for i, r in enumerate(report.get("explained_variance_ratio", []))}

    def write_figures(self, report: dict[str, Any], folder: Path) -> None:
        import torch.nn.functional as F
        from torchvision.utils import save_image

        if self._pictures is None:
            return
        images, rgb = self._pictures
        images = (images.expand(-1, 3, -1, -1) + 1) / 2
        zoom = max(1, MIN_SHOWN_SIDE // images.shape[-1])  # small images are enlarged to be readable
        if zoom > 1:
            images = F.interpolate(images, scale_factor=zoom, mode="nearest")
        rgb = F.interpolate(rgb, size=images.shape[-2:], mode="nearest")
        save_image(torch.cat([images.clamp(0, 1), rgb]), str(Path(folder) / self.figure), nrow=images.shape[0],
                   padding=1)
