"""Devices, processes, seeds and per-step random generators: everything accelerate-related in one place."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import torch


def make_accelerator(run_cfg: Any, *, project_dir: str, grad_accumulation: int = 1):
    """The one Accelerator of a run. On a machine without CUDA we pass ``cpu=True``: without it, several
    CPU processes started by a launcher silently become independent rank-0 runs."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

    from accelerate.state import AcceleratorState

    # A second run in one process (a study, a notebook, the tests) may ask for another precision; accelerate
    # keeps the first run's settings in a process-wide singleton unless it is reset (the process and device
    # part, PartialState, stays).
    AcceleratorState._reset_state()
    use_cpu = bool(run_cfg.cpu) or not torch.cuda.is_available()
    trackers = _available_trackers(run_cfg.trackers)
    return Accelerator(cpu=use_cpu, mixed_precision=run_cfg.mixed_precision,
                       gradient_accumulation_steps=grad_accumulation,
                       log_with=trackers or None,
                       # regularizers with parameters (VF projection) or branches (EQ-VAE) skip some steps
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
                       project_config=ProjectConfiguration(project_dir=project_dir, logging_dir=project_dir))


def _available_trackers(names: tuple[str, ...]) -> list[str]:
    import importlib.util

    from specmatch.core.errors import SpecmatchError

    modules = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "aim": "aim"}
    out = []
    for name in names:
        module = modules.get(name)
        if module is None:
            raise SpecmatchError(f"run.trackers: unknown tracker {name!r} (supported: {', '.join(modules)})")
        if importlib.util.find_spec(module) is None:
            raise SpecmatchError(f"run.trackers: {name!r} is requested but the package {module!r} is not "
                                 f"installed (pip install {module})")
        out.append(name)
    return out


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any tuple: the same (seed, stage, step, rank) always gives the same stream."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def step_generators(seed: int, stage: str, step: int, device: torch.device):
    """(control_generator, noise_generator) for one step, the same on every process.

    Control draws (which DSM level, which EQ-VAE transform) come from a CPU generator, noise (posterior
    samples, diffusion noise) from one on the model's device. They are seeded separately, so the same recipe
    draws the same controls on CPU and GPU, and the engine can replay the control stream for every
    micro-batch of one optimizer step without repeating the noise. Neither depends on the process: controls
    are per global batch, and noise is drawn for the global batch with each process keeping its rows
    (``specmatch.nn.batch_noise``), so the number of processes does not change what a run trains on.
    """
    control = torch.Generator().manual_seed(derive_seed(seed, stage, step, "control"))
    noise = torch.Generator(device=device).manual_seed(derive_seed(seed, stage, step, "noise"))
    return control, noise


def replay(generator: torch.Generator) -> torch.Generator:
    """A new generator in the same state: its draws repeat ``generator``'s next draws."""
    copy = torch.Generator(device=generator.device)
    copy.set_state(generator.get_state())
    return copy


@contextlib.contextmanager
def seeded_init(seed: int, *parts: Any):
    """Run a block (typically building a component) with the global torch RNG seeded from (seed, parts).

    Module constructors draw their initial weights from the process-global RNG, whose state depends on what
    the process did before (trained, resumed or loaded an earlier stage). Seeding it per component makes
    every initialisation depend only on the recipe's seed and the component; the caller's RNG state is
    restored afterwards. Factories build on the CPU, so only the CPU generator is forked.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "init", *parts))
        yield


def seed_stage_rng(seed: int, stage: str, rank: int) -> None:
    """Seed the global RNGs (dropout and other draws without an explicit generator) at a stage's start."""
    torch.manual_seed(derive_seed(seed, "global", stage, rank))
