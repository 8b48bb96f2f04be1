"""The denoiser step with the latent cache on disk against the cache in memory, on the demo's latent geometry.

    python benchmarks/latent_cache.py [--steps 30] [--repeats 3] [--images 2048] [--batch 64] [--shard-images 256]
                                      [--threads N] [--cold]

The demo recipe (recipes/demo.toml) trains dit-tiny (patch 2) with flow matching at batch 64 on the 8 x 8 x 4
latents of 2048 images (tiny-f4d4 at 32 px). Here a synthetic dataset of that size goes through the engine's
own cache builders (``encode_in_memory`` and ``build_disk_cache``, with a stand-in encoder that reads the
moments off the input), and each step runs what the denoiser stage runs: the engine's step loader, the stage's
latent sampling (random flip, z = mean + std * eps, normalisation), the flow-matching loss, backward and AdamW.
Both caches train the same model from the same seed, repeated alternately; the median of each is compared.
``--cold`` evicts the shards from the page cache before every disk repetition (posix_fadvise), so its first
reads come from the device. Target: disk / memory <= 1.10.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

LATENT = (4, 8, 8)  # tiny-f4d4 at 32 px


class Posterior:
    def __init__(self, mean, std):
        self.mean, self.std = mean, std


class MomentsEncoder(nn.Module):
    """Stand-in encoder: the first C channels of its input are the mean, the softplus of the rest the std."""

    def encode(self, x):
        c = LATENT[0]
        return Posterior(x[:, :c], nn.functional.softplus(x[:, c:]) * 0.2)


class Synthetic(torch.utils.data.Dataset):
    def __init__(self, n: int):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return torch.randn(2 * LATENT[0], *LATENT[1:], generator=g), i % 10


def train_steps(accelerator, data, steps: int, batch: int) -> float:
    """Seconds per denoiser step, the first one included."""
    from specmatch.diffusion.dit import build_dit
    from specmatch.diffusion.flow_matching import FlowMatching
    from specmatch.engine.data import step_loader
    from specmatch.engine.runtime import step_generators
    from specmatch.engine.stages.denoiser import _Latents

    device = accelerator.device
    torch.manual_seed(0)
    model = build_dit("dit-tiny", input_size=LATENT[1], in_channels=LATENT[0], patch_size=2).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)
    objective = FlowMatching()
    normalizer = SimpleNamespace(mean=torch.zeros(1, LATENT[0], 1, 1, device=device),
                                 std=torch.ones(1, LATENT[0], 1, 1, device=device))
    sample = SimpleNamespace(device=device, normalizer=normalizer, keep_images=False, cached=True)
    loader = step_loader(data, global_batch=batch, seed=1, start_step=0, num_steps=steps, rank=0, world=1)
    start = time.perf_counter()
    for step, b in enumerate(loader):
        _, noise = step_generators(1, "denoiser", step, device)
        z, _, _ = _Latents.__call__(sample, b, noise)
        loss, _ = objective.loss(lambda x, t, **kw: model(x, t, **kw), z, generator=noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def read_batches(data, steps: int, batch: int) -> float:
    """Seconds per batch for the loader alone."""
    from specmatch.engine.data import step_loader

    loader = step_loader(data, global_batch=batch, seed=1, start_step=0, num_steps=steps, rank=0, world=1)
    start = time.perf_counter()
    for _ in loader:
        pass
    return (time.perf_counter() - start) / steps


def evict(folder: Path) -> None:
    for p in folder.glob("moments_*.npy"):
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--shard-images", type=int, default=256, help="images per shard (a multiple of 64)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--cold", action="store_true", help="evict the shards from the page cache before each disk run")
    args = ap.parse_args()

    from accelerate import Accelerator

    if args.threads:
        torch.set_num_threads(args.threads)

    from specmatch.engine import latent_cache as LC

    acc = Accelerator(cpu=not torch.cuda.is_available())
    data, encoder = Synthetic(args.images), MomentsEncoder()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "latent_cache"
        memory = LC.encode_in_memory(acc, encoder, data, latent_shape=LATENT, batch_size=64)
        index = LC.build_disk_cache(acc, encoder, data, folder, key="benchmark", latent_shape=LATENT,
                                    batch_size=64, shard_rows=args.shard_images)
        disk = LC.DiskLatents(folder, index)
        assert all(torch.equal(a, b) for a, b in zip(memory[7], disk[7]) if isinstance(a, torch.Tensor))
        times: dict[str, list[float]] = {"memory": [], "disk": []}
        reads: dict[str, list[float]] = {"memory": [], "disk": []}
        for r in range(args.repeats):
            for mode in (("memory", "disk") if r % 2 == 0 else ("disk", "memory")):
                cache = memory if mode == "memory" else disk
                if mode == "disk" and args.cold:
                    evict(folder)
                times[mode].append(train_steps(acc, cache, args.steps, args.batch))
                if mode == "disk" and args.cold:
                    evict(folder)
                reads[mode].append(read_batches(cache, args.steps, args.batch))
        mb = LC.cache_bytes(args.images, LATENT) / 2**20
        print(f"denoiser step, dit-tiny/2 + flow matching on {args.images} latents {LATENT} (cache {mb:.1f} MB, "
              f"{index['num_shards']} shards), batch {args.batch}, {args.steps} steps, {args.repeats} repeats "
              f"alternating, {torch.get_num_threads()} threads, {acc.device}{', cold page cache' if args.cold else ''}")
        for mode in ("memory", "disk"):
            ms = [1000 * t for t in times[mode]]
            rd = [1000 * t for t in reads[mode]]
            print(f"  {mode:<6} cache : {statistics.median(ms):8.1f} ms/step  (all: "
                  f"{', '.join(f'{t:.1f}' for t in ms)});  batch read alone {statistics.median(rd):.2f} ms")
        ratio = statistics.median(times["disk"]) / statistics.median(times["memory"])
        print(f"  ratio disk/memory : {ratio:.3f}   target <= 1.10: {'PASS' if ratio <= 1.10 else 'FAIL'}")


if __name__ == "__main__":
    main()
