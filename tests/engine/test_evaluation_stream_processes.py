"""The evaluation stream's partial statistics add up over processes: two processes (gloo on the CPU) that are
interrupted after one chunk, resumed by a single process, give the numbers of one uninterrupted process."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from specmatch.engine.data import shard_indices
from specmatch.engine.evaluation_stream import EvaluationStream
from specmatch.metrics.builtin import PerImage
from specmatch.metrics.reconstruction import psnr

N, CHUNK, BATCH, DIM = 14, 6, 2, 5


class Stop(Exception):
    pass


class Accelerator:
    """What the stream uses of accelerate's Accelerator, over an initialised process group (or none)."""

    device = torch.device("cpu")

    def __init__(self, rank: int = 0, world: int = 1):
        self.process_index, self.num_processes, self.is_main_process = rank, world, rank == 0

    def reduce(self, tensor, reduction="sum"):
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    def wait_for_everyone(self):
        if self.num_processes > 1:
            dist.barrier()


def image(i: int) -> torch.Tensor:
    return torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(i)) * 2 - 1


def features(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1)[:, :DIM].double() * 3 + x.flatten(1)[:, DIM:2 * DIM].double() ** 2


def make_stream() -> EvaluationStream:
    return EvaluationStream(passes={"reconstruction": (N, ("real", "fake"))}, per_image={"psnr": PerImage(psnr)},
                            features=features, feature_dim=DIM, subset=8, seed=3, image_shape=(3, 4, 4), grid=3)


def run(stream: EvaluationStream, acc: Accelerator, path: Path, on_chunk=None) -> None:
    def produce(start, stop):
        mine = [start + i for i in shard_indices(stop - start, acc.process_index, acc.num_processes)]
        for s in range(0, len(mine), BATCH):
            items = mine[s:s + BATCH]
            x = torch.stack([image(i) for i in items])
            yield items, {"real": x, "fake": (x * 0.9).clamp(-1, 1)}

    stream.load(path, "key", acc)
    stream.run_pass("reconstruction", produce, chunk=CHUNK, save=lambda: stream.save(path, "key", acc),
                    on_chunk=on_chunk)


def _worker(rank: int, world: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ["TEST_PORT"])
    torch.set_num_threads(1)  # tiny tensors; OpenMP spin-waits on a busy machine only slow them
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        def stop(name, done):
            raise Stop

        run(make_stream(), Accelerator(rank, world), Path(folder) / "stats.safetensors", on_chunk=stop)
    except Stop:
        pass
    finally:
        dist.destroy_process_group()


def summary(stream: EvaluationStream) -> dict:
    total = stream.totals(Accelerator())
    out = {"psnr": total.mean("reconstruction", "psnr")}
    for s in ("real", "fake"):
        mean, cov = total.moments("reconstruction", s).mean_cov()
        out.update({f"{s}_mean": mean, f"{s}_cov": cov, f"{s}_subset": total.subset("reconstruction", s).features(),
                    f"{s}_grid": total.grid("reconstruction", s).numpy()})
    return out


@pytest.mark.slow  # two spawned processes import torch (about 10 s)
def test_two_interrupted_processes_resumed_by_one_equal_one_uninterrupted(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        os.environ["TEST_PORT"] = str(s.getsockname()[1])
    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    resumed = make_stream()
    run(resumed, Accelerator(), tmp_path / "stats.safetensors")
    assert resumed.cursor["reconstruction"] == N
    whole = make_stream()
    run(whole, Accelerator(), tmp_path / "whole.safetensors")
    a, b = summary(resumed), summary(whole)
    assert a["real_subset"].shape == (8, DIM) and a["real_grid"].shape == (3, 3, 4, 4)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-10, atol=1e-12, err_msg=key)
