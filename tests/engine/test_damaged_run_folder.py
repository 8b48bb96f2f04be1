"""A run folder with damaged final weights reruns cleanly: the damaged stages resume from their last checkpoint
to the same weights instead of failing on every rerun."""

from __future__ import annotations

import json

from tests.engine.test_pipeline import FAST, SMOKE, assert_same_weights, run_cli

SHORT = [*FAST, "-o", "train.autoencoder.steps=4", "-o", "train.denoiser.steps=2", "-o", "evaluation.num_samples=2",
         "-o", "evaluation.reconstruction_images=4", "-o", "evaluation.spectrum_images=4"]


def test_truncated_final_weights_are_rebuilt_from_the_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    run_cli("run", str(SMOKE), "--output-dir", str(out), *SHORT)
    damaged = [out / "autoencoder" / "model.safetensors", out / "denoiser" / "ema.safetensors"]
    for path in damaged:
        (tmp_path / path.parent.name).mkdir(exist_ok=True)
        (tmp_path / path.parent.name / path.name).write_bytes(path.read_bytes())
        path.write_bytes(path.read_bytes()[:1000])
    text = run_cli("run", str(SMOKE), "--output-dir", str(out), *SHORT)
    for path in damaged:
        assert f"{path} is damaged" in text
        assert_same_weights(tmp_path / path.parent.name / path.name, path)
    assert "[autoencoder] resumed from" in text and "[denoiser] resumed from" in text
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    keys = [(r["stage"], r["step"]) for r in rows]
    assert len(keys) == len(set(keys)) and ("denoiser", 2) in keys
