"""A run that is split, or killed in any stage and rerun, ends with exactly the weights and metrics of an
uninterrupted run: every trained component is initialised from (seed, component) only, and every stage
resumes its data stream, random draws and optimizer state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "recipes" / "smoke.toml"
ARGS = ["-o", "evaluation.frechet=false", "-o", "train.autoencoder.ema_decay=0.9",
        "-o", "train.autoencoder.checkpoint_every=5", "-o", "train.denoiser.checkpoint_every=5",
        "-o", "latent_stats.images=64"]
WEIGHTS = ("autoencoder/model.safetensors", "autoencoder/ema.safetensors", "autoencoder/latent_stats.safetensors",
           "denoiser/model.safetensors", "denoiser/ema.safetensors")


def assert_same_run(a: Path, b: Path) -> None:
    import torch
    from safetensors.torch import load_file

    for name in WEIGHTS:
        sa, sb = load_file(str(a / name)), load_file(str(b / name))
        assert sa.keys() == sb.keys(), name
        for key in sa:
            assert torch.equal(sa[key], sb[key]), f"{name}: {key}"
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    ma, mb = ({k: v for k, v in m.items() if not k.startswith("time_")} for m in (ma, mb))
    assert ma == mb


def _command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "specmatch", "run", str(SMOKE), "--output-dir", str(out), *ARGS, *extra]


def _run_until(out: Path, trigger, *extra: str) -> bool:
    """Start the run, SIGKILL it as soon as ``trigger(out)`` holds; True if it was killed before finishing."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = out.parent / f"{out.name}.log"  # a file, not a pipe: a full pipe would stall the run
    with log.open("wb") as stderr:
        proc = subprocess.Popen(_command(out, *extra), stdout=subprocess.DEVNULL, stderr=stderr, env=env,
                                cwd=ROOT)
        while proc.poll() is None:
            if trigger(out):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.005)
    assert proc.returncode == 0, log.read_text()[-3000:]
    return False


def _has(pattern: str):
    return lambda out: any(out.glob(pattern))


def _never(out: Path) -> bool:
    return False


@pytest.mark.slow
def test_split_or_killed_in_every_stage_resumes_to_the_same_run(tmp_path):
    reference = tmp_path / "reference"
    assert not _run_until(reference, _never)
    # split: a run stopped after one denoiser step, then completed by the unchanged recipe (the denoiser once
    # depended on whether the process had trained, resumed or loaded the autoencoder before building it)
    split = tmp_path / "split"
    _run_until(split, _never, "-o", "train.denoiser.steps=1")
    _run_until(split, _never)
    assert_same_run(reference, split)

    killed = tmp_path / "killed"
    triggers = {
        "autoencoder, after its first checkpoint": _has("autoencoder/checkpoints/step_000000005"),
        "latent statistics (autoencoder complete)": _has("autoencoder/stage.json"),
        "denoiser, after its first checkpoint": _has("denoiser/checkpoints/step_000000005"),
        "evaluation (denoiser complete)": _has("denoiser/stage.json"),
    }
    kills = [name for name, trigger in triggers.items() if _run_until(killed, trigger)]
    assert len(kills) >= 3, kills  # a stage may finish between two polls; most kills must land
    _run_until(killed, _never)
    assert_same_run(reference, killed)
