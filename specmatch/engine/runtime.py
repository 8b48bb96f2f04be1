"""Devices, processes, seeds and per-step random generators: everything accelerate-related in one place."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import torch


def make_accelerator(run_cfg: Any, *, project_dir: str, grad_accumulation: int = 1):
    """The one Accelerator of a run. On a machine without CUDA we pass ``cpu=True``: without it, several
    CPU processes started by a launcher silently become independent rank-0 runs."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

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


def step_generators(seed: int, stage: str, step: int, rank: int, device: torch.device):
    """(cpu_generator, device_generator) for one step: control draws on CPU, noise on the model's device."""
    s = derive_seed(seed, stage, step, rank)
    cpu = torch.Generator().manual_seed(s)
    dev = cpu if device.type == "cpu" else torch.Generator(device=device).manual_seed(s)
    return cpu, dev


def in_launched_process() -> bool:
    return any(k in os.environ for k in ("LOCAL_RANK", "ACCELERATE_PROCESS_ID")) and \
        int(os.environ.get("WORLD_SIZE", "1")) > 1
