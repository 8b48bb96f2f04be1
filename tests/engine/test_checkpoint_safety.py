"""Checkpoints, final weights and stage markers: nothing executes on load, damaged files are survived,
resume stays bit-identical, one metrics.jsonl row per (stage, step), disk full is named.

A tiny model (with dropout, so the global RNG matters) is trained through StageTrainer, as the stages do.
"""

from __future__ import annotations

import errno
import json
import logging
import pickle
from pathlib import Path

import pytest
import torch

from specmatch.core.errors import SpecmatchError
from specmatch.core.schema import OptimConfig
from specmatch.engine.checkpoint import load_weights, mark_stage_complete, save_weights, stage_complete
from specmatch.engine.training import MetricsLog, StageTrainer, begin_stage, make_optimizer

STEPS = 6
DATA = [(torch.randn(3),) for _ in range(16)]


class Stop(Exception):
    pass


class Lines(logging.Handler):
    """The engine's log messages, as the console would print them."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def train(folder: Path, *, crash_at: int | None = None, key: str = "k1", init_seed: int = 0, resume: bool = True,
          steps: int = STEPS):
    """Train ``steps`` steps (checkpoint every 2) in ``folder``; returns (trainer, model, ema, printed lines)."""
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    begin_stage(acc)
    torch.manual_seed(init_seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1))
    cfg = OptimConfig(lr=1e-2, betas=(0.9, 0.99), weight_decay=0.01, warmup_steps=3, steps=steps,
                      batch_size=4, checkpoint_every=2)
    opt, sched = make_optimizer(model.parameters(), cfg)
    model, opt, sched = acc.prepare(model, opt, sched)
    trainer = StageTrainer(accelerator=acc, name="toy", folder=folder, key=key, cfg=cfg, seed=7,
                           log=MetricsLog(folder / "metrics.jsonl", acc, "toy"), log_every=1, resume=resume)
    trainer.track("0", model=model, optimizer=opt, scheduler=sched)  # files model-0, optimizer-0, ...
    ema = trainer.add_ema(model, 0.5)

    def step_fn(batch, step, cpu_gen, dev_gen):
        if step == crash_at:
            raise Stop
        loss = model(batch[0]).pow(2).mean()
        acc.backward(loss)
        loss = loss.detach()
        opt.step()
        sched.step()
        opt.zero_grad()
        ema.update(model, step=step)
        return {"loss": float(loss), "nan": float("nan"), "inf": float("-inf")}

    printed = Lines()
    logger = logging.getLogger("specmatch")
    logger.addHandler(printed)
    logger.setLevel(logging.DEBUG)
    try:
        trainer.restore()
        trainer.run(DATA, step_fn)
    except Stop:
        pass
    finally:
        logger.removeHandler(printed)
    return trainer, model, ema, printed.lines


def states(model, ema) -> dict[str, torch.Tensor]:
    return {**{f"m.{k}": v for k, v in model.state_dict().items()},
            **{f"e.{k}": v for k, v in ema.module.state_dict().items()}}


def assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    _, model, ema, _ = train(tmp_path_factory.mktemp("ref"))
    return states(model, ema)


def rows(folder: Path) -> list[dict]:
    def no_bare_constants(token):
        raise AssertionError(f"{token} is not JSON")

    return [json.loads(line, parse_constant=no_bare_constants)
            for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_resume_is_bit_identical_with_one_metrics_row_per_step(tmp_path, reference):
    train(tmp_path, crash_at=5)  # checkpoints 2 and 4, rows 1..5
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert ckpts == ["step_000000002", "step_000000004"]
    # a row for a step the resumed run replays must not survive (as after a kill between checkpoints)
    assert [r["step"] for r in rows(tmp_path)] == [1, 2, 3, 4, 5]
    trainer, model, ema, printed = train(tmp_path, init_seed=1)  # other initial weights: restore must win
    assert trainer.step == STEPS and any("resumed from" in line and "step 4" in line for line in printed)
    assert_identical(states(model, ema), reference)
    logged = rows(tmp_path)
    assert [r["step"] for r in logged] == [1, 2, 3, 4, 5, 6]
    assert logged[0]["nan"] is None and logged[0]["inf"] is None  # non-finite numbers are JSON null


def test_checkpoints_are_safetensors_and_json_only(tmp_path):
    train(tmp_path)
    ckpt = tmp_path / "checkpoints" / f"step_{STEPS:09d}"
    names = sorted(p.name for p in ckpt.iterdir())
    assert all(n.endswith((".safetensors", ".json")) for n in names), names
    meta = json.loads((ckpt / "train_state.json").read_text())
    assert meta["step"] == STEPS and meta["key"] == "k1"
    assert sorted(meta["files"]) == [n for n in names if n != "train_state.json"]
    assert {"model-0.safetensors", "ema-0.safetensors", "optimizer-0.safetensors", "optimizer-0.json",
            "scheduler-0.json", "rng-0.safetensors"} <= set(names)


class _CreatesFile:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


ACCELERATE_PICKLES = ("custom_checkpoint_0.pkl", "custom_checkpoint_1.pkl", "optimizer.bin", "scheduler.bin",
                      "random_states_0.pkl", "pytorch_model.bin")


@pytest.mark.parametrize("tamper, resumed_step", [("every file", 2), ("every file and train_state", 2),
                                                  ("accelerate's custom-object pickles", 4)])
def test_a_tampered_checkpoint_never_executes_and_resume_falls_back(tmp_path, reference, tamper, resumed_step):
    train(tmp_path, crash_at=5)
    newest = tmp_path / "checkpoints" / "step_000000004"
    marker = tmp_path / "PWNED"
    evil = pickle.dumps(_CreatesFile(marker))  # creates ``marker`` if anything ever unpickles it
    names = {n for n in ACCELERATE_PICKLES if n.startswith("custom")}  # loaded with weights_only=False before
    if tamper != "accelerate's custom-object pickles":
        names |= set(ACCELERATE_PICKLES) | {p.name for p in newest.iterdir()}
        names -= {"train_state.json"} if tamper == "every file" else set()
    for name in names:
        (newest / name).write_bytes(evil)
    _, model, ema, printed = train(tmp_path, init_seed=1)
    assert not marker.exists()
    assert any("resumed from" in line and f"step {resumed_step}" in line for line in printed), printed
    if tamper != "accelerate's custom-object pickles":  # one line names the damaged file
        assert any(line.startswith(f"[toy] checkpoint step_000000004 not used: {newest}/") for line in printed)
    assert_identical(states(model, ema), reference)


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, reference):
    train(tmp_path, crash_at=5)
    damaged = tmp_path / "checkpoints" / "step_000000004" / "optimizer-0.safetensors"
    size = damaged.stat().st_size
    damaged.write_bytes(damaged.read_bytes()[:100])
    _, model, ema, printed = train(tmp_path, init_seed=1)
    assert [line for line in printed if "not used" in line] == [
        f"[toy] checkpoint step_000000004 not used: {damaged}: 100 bytes, {size} were written"]
    assert any("resumed from" in line and "step 2" in line for line in printed)
    assert_identical(states(model, ema), reference)


def test_checkpoints_of_another_stage_key_are_not_pruned(tmp_path):
    train(tmp_path, key="first")  # checkpoints 2, 4, 6: keeps 4 and 6
    train(tmp_path, key="second", steps=3)  # checkpoints 2 and 3, pruned among themselves only
    by_key: dict[str, list[int]] = {}
    for p in (tmp_path / "checkpoints").iterdir():
        meta = json.loads((p / "train_state.json").read_text())
        by_key.setdefault(meta["key"], []).append(meta["step"])
    assert {k: sorted(v) for k, v in by_key.items()} == {"first": [4, 6], "second": [2, 3]}


def test_a_damaged_final_weight_makes_the_stage_incomplete(tmp_path):
    model = torch.nn.Linear(4, 2)
    save_weights(model, tmp_path / "model.safetensors")
    save_weights(model, tmp_path / "ema.safetensors")
    stats = tmp_path / "latent_stats.safetensors"
    save_weights(torch.nn.BatchNorm1d(2), stats)
    mark_stage_complete(tmp_path, "k", {"steps": 3})
    mark_stage_complete(tmp_path / "latent_stats", "k", files=[stats])
    assert stage_complete(tmp_path, "k") and stage_complete(tmp_path / "latent_stats", "k")
    assert not stage_complete(tmp_path, "other")
    ema = tmp_path / "ema.safetensors"
    ema.write_bytes(ema.read_bytes()[:-8])
    assert not stage_complete(tmp_path, "k")
    stats.write_bytes(b"")
    assert not stage_complete(tmp_path / "latent_stats", "k")
    # same size, different content (e.g. zeros after a power cut): the recorded sha256 catches it
    path = tmp_path / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-4:] = b"\0\0\0\0"
    path.write_bytes(bytes(data))
    (tmp_path / "ema.safetensors").unlink()
    mark = json.loads((tmp_path / "stage.json").read_text())
    mark["files"].pop("ema.safetensors")
    (tmp_path / "stage.json").write_text(json.dumps(mark))
    assert not stage_complete(tmp_path, "k")


def test_load_weights_names_the_file_and_the_problem(tmp_path):
    model = torch.nn.Linear(4, 2)
    path = tmp_path / "model.safetensors"
    save_weights(model, path)
    with pytest.raises(SpecmatchError, match=r"do not fit the Linear .*shape: weight \(2, 4\) \(expected \(3, 4\)\)"):
        load_weights(torch.nn.Linear(4, 3), path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(SpecmatchError, match=f"cannot load weights from {path}: .*truncated"):
        load_weights(model, path)
    with pytest.raises(SpecmatchError, match="missing"):
        load_weights(model, tmp_path / "absent.safetensors")


def test_disk_full_names_the_folder_and_leaves_no_checkpoint(tmp_path, monkeypatch):
    import safetensors.torch

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", no_space)
    with pytest.raises(SpecmatchError, match=f"no space left on device while writing .* in {tmp_path}.*needs about"):
        train(tmp_path)
    assert list((tmp_path / "checkpoints").iterdir()) == []  # no complete-looking or half-written folder
    with pytest.raises(SpecmatchError, match=f"no space left on device while writing model.safetensors in {tmp_path}"):
        save_weights(torch.nn.Linear(4, 2), tmp_path / "model.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "metrics.jsonl"]
