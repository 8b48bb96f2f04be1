"""Each stage's seconds survive a resume: a checkpoint keeps the seconds spent so far, the run that resumes
from it adds its own, the completion marker keeps the total, and a later run that reuses the stage reports
that total in metrics.json (time_<stage>_s)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from specmatch.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "recipes" / "smoke.toml"
ARGS = ["-o", "evaluation.frechet=false", "-o", "train.denoiser.steps=10", "-o", "evaluation.num_samples=8",
        "-o", "latent_stats.images=32"]
EARLIER = 1000.0  # what the edited checkpoint says an earlier, killed invocation spent


def run(out: Path) -> dict:
    result = CliRunner().invoke(main, ["run", str(SMOKE), "--output-dir", str(out), *ARGS], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads((out / "metrics.json").read_text())


def marker(folder: Path) -> dict:  # seconds rounded to 0.1 s there, to 0.01 s in metrics.json
    return json.loads((folder / "stage.json").read_text())


def test_stage_seconds_add_up_over_a_resume_and_are_kept_for_reuse(tmp_path):
    out = tmp_path / "run"
    first = run(out)
    ae = out / "autoencoder"
    for stage in ("autoencoder", "latent_stats", "denoiser", "evaluation"):
        assert first[f"time_{stage}_s"] > 0, stage
    assert marker(ae)["seconds"] == pytest.approx(first["time_autoencoder_s"], abs=0.06)
    assert marker(out / "denoiser")["seconds"] == pytest.approx(first["time_denoiser_s"], abs=0.06)
    step_20 = ae / "checkpoints" / "step_000000020"
    state = json.loads((step_20 / "train_state.json").read_text())
    assert 0 < state["seconds"] < first["time_autoencoder_s"]  # the seconds up to step 20 of 30

    # as if killed after step 20: the stage is incomplete, and its checkpoint says 1000 s were spent before
    (ae / "stage.json").unlink()
    shutil.rmtree(ae / "checkpoints" / "step_000000030")
    (step_20 / "train_state.json").write_text(json.dumps({**state, "seconds": EARLIER}))
    resumed = run(out)
    assert EARLIER < resumed["time_autoencoder_s"] < EARLIER + first["time_autoencoder_s"] * 5
    assert marker(ae)["seconds"] == pytest.approx(resumed["time_autoencoder_s"], abs=0.06)
    # the denoiser was complete: its time is the one its marker kept, not this run's few milliseconds
    assert resumed["time_denoiser_s"] == pytest.approx(first["time_denoiser_s"], abs=0.06)

    again = run(out)  # everything complete: every stage reports what it cost when it ran
    assert again["time_autoencoder_s"] == pytest.approx(resumed["time_autoencoder_s"], abs=0.06)
    assert again["time_latent_stats_s"] == pytest.approx(first["time_latent_stats_s"], abs=0.06)
    # the finished evaluation continues from its saved statistics: their seconds plus this run's final metrics
    from safetensors import safe_open

    with safe_open(str(out / "evaluation" / "statistics.safetensors"), "pt") as f:
        saved = float(f.metadata()["seconds"])
    assert 0 < saved <= first["time_evaluation_s"] and again["time_evaluation_s"] > saved


    # a checkpoint that does not record its seconds (an older specmatch wrote it): no time rather than an
    # undercount
    (ae / "stage.json").unlink()
    shutil.rmtree(ae / "checkpoints" / "step_000000030")
    state = json.loads((step_20 / "train_state.json").read_text())
    del state["seconds"]
    (step_20 / "train_state.json").write_text(json.dumps(state))
    older = run(out)
    assert "time_autoencoder_s" not in older and "seconds" not in marker(ae)
    assert older["time_evaluation_s"] > 0
