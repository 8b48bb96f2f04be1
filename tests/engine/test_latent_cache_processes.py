"""The latent cache over two processes (gloo on the CPU): the same bytes as one process, on disk and in memory,
and a two-process build killed after each process' first shard is finished by one process to the same bytes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from specmatch.engine import latent_cache as LC
from tests.engine.test_latent_cache import BATCH, SHAPE, SHARD, Images, OneProcess, TinyAutoencoder, build, files


class Killed(Exception):
    pass


class TwoProcesses(OneProcess):
    def __init__(self, rank: int, world: int):
        self.process_index, self.num_processes, self.is_main_process = rank, world, rank == 0

    def wait_for_everyone(self):
        dist.barrier()

    def gather(self, tensor):
        parts = [torch.empty_like(tensor) for _ in range(self.num_processes)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)


def _worker(rank: int, world: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ["TEST_PORT"])
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    acc, root = TwoProcesses(rank, world), Path(folder)
    try:
        LC.build_disk_cache(acc, TinyAutoencoder(), Images(), root / "two", key="k1", latent_shape=SHAPE,
                            batch_size=BATCH, shard_rows=SHARD)
        memory = LC.encode_in_memory(acc, TinyAutoencoder(), Images(), latent_shape=SHAPE, batch_size=BATCH)
        if rank == 1:
            np.save(root / "memory_moments.npy", memory.moments.numpy())
            np.save(root / "memory_labels.npy", memory.labels.numpy())
        real = LC.encode_rows

        def killed_after_one_shard(*args, **kwargs):
            out = real(*args, **kwargs)
            LC.encode_rows = killed
            return out

        def killed(*args, **kwargs):
            raise Killed

        LC.encode_rows = killed_after_one_shard
        try:
            LC.build_disk_cache(acc, TinyAutoencoder(), Images(), root / "cut", key="k1", latent_shape=SHAPE,
                                batch_size=BATCH, shard_rows=SHARD)
        except (Killed, RuntimeError):  # rank 0 is killed at its second shard; rank 1 then loses its peer
            pass
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes import torch (about 10 s)
def test_two_processes_cache_the_bytes_of_one_and_a_killed_build_resumes(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        os.environ["TEST_PORT"] = str(s.getsockname()[1])
    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    one = tmp_path / "one"
    build(one, TinyAutoencoder())
    assert files(tmp_path / "two") == files(one)
    memory = LC.encode_in_memory(OneProcess(), TinyAutoencoder(), Images(), latent_shape=SHAPE, batch_size=BATCH)
    assert np.array_equal(np.load(tmp_path / "memory_moments.npy"), memory.moments.numpy())
    assert np.array_equal(np.load(tmp_path / "memory_labels.npy"), memory.labels.numpy())
    # each process wrote its first shard (0 and 1) before it was killed; one process encodes shard 2 alone
    cut = tmp_path / "cut"
    assert sorted(p.name for p in cut.glob("moments_*.npy")) == ["moments_00000.npy", "moments_00001.npy"]
    resumed = TinyAutoencoder()
    index = build(cut, resumed)
    assert index["complete"] and resumed.encoded == 2 * (len(Images()) - 2 * SHARD)
    assert files(cut) == files(one)
