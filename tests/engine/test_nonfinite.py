"""A NaN loss skips the update (weights stay finite and unchanged) and too many in a row stop the run cleanly."""

from __future__ import annotations

import json
from pathlib import Path

from specmatch.testing import invoke_cli

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "recipes" / "smoke.toml")
PLUGIN = str(Path(__file__).with_name("nan_plugin.py"))
FAST = ["-o", "evaluation.frechet=false", "-o", "run.log_every=1", "-o", "evaluation.num_samples=2"]


def curves(out: Path, stage: str) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["stage"] == stage]


def finite_weights(path: Path) -> bool:
    import torch
    from safetensors.torch import load_file

    return all(torch.isfinite(v.float()).all() for v in load_file(str(path)).values())


def test_nan_steps_are_skipped_and_the_run_finishes(tmp_path):
    out = tmp_path / "run"
    result = invoke_cli("--plugin-file", PLUGIN, "run", SMOKE, "--output-dir", str(out), *FAST,
                        "-o", "train.autoencoder.steps=10", "-o", "train.denoiser.steps=6",
                        "-o", "regularizers=[{ name = 'nan-at', params = { steps = [3, 7] } }]",
                        "-o", "objective={ name = 'nan-flow-matching', params = { steps = [2] } }")
    assert result.exit_code == 0, result.output
    assert "step 3: non-finite" in result.output and "reg/0-nan-at" in result.output
    ae = curves(out, "autoencoder")
    assert [r["skipped_steps"] for r in ae] == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    # a skipped step leaves the learning-rate schedule where it was: each row logs the rate its step used,
    # so the step after the skipped step 3 runs at step 3's rate, and the warm-up goes on after it
    assert ae[2]["lr"] < ae[3]["lr"] == ae[4]["lr"] < ae[5]["lr"]
    assert [r["skipped_steps"] for r in curves(out, "denoiser")] == [0, 0, 1, 1, 1, 1]
    assert finite_weights(out / "autoencoder" / "model.safetensors")
    assert finite_weights(out / "denoiser" / "model.safetensors")
    assert finite_weights(out / "denoiser" / "ema.safetensors")


def test_a_run_that_keeps_diverging_stops_with_a_clear_error(tmp_path):
    out = tmp_path / "run"
    result = invoke_cli("--plugin-file", PLUGIN, "run", SMOKE, "--output-dir", str(out), *FAST,
                        "-o", "train.autoencoder.steps=20", "-o", "train.autoencoder.max_nonfinite_steps=2",
                        "-o", "regularizers=[{ name = 'nan-at', params = { from_step = 5 } }]")
    assert result.exit_code == 1
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "Error: [autoencoder] step 7: non-finite loss/total, reg/0-nan-at for 3 step(s) in a row" in text
    assert "max_nonfinite_steps = 2" in text and "resume" in text
    assert not (out / "autoencoder" / "model.safetensors").exists()
