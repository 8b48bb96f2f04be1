"""The denoiser's latent cache: posterior moments of every training image and of its flip, encoded once.

Two places hold it, with the same content, read in the same order:

* ``memory``: one float16 tensor per process (:class:`CachedLatents`);
* ``disk``: fixed-size float16 ``.npy`` shards in the autoencoder's folder of the run that trained it
  (``RunLayout.latent_cache``), memory-mapped by every process (:class:`DiskLatents`), so a training set larger
  than RAM trains, the processes of one machine share one copy in the page cache, and every denoiser trained
  on that autoencoder (in the same run folder, or through ``autoencoder.from_run``) reuses it.

Both encode global batches of ``batch_size`` images starting at multiples of ``batch_size`` (batch ``b``
goes to process ``b mod world`` in memory, shards are multiples of the batch), so the two caches hold the
same bytes whatever the number of processes.

Disk layout::

    latent_cache/index.json          format, key, dtype, row shape, rows, shard_rows, num_shards,
                                     complete_shards, complete, and what went into the key
    latent_cache/moments_NNNNN.npy   (shard_rows, 2 [mean, std], 2 [image, flip], C, h, w) float16
    latent_cache/labels_NNNNN.npy    (shard_rows,) int64
    latent_cache/.lock               held by the main process while it checks or builds the cache

Each shard is written under a temporary name and renamed when flushed, labels before moments, so a shard
whose moments file is there and has its full size is complete: a killed build resumes at the first missing
shard, and a truncated shard is encoded again. A cache whose key differs from the one asked for (other
autoencoder weights, other data) is deleted and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint import atomic_write, write_json_atomic

log = logging.getLogger(__name__)

FORMAT = "specmatch-latent-cache-1"
DTYPE = np.float16
#: target size of one shard; a shard holds a whole number of encode batches
SHARD_BYTES = 256 << 20
MODES = ("auto", "memory", "disk")


# -- encoding ------------------------------------------------------------------------------------------------------

@torch.no_grad()
def encode_rows(autoencoder: nn.Module, dataset, start: int, stop: int, *, batch_size: int,
                device) -> tuple[torch.Tensor, torch.Tensor]:
    """Moments ``(rows, 2 [mean, std], 2 [image, flip], C, h, w)`` float16 on the CPU and labels of items
    ``start..stop-1``, encoded in batches of ``batch_size`` starting at ``start``."""
    rows, labels = [], []
    for first in range(start, stop, batch_size):
        items = [dataset[i] for i in range(first, min(first + batch_size, stop))]
        x = torch.stack([it[0] for it in items]).to(device)
        views = []
        for view in (x, x.flip(-1)):
            post = autoencoder.encode(view)
            views.append(torch.stack([post.mean, post.std], 1))  # (B, 2, C, h, w)
        rows.append(torch.stack(views, 2).float().half().cpu())
        labels.append(torch.tensor([int(it[1]) for it in items], dtype=torch.int64))
    return torch.cat(rows), torch.cat(labels)


def row_shape(latent_shape: tuple[int, int, int]) -> tuple[int, ...]:
    return (2, 2, *latent_shape)


def cache_bytes(rows: int, latent_shape: tuple[int, int, int]) -> int:
    return rows * math.prod(row_shape(latent_shape)) * np.dtype(DTYPE).itemsize


# -- in memory -----------------------------------------------------------------------------------------------------

class CachedLatents(torch.utils.data.Dataset):
    """The cache in RAM. Item i is ``(mean (2, C, h, w), std (2, C, h, w), label)`` (float16; index 0 the
    image, 1 its flip), plus the clean image read from ``images`` when given (for REPA's teacher)."""

    def __init__(self, moments: torch.Tensor, labels: torch.Tensor, images=None):
        self.moments, self.labels, self.images = moments, labels, images

    def __len__(self) -> int:
        return self.moments.shape[0]

    def __getitem__(self, i: int):
        item = (self.moments[i, 0], self.moments[i, 1], int(self.labels[i]))
        return item if self.images is None else (*item, self.images[i][0])


@torch.no_grad()
def encode_in_memory(accelerator, autoencoder: nn.Module, dataset, *, latent_shape: tuple[int, int, int],
                     batch_size: int, keep_images: bool = False) -> CachedLatents:
    """Process r encodes batches r, r + world, ...; each round of ``world`` batches is gathered, so every
    process holds the whole cache."""
    n, world, rank = len(dataset), accelerator.num_processes, accelerator.process_index
    moments, labels = [], []
    for round_start in range(0, n, batch_size * world):
        start = min(n, round_start + rank * batch_size)
        stop = min(n, start + batch_size)
        m, y = encode_rows(autoencoder, dataset, start, stop, batch_size=batch_size, device=accelerator.device)
        if world > 1:
            valid = min(n - round_start, batch_size * world)
            pad = batch_size - m.shape[0]
            m = torch.cat([m, m.new_zeros((pad, *row_shape(latent_shape)))]) if pad else m
            y = torch.cat([y, y.new_zeros(pad)]) if pad else y
            m = accelerator.gather(m.to(accelerator.device))[:valid].cpu()
            y = accelerator.gather(y.to(accelerator.device))[:valid].cpu()
        moments.append(m)
        labels.append(y)
    return CachedLatents(torch.cat(moments), torch.cat(labels), images=dataset if keep_images else None)


# -- on disk -------------------------------------------------------------------------------------------------------

def _moments_path(folder: Path, shard: int) -> Path:
    return folder / f"moments_{shard:05d}.npy"


def _labels_path(folder: Path, shard: int) -> Path:
    return folder / f"labels_{shard:05d}.npy"


def _index_path(folder: Path) -> Path:
    return folder / "index.json"


def npy_problem(path: Path, shape: tuple[int, ...], dtype) -> str | None:
    """None when ``path`` is a .npy file of exactly this shape and dtype with all its bytes, else what is wrong."""
    fmt = np.lib.format
    try:
        with path.open("rb") as f:
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            found_shape, _, found_dtype = read(f)
            offset = f.tell()
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError) as e:
        return f"not a .npy file ({e})"
    if tuple(found_shape) != tuple(shape) or found_dtype != np.dtype(dtype):
        return f"holds {found_dtype} {tuple(found_shape)}, expected {np.dtype(dtype)} {tuple(shape)}"
    expected = offset + math.prod(shape) * np.dtype(dtype).itemsize
    size = path.stat().st_size
    return None if size == expected else f"{size} bytes, expected {expected}"


