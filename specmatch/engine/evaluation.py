"""Evaluation helpers: reconstructions and samples of numbered items, the reference subset, the feature
network, the latent spectrum and image grids. The streaming and resuming is ``evaluation_stream.py``; the
metrics are ``metric`` plugins."""

from __future__ import annotations

import math
from pathlib import Path

import torch


def gather_rows(accelerator, local: torch.Tensor, n_total: int) -> torch.Tensor:
    """Gather per-process rows (taken round-robin) back into dataset order."""
    if accelerator.num_processes == 1:
        return local
    world = accelerator.num_processes
    per = math.ceil(n_total / world)
    pad = per - local.shape[0]
    if pad > 0:
        local = torch.cat([local, local.new_zeros((pad, *local.shape[1:]))])
    everything = accelerator.gather(local.contiguous())  # (world * per, ...)
    chunks = everything.reshape(world, per, *local.shape[1:])
    out = chunks.transpose(0, 1).reshape(world * per, *local.shape[1:])
    return out[:n_total]


@torch.no_grad()
def reconstruct_batch(autoencoder, x: torch.Tensor, items: list[int], *, latent: str = "sample",
                      seed: int = 0) -> torch.Tensor:
    """Reconstructions of the images ``x`` whose dataset indices are ``items``.

    ``latent = "sample"`` decodes a posterior sample, as the authors' evaluation does; ``"mean"`` decodes the
    posterior mean, which flatters KL-regularised autoencoders (their sample is noisier than their mean).
    The noise of image i is drawn from its own seed, so results do not depend on batching or process count.
    """
    from .runtime import derive_seed

    if latent not in ("sample", "mean"):
        raise ValueError(f"latent must be 'sample' or 'mean', got {latent!r}")
    posterior = autoencoder.encode(x)
    z = posterior.mode()
    if latent == "sample":
        noise = torch.stack([torch.randn(z.shape[1:], generator=torch.Generator().manual_seed(
            derive_seed(seed, "reconstruction", i))) for i in items])
        z = z + posterior.std * noise.to(z.device, z.dtype)
    return autoencoder.decode(z).clamp(-1, 1)


@torch.no_grad()
def reconstruct(accelerator, autoencoder, dataset, n: int, batch_size: int, *, latent: str = "sample",
                seed: int = 0):
    """(originals, reconstructions) of the first n test images, gathered in order (for small n: the
    evaluation stage streams instead, see ``reconstruct_batch``)."""
    from .data import shard_indices

    n = min(n, len(dataset))
    idx = shard_indices(n, accelerator.process_index, accelerator.num_processes)
    xs, ys = [], []
    for s in range(0, len(idx), batch_size):
        chunk = idx[s:s + batch_size]
        x = torch.stack([dataset[i][0] for i in chunk]).to(accelerator.device)
        xs.append(x)
        ys.append(reconstruct_batch(autoencoder, x, chunk, latent=latent, seed=seed))
    x = torch.cat(xs) if xs else torch.zeros(0, 3, 1, 1, device=accelerator.device)
    y = torch.cat(ys) if ys else torch.zeros_like(x)
    return gather_rows(accelerator, x.float(), n), gather_rows(accelerator, y.float(), n)


def reference_indices(dataset_size: int, n: int, seed: int) -> list[int]:
    """A seeded random subset of n training images for the generation FID reference (sorted, for locality).

    The first N images in file order would cover only the first classes of a class-per-folder dataset.
    """
    from .runtime import derive_seed

    g = torch.Generator().manual_seed(derive_seed(seed, "fid_reference"))
    return sorted(torch.randperm(dataset_size, generator=g)[:min(n, dataset_size)].tolist())


@torch.no_grad()
def load_feature_network(path: str, recipe_dir: Path, device, expected_sha256: str | None = None):
    """The Inception FID network, or (None, reason) when it is not available here."""
    from specmatch.core.errors import WeightsError
    from specmatch.metrics.inception import InceptionFeatures

    try:
        weights = None
        if path:
            weights = Path(path).expanduser()
            weights = weights if weights.is_absolute() else recipe_dir / weights
        return InceptionFeatures(weights, device=device, expected_sha256=expected_sha256), ""
    except WeightsError as exc:
        if path:  # the user asked for this file: a missing one is an error
            raise
        return None, str(exc)


def interleave_rows(originals: torch.Tensor, reconstructions: torch.Tensor, per_row: int = 8) -> torch.Tensor:
    """Rows of originals, each followed by the row of their reconstructions."""
    chunks = []
    for start in range(0, originals.shape[0], per_row):
        chunks += [originals[start:start + per_row], reconstructions[start:start + per_row]]
    return torch.cat(chunks) if chunks else originals


def save_grid(images: torch.Tensor, path: Path, nrow: int | None = None) -> None:
    """A PNG grid of images in [-1, 1]."""
    from torchvision.utils import save_image

    if images.shape[0] == 0:
        return
    nrow = nrow or max(1, int(math.sqrt(images.shape[0])))
    save_image((images.float().cpu() + 1) / 2, str(path), nrow=nrow, padding=1)
