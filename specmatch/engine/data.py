"""Deterministic, resumable, sharded batches: the batch of global step ``s`` depends only on (seed, s).

Each epoch is a seeded permutation of the dataset; a global batch is cut from it and each process takes its
own contiguous slice. Resuming at step ``s`` therefore continues the exact data stream, and one process with
batch B sees the same images as two processes with batch B/2 each.

Augmentation follows the stream too: the sampler yields ``(epoch, index)`` keys and :class:`EpochItems`
reads item ``index`` as the dataset's ``set_epoch(epoch)`` would have it. A flip or crop therefore changes
from epoch to epoch, is the same on every process and in every data worker, and resumes exactly.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .runtime import derive_seed


class StepBatchSampler(Sampler[list[int]]):
    def __init__(self, size: int, global_batch: int, *, seed: int, start_step: int, num_steps: int,
                 rank: int = 0, world: int = 1):
        if global_batch % world:
            raise ValueError(f"global batch {global_batch} is not divisible by {world} processes")
        self.size, self.global_batch, self.seed = size, global_batch, seed
        self.start_step, self.num_steps, self.rank, self.world = start_step, num_steps, rank, world
        self._perm_cache: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perm_cache:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "epoch", epoch))
            self._perm_cache = {epoch: torch.randperm(self.size, generator=g)}
        return self._perm_cache[epoch]

    def global_keys(self, step: int) -> list[tuple[int, int]]:
        """The ``(epoch, index)`` items of global step ``step``."""
        start = step * self.global_batch
        out: list[tuple[int, int]] = []
        while len(out) < self.global_batch:
            epoch, offset = divmod(start + len(out), self.size)
            perm = self._perm(epoch)
            take = min(self.global_batch - len(out), self.size - offset)
            out += [(epoch, i) for i in perm[offset:offset + take].tolist()]
        return out

    def __iter__(self) -> Iterator[list[int]]:
        per = self.global_batch // self.world
        for step in range(self.start_step, self.num_steps):
            keys = self.global_keys(step)
            yield keys[self.rank * per:(self.rank + 1) * per]

    def __len__(self) -> int:
        return max(0, self.num_steps - self.start_step)


class EpochItems(Dataset):
    """``dataset`` read by ``(epoch, index)`` keys: item ``index`` as of ``set_epoch(epoch)``.

    The epoch is set on a shallow copy, so the caller's dataset (used later for statistics and evaluation at
    its own epoch) never changes. A dataset without ``set_epoch`` has no per-epoch augmentation and is read
    as is. ``set_epoch`` must therefore only set the dataset's own attributes (the documented contract).
    """

    def __init__(self, dataset: Dataset):
        import copy

        self.dataset = dataset
        self._view = copy.copy(dataset) if hasattr(dataset, "set_epoch") else dataset
        self._epoch: int | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        if self._view is not self.dataset and epoch != self._epoch:
            self._view.set_epoch(epoch)
            self._epoch = epoch
        return self._view[index]

    def __getitems__(self, keys: list[tuple[int, int]]) -> list:
        """A whole batch: one read for datasets that gather batches themselves (the disk latent cache)."""
        batched = getattr(self._view, "__getitems__", None)
        if batched is None or self._view is not self.dataset:  # per-epoch augmentation: item by item
            return [self[key] for key in keys]
        return batched([index for _, index in keys])


def step_loader(dataset: Dataset, *, global_batch: int, seed: int, start_step: int, num_steps: int,
                rank: int, world: int, num_workers: int = 0) -> DataLoader:
    sampler = StepBatchSampler(len(dataset), global_batch, seed=seed, start_step=start_step,
                               num_steps=num_steps, rank=rank, world=world)
    return DataLoader(EpochItems(dataset), batch_sampler=sampler, num_workers=num_workers,
                      persistent_workers=num_workers > 0)


def shard_indices(n: int, rank: int, world: int) -> list[int]:
    """Evaluation shards: process r takes items r, r + world, ... (gathered and re-ordered afterwards)."""
    return list(range(rank, n, world))
