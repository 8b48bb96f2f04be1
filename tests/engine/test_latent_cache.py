"""The denoiser's latent cache on disk: the same items as in memory, reuse without encoding, a stale key rebuilds,
a killed build resumes to the same bytes, a truncated shard is encoded again; and where the cache goes."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from specmatch.engine import latent_cache as LC
from specmatch.engine.data import step_loader

N, BATCH, SHARD, C, SIDE = 11, 2, 4, 3, 4  # 11 images in shards of 4 (= 2 encode batches): 3 shards, last short
SHAPE = (C, SIDE // 2, SIDE // 2)


class Posterior:
    def __init__(self, mean, std):
        self.mean, self.std = mean, std


class TinyAutoencoder(nn.Module):
    """A strided conv giving mean and log-std; counts the views it encodes (an image and its flip: 2)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.conv = nn.Conv2d(3, 2 * C, 2, stride=2)
        self.encoded = 0

    def encode(self, x):
        self.encoded += x.shape[0]
        mean, logstd = self.conv(x).chunk(2, dim=1)
        return Posterior(mean, logstd.exp())


class Images(torch.utils.data.Dataset):
    def __len__(self):
        return N

    def __getitem__(self, i):
        return torch.rand(3, SIDE, SIDE, generator=torch.Generator().manual_seed(i)) * 2 - 1, i % 3


class OneProcess:
    """What the cache uses of accelerate's Accelerator, for one process."""

    device = torch.device("cpu")
    process_index, num_processes, is_main_process = 0, 1, True

    def wait_for_everyone(self):
        pass

    def gather(self, tensor):
        return tensor


def build(folder: Path, ae: nn.Module, key: str = "k1") -> dict:
    return LC.build_disk_cache(OneProcess(), ae, Images(), folder, key=key, latent_shape=SHAPE, batch_size=BATCH,
                               shard_rows=SHARD)


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.npy"))}


def test_disk_items_and_batches_equal_the_memory_cache(tmp_path):
    ae = TinyAutoencoder()
    memory = LC.encode_in_memory(OneProcess(), ae, Images(), latent_shape=SHAPE, batch_size=BATCH)
    index = build(tmp_path / "cache", ae)
    assert index["complete"] and index["num_shards"] == 3 and index["rows"] == N
    disk = LC.DiskLatents(tmp_path / "cache", index)
    assert len(disk) == len(memory) == N
    # a batch across all shards, unsorted, with a repeat: rows come back in the asked order
    asked = [9, 0, 5, 10, 3, 5, 1]
    for (dm, ds, dy), i in zip(disk.__getitems__(asked), asked):
        mm, ms, my = memory[i]
        assert dm.dtype == mm.dtype == torch.float16 and dm.shape == (2, C, *SHAPE[1:])
        assert torch.equal(dm, mm) and torch.equal(ds, ms) and dy == my == i % 3
    # the moments are the encoder's (image at flip 0, its mirror at flip 1), not only equal to each other
    x, _ = Images()[4]
    post = ae.encode(torch.stack([x, x.flip(-1)]))
    assert torch.equal(memory[4][0], post.mean.half()) and torch.equal(memory[4][1], post.std.half())
    # with the clean images (REPA's teacher reads them): the dataset's own image, as in memory
    with_images = LC.DiskLatents(tmp_path / "cache", index, images=Images())
    item = with_images.__getitems__([6])[0]
    assert len(item) == 4 and torch.equal(item[3], Images()[6][0]) and torch.equal(item[0], memory[6][0])
    # what the denoiser stage sees: the same batches, step by step
    loaders = [step_loader(d, global_batch=4, seed=7, start_step=0, num_steps=6, rank=0, world=1)
               for d in (memory, disk)]
    for a, b in zip(*loaders):
        assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_a_complete_cache_is_reused_without_encoding(tmp_path, caplog):
    folder = tmp_path / "cache"
    build(folder, TinyAutoencoder())
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.npy")}
    again = TinyAutoencoder()
    with caplog.at_level(logging.INFO):
        build(folder, again)
    assert again.encoded == 0
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.npy")} == before
    assert "reused" in caplog.text


def test_a_stale_key_rebuilds(tmp_path, caplog):
    folder = tmp_path / "cache"
    build(folder, TinyAutoencoder(seed=0), key="old")
    old = files(folder)
    other = TinyAutoencoder(seed=1)  # other weights: the engine gives them another key
    with caplog.at_level(logging.INFO):
        index = build(folder, other, key="new")
    assert index["key"] == "new" and index["complete"]
    assert other.encoded == 2 * N
    assert "stale" in caplog.text and "old" in caplog.text
    new = files(folder)
    assert new.keys() == old.keys() and new != old
    fresh = tmp_path / "fresh"
    build(fresh, TinyAutoencoder(seed=1), key="new")
    assert files(fresh) == new