def _shard_rows(index: dict, shard: int) -> int:
    return min(index["shard_rows"], index["rows"] - shard * index["shard_rows"])


def shard_problem(folder: Path, index: dict, shard: int) -> str | None:
    rows = _shard_rows(index, shard)
    return (npy_problem(_moments_path(folder, shard), (rows, *index["row_shape"]), DTYPE)
            or npy_problem(_labels_path(folder, shard), (rows,), np.int64))


def _write_shard(folder: Path, shard: int, moments: torch.Tensor, labels: torch.Tensor) -> None:
    # labels first: the moments file, renamed last, is what marks the shard complete
    with atomic_write(_labels_path(folder, shard)) as tmp, tmp.open("wb") as f:
        np.save(f, labels.numpy().astype(np.int64))
    with atomic_write(_moments_path(folder, shard), needed=moments.numel() * 2) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=DTYPE, shape=tuple(moments.shape))
        out[:] = moments.numpy()
        out.flush()
        del out


def read_index(folder: Path) -> dict | None:
    try:
        index = json.loads(_index_path(folder).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return index if isinstance(index, dict) and index.get("format") == FORMAT else None


def _clear(folder: Path) -> None:
    for p in folder.glob("*.npy*"):
        p.unlink()
    _index_path(folder).unlink(missing_ok=True)


def default_shard_rows(latent_shape: tuple[int, int, int], batch_size: int) -> int:
    per_row = cache_bytes(1, latent_shape)
    return max(1, SHARD_BYTES // (per_row * batch_size)) * batch_size


def _prepare_index(folder: Path, *, key: str, rows: int, latent_shape, shard_rows: int, about: dict,
                   batch_size: int) -> dict:
    """Main process: the index of the cache to build or resume; a stale cache is deleted first."""
    folder.mkdir(parents=True, exist_ok=True)
    index = read_index(folder)
    wanted = {"rows": rows, "row_shape": list(row_shape(latent_shape)), "dtype": np.dtype(DTYPE).name}
    if index is not None and index.get("key") == key and all(index.get(k) == v for k, v in wanted.items()) \
            and index.get("shard_rows", 0) % batch_size == 0:
        return index  # same cache: resume it (or check it) with the shard size it was started with
    if index is not None or any(folder.glob("*.npy*")):
        old = index.get("key") if index is not None else "unreadable index"
        log.info(f"[denoiser] latent cache in {folder} is stale (key {old}, this run needs {key}): deleted "
                 f"and encoded again")
        _clear(folder)
    index = {"format": FORMAT, "key": key, **wanted, "shard_rows": shard_rows,
             "num_shards": math.ceil(rows / shard_rows), "complete_shards": 0, "complete": False,
             "encode_batch": batch_size, "about": about}
    write_json_atomic(_index_path(folder), index)
    return index


@torch.no_grad()
def build_disk_cache(accelerator, autoencoder: nn.Module, dataset, folder: Path, *, key: str,
                     latent_shape: tuple[int, int, int], batch_size: int, about: dict | None = None,
                     shard_rows: int | None = None) -> dict:
    """Encode the shards that are missing or damaged (process r takes shards r, r + world, ...); the main
    process writes the index once every shard is complete. Returns the index."""
    from .run_lock import RunLock

    n, world, rank = len(dataset), accelerator.num_processes, accelerator.process_index
    shard_rows = shard_rows or min(default_shard_rows(latent_shape, batch_size),
                                   math.ceil(max(n, 1) / batch_size) * batch_size)
    if shard_rows % batch_size:
        raise ValueError(f"shard_rows {shard_rows} is not a multiple of the encode batch {batch_size}")
    # one builder per cache; a run that finds another building it (two denoisers on one autoencoder, started
    # together by a study) waits, then reuses what that run built
    with RunLock(folder, enabled=accelerator.is_main_process, wait=True):
        if accelerator.is_main_process:
            index = _prepare_index(folder, key=key, rows=n, latent_shape=latent_shape, shard_rows=shard_rows,
                                   about=about or {}, batch_size=batch_size)
            done = sum(shard_problem(folder, index, s) is None for s in range(index["num_shards"]))
            if index["complete"] and done == index["num_shards"]:
                log.info(f"[denoiser] latent cache in {folder} reused (key {key})")
            elif not index["complete"]:
                what = "resuming" if done else "encoding"
                log.info(f"[denoiser] latent cache in {folder}: {done} of {index['num_shards']} shards complete; "
                         f"{what} ({index['shard_rows']} images per shard)")
        accelerator.wait_for_everyone()
        index = read_index(folder)
        for shard in range(rank, index["num_shards"], world):
            problem = shard_problem(folder, index, shard)
            if problem is None:
                continue
            if _moments_path(folder, shard).exists():
                log.warning(f"[denoiser] latent cache shard {_moments_path(folder, shard)} is damaged ({problem}): "
                            f"encoding it again")
            start = shard * index["shard_rows"]
            moments, labels = encode_rows(autoencoder, dataset, start, start + _shard_rows(index, shard),
                                          batch_size=batch_size, device=accelerator.device)
            _write_shard(folder, shard, moments, labels)
            if accelerator.is_main_process:  # progress for whoever looks (the shard files are the record)
                done = sum(shard_problem(folder, index, s) is None for s in range(index["num_shards"]))
                write_json_atomic(_index_path(folder), {**index, "complete_shards": done})
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            bad = [s for s in range(index["num_shards"]) if shard_problem(folder, index, s) is not None]
            if bad:  # another process failed to write them: it has raised too
                raise RuntimeError(f"latent cache shards {bad} in {folder} were not written")
            if not index["complete"]:
                write_json_atomic(_index_path(folder),
                                  {**index, "complete_shards": index["num_shards"], "complete": True})
        accelerator.wait_for_everyone()
    return read_index(folder)


class DiskLatents(torch.utils.data.Dataset):
    """The cache on disk, memory-mapped; items as :class:`CachedLatents`'s.

    ``__getitems__`` (which the DataLoader calls with a whole batch) reads each shard's rows of the batch with
    one fancy index over sorted row numbers, then puts the rows back in the batch's order.
    """

    def __init__(self, folder: Path, index: dict, images=None):
        self.folder, self.images = folder, images
        self.shard_rows, self.rows = index["shard_rows"], index["rows"]
        self.shards = [np.load(_moments_path(folder, s), mmap_mode="r") for s in range(index["num_shards"])]
        self.labels = np.concatenate([np.load(_labels_path(folder, s)) for s in range(index["num_shards"])])

    def __len__(self) -> int:
        return self.rows

    def gather(self, indices) -> np.ndarray:
        """Rows ``indices`` (in that order) as one float16 array."""
        idx = np.asarray(indices, dtype=np.int64)
        order = np.argsort(idx, kind="stable")
        ordered = idx[order]
        out = np.empty((len(idx), *self.shards[0].shape[1:]), dtype=DTYPE)
        shard_of = ordered // self.shard_rows
        bounds = np.flatnonzero(np.diff(shard_of)) + 1
        for lo, hi in zip([0, *bounds], [*bounds, len(ordered)]):
            shard = int(shard_of[lo])
            out[order[lo:hi]] = self.shards[shard][ordered[lo:hi] - shard * self.shard_rows]
        return out

    def __getitems__(self, indices: list[int]) -> list[tuple]:
        batch = torch.from_numpy(self.gather(indices))
        items = zip(batch[:, 0].unbind(0), batch[:, 1].unbind(0), self.labels[indices].tolist())
        if self.images is None:
            return list(items)
        return [(*item, self.images[i][0]) for item, i in zip(items, indices)]

    def __getitem__(self, i: int):
        return self.__getitems__([i])[0]


# -- choosing and keying -------------------------------------------------------------------------------------------

def physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def choose_mode(setting: str, nbytes: int, *, local_processes: int, ram_fraction: float,
                ram: int | None) -> tuple[str, str]:
    """``(mode, why)``: ``auto`` goes to disk when the in-memory copies of one machine's processes would
    take more than ``ram_fraction`` of its RAM."""
    if setting != "auto":
        return setting, f"train.denoiser.latent_cache = {setting!r}"
    need = nbytes * local_processes
    if ram is None:
        return "memory", "RAM size unknown"
    mode = "disk" if need > ram_fraction * ram else "memory"
    return mode, (f"{need / 2**30:.2f} GiB for {local_processes} process(es) "
                  f"{'>' if mode == 'disk' else '<='} {ram_fraction:g} x {ram / 2**30:.1f} GiB RAM")


def cache_key(about: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(about, sort_keys=True, default=str).encode()).hexdigest()[:16]
