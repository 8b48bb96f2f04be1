"""Latent statistics and the normaliser that applies them.

Statistics (mean and std of posterior *samples*, scalar or per channel, optionally over horizontal flips)
are computed once over the training set and stored beside the autoencoder weights. Every encode for the
denoiser and every decode of a generated latent goes through :class:`LatentNormalizer`, so nobody
multiplies by a scale factor by hand. The denoiser's cache of posterior moments is in ``latent_cache.py``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .checkpoint import atomic_write


class LatentNormalizer(nn.Module):
    def __init__(self, autoencoder: nn.Module, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.autoencoder = autoencoder
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1).float())
        self.register_buffer("std", std.reshape(1, -1, 1, 1).float())

    @torch.no_grad()
    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        z = self.autoencoder.encode(x).sample(generator)
        return (z - self.mean) / self.std

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(z * self.std + self.mean)


@torch.no_grad()
def compute_latent_stats(accelerator, autoencoder: nn.Module, dataset, *, images: int, flips: bool, mode: str,
                         subtract_mean: bool, batch_size: int, seed: int) -> dict[str, torch.Tensor]:
    """Sharded over processes: per-channel sums are all-reduced, then turned into mean and std.

    ``batch_size`` images form one global batch; each process encodes a contiguous part of it, with the
    posterior noise of the whole batch drawn from a generator seeded per (batch, view) and each process
    keeping its rows, so the statistics do not depend on the number of processes (up to float sums).
    """
    from specmatch.nn.batch_noise import batch_rows

    from .runtime import derive_seed

    n = min(images, len(dataset))
    rank, world = accelerator.process_index, accelerator.num_processes
    device = accelerator.device
    c = autoencoder.latent_channels
    sums = torch.zeros(3, c, dtype=torch.float64, device=device)  # count, sum, sum of squares per channel
    gen = torch.Generator(device=device)
    for batch_index, start in enumerate(range(0, n, batch_size)):
        size = min(batch_size, n - start)
        part = torch.arange(start, start + size).tensor_split(world)[rank]
        if len(part) == 0:
            continue
        batch = torch.stack([dataset[int(i)][0] for i in part]).to(device)
        views = [batch, batch.flip(-1)] if flips else [batch]
        for view_index, view in enumerate(views):
            gen.manual_seed(derive_seed(seed, "latent_stats", batch_index, view_index))
            with batch_rows(int(part[0]) - start, size):
                z = autoencoder.encode(view).sample(gen).double()
            sums[0] += z[:, 0].numel()
            sums[1] += z.sum(dim=(0, 2, 3))
            sums[2] += z.pow(2).sum(dim=(0, 2, 3))
    sums = accelerator.reduce(sums, reduction="sum")
    if mode == "scalar":
        sums = sums.sum(dim=1, keepdim=True)
    count, total, sq = sums[0], sums[1], sums[2]
    mean = total / count
    var = (sq / count - mean.pow(2)).clamp_min(1e-12)
    std = var.sqrt()
    if not subtract_mean:
        std = (sq / count).sqrt()  # scale factor semantics: E[z^2]^(1/2)
        mean = torch.zeros_like(mean)
    expand = (lambda t: t.expand(c)) if mode == "scalar" else (lambda t: t)
    return {"mean": expand(mean).float().cpu().contiguous(), "std": expand(std).float().cpu().contiguous(),
            "count": count.float().cpu().reshape(-1)[:1]}


def save_latent_stats(stats: dict[str, torch.Tensor], path: Path, meta: dict[str, str]) -> None:
    from safetensors.torch import save_file

    with atomic_write(path) as tmp:
        save_file({k: v.contiguous() for k, v in stats.items()}, str(tmp), metadata=meta)


def load_latent_stats(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))
