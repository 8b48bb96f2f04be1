"""A stage's optimisation loop, shared by the autoencoder and denoiser stages.

The loop is explicit: for each global step, fetch the step's batch, run the stage's ``step_fn`` (which does
forward, backward and optimizer steps through the helpers here), log, checkpoint. Resume restores models,
optimizers, schedulers, EMA, RNG and the step from the newest intact checkpoint of the stage key
(``engine/checkpoint.py``: safetensors and JSON, nothing that executes code when loaded).
"""

from __future__ import annotations

import contextlib
import logging
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from specmatch.core.errors import SpecmatchError
from specmatch.core.layout import CHECKPOINTS, EMA_FILE, MODEL_FILE
from specmatch.nn.batch_noise import batch_rows

from .checkpoint import CheckpointState, DamagedFile, atomic_write, checkpoint_candidates, checkpoint_seconds, \
    load_checkpoint, mark_stage_complete, no_space_message, save_checkpoint, save_weights
from .data import step_loader
from .runtime import step_generators
from .schedule import warmup_lambda


log = logging.getLogger(__name__)


def begin_stage(accelerator) -> None:
    """Forget the previous stage's prepared models, optimizers and schedulers (and free their memory)."""
    accelerator.free_memory()


class NonFiniteGuard:
    """Skips updates whose loss terms or gradient norm are NaN/inf, and stops a stage that keeps producing them.

    Each micro-batch's logged values are ``observe``d; ``skip(step)`` then decides for all processes at once
    (one process with a bad value makes every process skip, so replicas stay identical). A skipped step leaves
    the weights, optimizer and EMA as they were. After ``limit`` skipped steps in a row the stage stops with an
    error that names the terms, so a diverged run fails fast instead of training on garbage.
    """

    def __init__(self, accelerator, stage: str, limit: int):
        self.accelerator, self.stage, self.limit = accelerator, stage, limit
        self.bad: set[str] = set()
        self.in_a_row = 0
        self.skipped = 0

    def observe(self, values: dict[str, float]) -> None:
        self.bad.update(k for k, v in values.items() if not math.isfinite(v))

    def skip(self, step: int) -> bool:
        acc = self.accelerator
        bad_anywhere = len(self.bad)
        if acc.num_processes > 1:  # one collective per step, only when there are replicas to keep in step
            flag = torch.tensor([float(bad_anywhere)], device=acc.device)
            bad_anywhere = acc.reduce(flag, reduction="sum").item()
        bad, self.bad = sorted(self.bad), set()
        if bad_anywhere == 0:
            self.in_a_row = 0
            return False
        self.in_a_row += 1
        self.skipped += 1
        what = ", ".join(bad) if bad else "a loss on another process"
        if self.in_a_row > self.limit:
            raise SpecmatchError(
                f"[{self.stage}] step {step}: non-finite {what} for {self.in_a_row} step(s) in a row "
                f"(train.{self.stage}.max_nonfinite_steps = {self.limit}); stopped. Checkpoints are kept: "
                f"rerun unchanged to resume from the last one, or lower the learning rate or the term's weight, "
                f"or set run.mixed_precision = 'no' (a changed recipe restarts the stage)")
        log.warning(f"[{self.stage}] step {step}: non-finite {what}; update skipped")
        return True


def make_optimizer(params, cfg: Any, lr: float | None = None):
    params = [p for p in params if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr or cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_lambda(cfg.warmup_steps))
    return opt, sched


