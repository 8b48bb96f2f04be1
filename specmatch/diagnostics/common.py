"""Helpers the diagnostics share: batched encoding and decoding, per-image PSNR, and rFID between two image
sets with the bundled Inception network (``metrics/inception.py``) and ``metrics/frechet.py``."""

from __future__ import annotations

import functools
from typing import Callable

import torch


@torch.no_grad()
def encode_latents(autoencoder, images: torch.Tensor, *, batch_size: int = 32, sample: bool = True,
                   seed: int = 0) -> torch.Tensor:
    """Posterior samples (what ESM regularises and the denoiser sees) or means, batch by batch."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    out = []
    for start in range(0, images.shape[0], batch_size):
        post = autoencoder.encode(images[start:start + batch_size])
        if sample:
            noise = torch.randn(post.mean.shape, generator=g).to(post.mean.device, post.mean.dtype)
            out.append(post.mean + post.std * noise)
        else:
            out.append(post.mean)
    return torch.cat(out)


@torch.no_grad()
def decode_latents(autoencoder, latents: torch.Tensor, *, batch_size: int = 32) -> torch.Tensor:
    """Decoded images (float32), batch by batch; no clamp."""
    return torch.cat([autoencoder.decode(latents[s:s + batch_size]).float()
                      for s in range(0, latents.shape[0], batch_size)])


def mean_psnr(fake: torch.Tensor, real: torch.Tensor) -> float:
    """Mean over images of the per-image PSNR (``metrics/reconstruction.py``, images in [-1, 1])."""
    from specmatch.metrics.reconstruction import psnr

    return float(psnr(fake.float(), real.float()).mean())


def relative_error(estimate: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over images of ||estimate - target|| / ||target|| (Frobenius norm per image, float64)."""
    diff = (estimate.double() - target.double()).flatten(1).norm(dim=1)
    return float((diff / target.double().flatten(1).norm(dim=1).clamp_min(1e-12)).mean())


FeatureFn = Callable[[torch.Tensor], torch.Tensor]


class LazyFeatures:
    """The feature network of an rFID diagnostic: ``features`` if given (tests pass a small stand-in), else
    the Inception network of ``path`` ('' = bundled), loaded on first use and shared within the process."""

    def __init__(self, path: str = "", features: FeatureFn | None = None):
        self.path, self._features = path, features
        self.name = "injected" if features is not None else ""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self._features is None:
            self._features, self.name = inception_features(self.path)
        return self._features(three_channels(images.float()))


@functools.lru_cache(maxsize=2)
def inception_features(path: str = "") -> tuple[FeatureFn, str]:
    """(images -> (N, 2048) features, network name) of the bundled Inception network or of the TorchScript
    file ``path``, loaded once per process (several diagnostics share it). A missing file raises
    ``WeightsError`` with the install command."""
    from pathlib import Path

    from specmatch.metrics.inception import InceptionFeatures

    network = InceptionFeatures(Path(path).expanduser() if path else None)
    return network, network.describe()["name"]


def three_channels(images: torch.Tensor) -> torch.Tensor:
    """Grey images repeated to RGB for the feature network; RGB unchanged."""
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def frechet_of(real_features: torch.Tensor, fake_features: torch.Tensor) -> float:
    """FID between two feature sets (``metrics/frechet.py``); exact at N < 2048 via the Gram identity."""
    from specmatch.metrics.frechet import frechet_distance_of_features

    return frechet_distance_of_features(real_features, fake_features)


def curve_figure(path, x: list[float], panels: list[tuple[str, list[float]]], *, xlabel: str, title: str,
                 log_y: bool = False) -> None:
    """One PNG with a panel per (y label, values over ``x``): the sweeps people read as curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), dpi=110, squeeze=False)
    for ax, (ylabel, ys) in zip(axes[0], panels):
        ax.plot(x, ys, marker="o")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def psnr_rfid_panels(entries: dict[str, dict[str, float]], keys: list[str]) -> list[tuple[str, list[float]]]:
    """The curves of a sweep diagnostic: PSNR over ``keys``, and rFID when every entry has it."""
    panels = [("PSNR (dB)", [entries[k]["psnr"] for k in keys])]
    if all("rfid" in entries[k] for k in keys):
        panels.append(("rFID", [entries[k]["rfid"] for k in keys]))
    return panels
