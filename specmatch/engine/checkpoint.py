"""Resumable training checkpoints (accelerate state, written atomically) and final weights (safetensors).

A checkpoint folder ``checkpoints/step_000120/`` holds models, optimizers, schedulers, EMA, every
process' RNG state and ``train_state.json`` (step and the stage key). It is written under a temporary name
and renamed when complete, so an interrupted save never looks like a checkpoint. "Latest" is the highest
complete step whose stage key matches the current recipe.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

_STEP_DIR = re.compile(r"^step_(\d{9})$")


class TrainState:
    """Step counter registered with accelerate so it is saved and restored with the rest."""

    def __init__(self) -> None:
        self.step = 0

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])


def latest_checkpoint(folder: Path, key: str) -> Path | None:
    if not folder.is_dir():
        return None
    best = None
    for child in folder.iterdir():
        m = _STEP_DIR.match(child.name)
        if not m or not (child / "train_state.json").is_file():
            continue
        try:
            meta = json.loads((child / "train_state.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if meta.get("key") != key:
            continue
        if best is None or int(m.group(1)) > int(best[0]):
            best = (m.group(1), child)
    return best[1] if best else None


def save_checkpoint(accelerator, folder: Path, step: int, key: str, keep: int = 2) -> Path:
    """Save the accelerate state for ``step``; keep the newest ``keep`` checkpoints."""
    final = folder / f"step_{step:09d}"
    tmp = folder / f".tmp_step_{step:09d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / "train_state.json").write_text(json.dumps({"step": step, "key": key}))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        old = sorted(p for p in folder.iterdir() if _STEP_DIR.match(p.name))
        for p in old[:-keep]:
            shutil.rmtree(p, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def save_weights(module, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Final weights as safetensors, written atomically (shared tensors are cloned first)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata=metadata or {})
    os.replace(tmp, path)


def load_weights(module, path: Path) -> None:
    from safetensors.torch import load_file

    module.load_state_dict(load_file(str(path), device="cpu"))


def final_weights(folder: Path) -> Path:
    """The weights a finished stage is used with: the EMA copy when there is one, else the trained model."""
    ema = folder / "ema.safetensors"
    return ema if ema.exists() else folder / "model.safetensors"


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def stage_complete(folder: Path, key: str) -> bool:
    marker = folder / "stage.json"
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("key") == key
    except (OSError, json.JSONDecodeError):
        return False


def mark_stage_complete(folder: Path, key: str, extra: dict | None = None) -> None:
    write_json_atomic(folder / "stage.json", {"key": key, **(extra or {})})