def _json_value(v: Any) -> Any:
    """NaN and infinities become null: JSON has no token for them (the NaN guard's message names the terms)."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


class MetricsLog:
    """Training curves as JSON lines (one object per logged step and stage), plus accelerate trackers."""

    def __init__(self, path: Path, accelerator, stage: str):
        self.path, self.accelerator, self.stage = path, accelerator, stage

    def write(self, step: int, values: dict[str, float]) -> None:
        if not self.accelerator.is_main_process:
            return
        row = {"stage": self.stage, "step": step, **{k: _json_value(v) for k, v in values.items()}}
        with no_space_message(self.path.parent, self.path.name), self.path.open("a") as f:
            f.write(json.dumps(row, allow_nan=False) + "\n")
        if self.accelerator.trackers:
            self.accelerator.log({f"{self.stage}/{k}": v for k, v in values.items()}, step=step)

    def keep_until(self, step: int) -> None:
        """Drop this stage's rows after ``step`` (the resumed step), so replayed steps are not logged twice.

        Rewritten atomically; a line cut short by a kill is dropped, and old non-JSON NaN tokens become null.
        """
        if not self.accelerator.is_main_process or not self.path.is_file():
            return
        rows = []
        for line in self.path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if not isinstance(row, dict) or (row.get("stage") == self.stage and row.get("step", 0) > step):
                continue
            rows.append(json.dumps({k: _json_value(v) for k, v in row.items()}, allow_nan=False) + "\n")
        with atomic_write(self.path) as tmp:
            tmp.write_text("".join(rows))


class StageTrainer:
    """Runs a stage's steps, logs, checkpoints and resumes.

    Checkpoints hold what ``track`` registered, plus the EMA copies from ``add_ema``.
    """

    def __init__(self, *, accelerator, name: str, folder: Path, key: str, cfg: Any, seed: int, log: MetricsLog,
                 log_every: int, resume: bool):
        self.accelerator, self.name, self.folder, self.key = accelerator, name, folder, key
        self.cfg, self.seed, self.log, self.log_every, self.resume = cfg, seed, log, log_every, resume
        self.step = 0
        #: seconds spent on this stage before the checkpoint it resumed from (None: that checkpoint does not say)
        self.carried: float | None = 0.0
        self._since = time.perf_counter()
        self.emas: list[Any] = []
        self.tracked = CheckpointState()
        self.guard = NonFiniteGuard(accelerator, name, cfg.max_nonfinite_steps)

    def micro_batches(self, model: nn.Module, *tensors: torch.Tensor | None) -> Iterator[tuple]:
        """The step's ``grad_accumulation`` micro-batches of ``tensors`` (``None`` passes through).

        Every micro-batch but the last runs under accelerate's ``no_sync``, so several processes all-reduce
        gradients once per optimizer step. (``accelerator.accumulate`` would also divide every backward by
        the stage's accumulation count, the discriminator's single-batch turns included, and gate
        ``optimizer.step`` on a hidden counter; the loop here keeps both explicit.) The caller divides each
        micro-batch's loss by ``cfg.grad_accumulation``.
        """
        n = self.cfg.grad_accumulation
        split = [list(t.chunk(n)) if t is not None else None for t in tensors]
        count = min((len(s) for s in split if s is not None), default=1)
        for i in range(count):
            sync = i == count - 1
            with contextlib.nullcontext() if sync else self.accelerator.no_sync(model):
                yield tuple(s[i] if s is not None else None for s in split)

    def update(self, step: int, logs: dict[str, float], *, parameters, optimizer, scheduler, clip: float,
               ema=None, ema_source: nn.Module | None = None, grad_key: str = "grad_norm") -> bool:
        """The one update step: clip (logging the norm), skip on non-finite values, step, EMA, zero grads.

        Returns whether the update was applied. Logs ``grad_key`` (when clipping) and ``skipped_steps``.
        """
        if clip > 0:
            logs[grad_key] = float(self.accelerator.clip_grad_norm_(parameters, clip))
            self.guard.observe({grad_key: logs[grad_key]})
        applied = not self.guard.skip(step)
        if applied:
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update(ema_source, step=step)
        optimizer.zero_grad(set_to_none=True)
        logs["skipped_steps"] = self.guard.skipped
        return applied

    def track(self, name: str, *, model=None, optimizer=None, scheduler=None) -> None:
        """Checkpoint these (prepared) objects under ``name``; call before ``restore``."""
        for kind, obj in (("models", model), ("optimizers", optimizer), ("schedulers", scheduler)):
            if obj is not None:
                self.tracked.add(kind, name, obj)

    def add_ema(self, module: nn.Module, decay: float):
        """timm's ModelEmaV3 keeps the EMA copy; checkpointed with the stage."""
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(self.accelerator.unwrap_model(module), decay=decay, device=self.accelerator.device)
        self.emas.append(ema)
        return ema

    def checkpoint_state(self) -> CheckpointState:
        """What a checkpoint holds: the ``track``ed models, optimizers and schedulers, and the EMA copies."""
        state = CheckpointState()
        state.models, state.optimizers = dict(self.tracked.models), dict(self.tracked.optimizers)
        state.schedulers = dict(self.tracked.schedulers)
        state.emas = {str(i): ema for i, ema in enumerate(self.emas)}
        return state

    def save_final(self, model: nn.Module, ema=None, metadata: dict[str, str] | None = None,
                   record: dict | None = None) -> nn.Module:
        """Write the stage's final weights (and EMA copy), mark the stage complete; the model to use next.

        The main process writes; every process waits for it. Returns the EMA copy when there is one, in eval
        mode, else the trained model. ``record`` adds entries to the stage's ``stage.json``.
        """
        acc = self.accelerator
        if acc.is_main_process:
            meta = {"stage_key": self.key, **(metadata or {})}
            save_weights(model, self.folder / MODEL_FILE, meta)
            if ema is not None:
                save_weights(ema.module, self.folder / EMA_FILE, meta)
            mark_stage_complete(self.folder, self.key, {"steps": self.cfg.steps, **(record or {})})
        acc.wait_for_everyone()
        return (ema.module if ema is not None else model).eval()

    def restore(self) -> int:
        """Load the newest intact checkpoint of this stage key (falling back past damaged ones); returns the step.

        The stage's rows after that step are dropped from metrics.jsonl, so each (stage, step) has one row.
        """
        acc = self.accelerator
        if self.resume:
            state = self.checkpoint_state()
            touched = False
            for path in checkpoint_candidates(self.folder / CHECKPOINTS, self.key, unreadable=True):
                try:
                    self.step = load_checkpoint(acc, path, state)
                except DamagedFile as e:
                    log.warning(f"[{self.name}] checkpoint {path.name} not used: {e}")
                    touched = touched or e.partial
                    continue
                log.info(f"[{self.name}] resumed from {path} (step {self.step})")
                self.carried = checkpoint_seconds(path)
                break
            else:
                if touched:  # a fresh start needs the freshly built weights, which are partly overwritten
                    raise SpecmatchError(
                        f"[{self.name}] no checkpoint in {self.folder / CHECKPOINTS} could be loaded; rerun with "
                        f"--no-resume, or delete that folder, to train the stage from the start")
                log.debug(f"[{self.name}] no checkpoint of this stage key to resume from; starting at step 0")
        else:
            log.debug(f"[{self.name}] resume is off (--no-resume): starting at step 0")
        self.log.keep_until(self.step)
        self._since = time.perf_counter()
        return self.step

    def seconds(self) -> float | None:
        """The stage's seconds so far, over every invocation (None when an earlier one's are unknown)."""
        return None if self.carried is None else self.carried + time.perf_counter() - self._since

    def run(self, dataset, step_fn: Callable[[Any, int, torch.Generator, torch.Generator], dict[str, float]],
            num_workers: int = 0) -> None:
        from tqdm.auto import tqdm

        acc = self.accelerator
        start = self.step
        total = self.cfg.steps
        if start >= total:
            return
        world = acc.num_processes
        loader = step_loader(dataset, global_batch=self.cfg.batch_size * world, seed=self.seed,
                             start_step=start, num_steps=total, rank=acc.process_index, world=world,
                             num_workers=num_workers)
        bar = tqdm(total=total, initial=start, desc=self.name, disable=not acc.is_local_main_process,
                   dynamic_ncols=True)
        with torch.random.fork_rng(devices=[]):  # starting a loader draws a seed from the global RNG, which
            batches = iter(loader)                # would shift dropout after a resume (restored RNG, new loader)
        t0 = time.perf_counter()
        first_row, rows = acc.process_index * self.cfg.batch_size, world * self.cfg.batch_size
        for step, batch in zip(range(start, total), batches):
            cpu_gen, dev_gen = step_generators(self.seed, self.name, step, acc.device)
            with batch_rows(first_row, rows):  # every process draws the global batch's noise and keeps its rows (nn/batch_noise.py)
                logs = step_fn(batch, step, cpu_gen, dev_gen)
            self.step = step + 1
            if (step + 1) % self.log_every == 0 or step + 1 == total:
                logs["time/step_seconds"] = (time.perf_counter() - t0) / max(1, step + 1 - start)
                self.log.write(step + 1, logs)
                bar.set_postfix({k.split("/")[-1]: f"{v:.4g}" for k, v in logs.items() if k.startswith("loss/")})
            bar.update(1)
            every = self.cfg.checkpoint_every
            if every and (step + 1) % every == 0 and step + 1 < total:
                save_checkpoint(acc, self.folder / CHECKPOINTS, step + 1, self.key, self.checkpoint_state(),
                                seconds=self.seconds())
        bar.close()
        save_checkpoint(acc, self.folder / CHECKPOINTS, total, self.key, self.checkpoint_state(),
                        seconds=self.seconds())