def test_a_build_killed_after_k_shards_resumes_to_the_same_bytes(tmp_path, monkeypatch, caplog):
    whole = tmp_path / "whole"
    build(whole, TinyAutoencoder())
    real, calls = LC.encode_rows, []

    def dies_after_two_shards(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        calls.append(args[2])
        return real(*args, **kwargs)

    cut = tmp_path / "cut"
    monkeypatch.setattr(LC, "encode_rows", dies_after_two_shards)
    with pytest.raises(KeyboardInterrupt):
        build(cut, TinyAutoencoder())
    monkeypatch.setattr(LC, "encode_rows", real)
    assert not LC.read_index(cut)["complete"] and LC.read_index(cut)["complete_shards"] == 2
    assert sorted(p.name for p in cut.glob("moments_*.npy")) == ["moments_00000.npy", "moments_00001.npy"]
    resumed = TinyAutoencoder()
    with caplog.at_level(logging.INFO):
        index = build(cut, resumed)
    assert "2 of 3 shards complete; resuming" in caplog.text
    assert resumed.encoded == 2 * (N - 2 * SHARD)  # only the last shard
    assert index["complete"] and index["complete_shards"] == 3
    assert files(cut) == files(whole)


def test_a_truncated_shard_is_detected_and_encoded_again(tmp_path, caplog):
    folder = tmp_path / "cache"
    build(folder, TinyAutoencoder())
    good = files(folder)
    shard = folder / "moments_00001.npy"
    shard.write_bytes(good[shard.name][:-100])
    again = TinyAutoencoder()
    with caplog.at_level(logging.INFO):
        build(folder, again)
    assert "moments_00001.npy is damaged" in caplog.text and "bytes, expected" in caplog.text
    assert again.encoded == 2 * SHARD
    assert files(folder) == good


def test_npy_problem_names_what_is_wrong(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.zeros((2, 3), np.float16))
    assert LC.npy_problem(path, (2, 3), np.float16) is None
    assert "expected float16 (4, 3)" in LC.npy_problem(path, (4, 3), np.float16)
    assert LC.npy_problem(tmp_path / "b.npy", (2, 3), np.float16) == "missing"
    (tmp_path / "c.npy").write_bytes(b"not numpy")
    assert "not a .npy file" in LC.npy_problem(tmp_path / "c.npy", (2, 3), np.float16)


def test_auto_goes_to_disk_beyond_the_ram_fraction():
    gib = 2**30
    assert LC.choose_mode("auto", gib, local_processes=1, ram_fraction=0.25, ram=8 * gib)[0] == "memory"
    # one copy per process: 4 processes x 1 GiB exceed a quarter of 8 GiB
    mode, why = LC.choose_mode("auto", gib, local_processes=4, ram_fraction=0.25, ram=8 * gib)
    assert mode == "disk" and "4 process" in why
    assert LC.choose_mode("memory", 100 * gib, local_processes=1, ram_fraction=0.25, ram=gib)[0] == "memory"
    assert LC.choose_mode("disk", 1, local_processes=1, ram_fraction=0.25, ram=gib)[0] == "disk"
    # ImageNet-256 at f16d16: 1.28M images x (2 moments x 2 views x 16 x 16 x 16) float16
    assert LC.cache_bytes(1_281_167, (16, 16, 16)) == 1_281_167 * 16384 * 2


def test_shards_hold_whole_encode_batches():
    rows = LC.default_shard_rows((16, 16, 16), 256)
    assert rows % 256 == 0 and LC.cache_bytes(rows, (16, 16, 16)) <= LC.SHARD_BYTES


def test_a_run_that_finds_the_cache_being_built_waits_then_reuses_it(tmp_path, caplog):
    """Two denoisers on one autoencoder started together (study --jobs, cluster jobs): the second waits for the
    builder's lock instead of failing, then finds the cache complete and encodes nothing."""
    import os
    import shutil
    import threading
    import time

    from specmatch.engine.run_lock import RunLock

    finished = tmp_path / "finished"
    build(finished, TinyAutoencoder())  # what the other run's build leaves behind
    folder = tmp_path / "cache"
    other = RunLock(folder)  # the other run holds the cache (flock: another open file, so this process waits too)
    other.__enter__()
    done = threading.Event()
    try:
        with caplog.at_level(logging.INFO):
            waiter = threading.Thread(target=lambda: (build(folder, TinyAutoencoder()), done.set()), daemon=True)
            waiter.start()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any("waiting for it" in r.getMessage()
                                                          for r in caplog.records):
                time.sleep(0.05)
            assert any(f"pid {os.getpid()}" in r.getMessage() and "waiting for it" in r.getMessage()
                       for r in caplog.records)
            assert not done.is_set()  # nothing done while the other run held the cache
            for path in finished.iterdir():  # the other run's build completes ...
                if path.name != ".lock":
                    shutil.copy(path, folder / path.name)
            other.__exit__(None, None, None)  # ... and it releases the cache
            assert done.wait(timeout=120)
    finally:
        other.__exit__(None, None, None)
    assert any("reused" in r.getMessage() for r in caplog.records)  # found complete: nothing encoded
    assert files(folder) == files(finished)