"""The denoiser step with the latent cache on disk against the cache in memory, on the demo's latent geometry.

    python benchmarks/latent_cache.py [--steps 30] [--repeats 3] [--images 2048] [--batch 64] [--shard-images 256]
                                      [--threads N] [--cold]

The demo recipe (recipes/demo.toml) trains dit-tiny (patch 2) with flow matching at batch 64 on the 8 x 8 x 4
latents of 2048 images (tiny-f4d4 at 32 px). Here a synthetic dataset of that size goes through the engine's
own cache builders (``encode_in_memory`` and ``build_disk_cache``, with a stand-in encoder that reads the
moments off the input), and each step runs what the denoiser stage runs: the engine's step loader, the stage's
latent sampling (random flip, z = mean + std * eps, normalisation), the flow-matching loss, backward and AdamW.
Both caches train the same model from the same seed, alternating step by step (so a change in machine load
hits both alike); the median step times are compared, and the losses must agree step for step.
``--cold`` evicts the shards from the page cache before every repetition (posix_fadvise), so the disk cache's
first reads come from the device. Target: disk / memory <= 1.10.
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


class Trainer:
    """One denoiser trained from one cache, a step at a time (so two can alternate step by step)."""

    def __init__(self, accelerator, data, steps: int, batch: int):
        from specmatch.diffusion.dit import build_dit
        from specmatch.diffusion.flow_matching import FlowMatching
        from specmatch.engine.data import step_loader

        self.device = device = accelerator.device
        torch.manual_seed(0)
        self.model = build_dit("dit-tiny", input_size=LATENT[1], in_channels=LATENT[0], patch_size=2).to(device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=5e-4)
        self.objective = FlowMatching()
        normalizer = SimpleNamespace(mean=torch.zeros(1, LATENT[0], 1, 1, device=device),
                                     std=torch.ones(1, LATENT[0], 1, 1, device=device))
        self.sample = SimpleNamespace(device=device, normalizer=normalizer, keep_images=False, cached=True)
        self.batches = iter(step_loader(data, global_batch=batch, seed=1, start_step=0, num_steps=steps, rank=0,
                                        world=1))
        self.step = 0

    def __call__(self) -> tuple[float, float, float]:
        """(seconds, seconds to the sampled latents, loss) of the next step: batch, latent sampling, loss,
        backward, clip, AdamW."""
        from specmatch.engine.runtime import step_generators
        from specmatch.engine.stages.denoiser import _Latents

        start = time.perf_counter()
        batch = next(self.batches)
        _, noise = step_generators(1, "denoiser", self.step, self.device)
        z, _, _ = _Latents.__call__(self.sample, batch, noise)  # the stage's own sampling from the moments
        latents = time.perf_counter() - start
        loss, _ = self.objective.loss(lambda x, t, **kw: self.model(x, t, **kw), z, generator=noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        value = float(loss.detach())  # waits for the device
        self.step += 1
        return time.perf_counter() - start, latents, value


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
        caches = {"memory": memory, "disk": disk}
        times: dict[str, list[float]] = {"memory": [], "disk": []}
        fetch: dict[str, list[float]] = {"memory": [], "disk": []}
        losses: dict[str, list[float]] = {"memory": [], "disk": []}
        for r in range(args.repeats):
            trainers = {mode: Trainer(acc, caches[mode], args.steps, args.batch) for mode in caches}
            if args.cold:
                evict(folder)
            for step in range(args.steps):  # alternating step by step: load changes hit both alike
                for mode in (("memory", "disk") if (step + r) % 2 == 0 else ("disk", "memory")):
                    seconds, latents, loss = trainers[mode]()
                    if step > 0:  # the first step of a model warms up allocators
                        times[mode].append(seconds)
                        fetch[mode].append(latents)
                    losses[mode].append(loss)
        reads = {mode: [] for mode in caches}
        for _ in range(3):
            for mode in caches:
                reads[mode].append(read_batches(caches[mode], 50, args.batch))
        reads = {mode: statistics.median(r) for mode, r in reads.items()}
        mb = LC.cache_bytes(args.images, LATENT) / 2**20
        print(f"denoiser step, dit-tiny/2 + flow matching on {args.images} latents {LATENT} (cache {mb:.1f} MB, "
              f"{index['num_shards']} shards), batch {args.batch}, {args.repeats} x {args.steps} steps alternating "
              f"step by step, {torch.get_num_threads()} threads, {acc.device}"
              f"{', cold page cache' if args.cold else ''}")
        for mode in ("memory", "disk"):
            ms = [1000 * t for t in times[mode]]
            print(f"  {mode:<6} cache : median {statistics.median(ms):8.1f} ms/step, mean {statistics.mean(ms):8.1f} "
                  f"(N = {len(ms)} steps);  of which batch + latent sampling: median "
                  f"{1000 * statistics.median(fetch[mode]):.2f} ms;  batch read alone {1000 * reads[mode]:.2f} ms "
                  f"(50 batches, median of 3)")
        print(f"  same losses at every step: {losses['memory'] == losses['disk']}")
        ratio = statistics.median(times["disk"]) / statistics.median(times["memory"])
        print(f"  ratio disk/memory (medians): {ratio:.3f}   target <= 1.10: {'PASS' if ratio <= 1.10 else 'FAIL'}")
        paired = statistics.median(d / m for d, m in zip(times["disk"], times["memory"]))
        print(f"  median of per-step ratios  : {paired:.3f}")


if __name__ == "__main__":
    main()
