"""`specmatch analyze`, `specmatch compare` and `specmatch recipes diff` on real (tiny) runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from specmatch.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = ["-o", "autoencoder.params.preset='micro-f2d4'", "-o", "data.params.resolution=32",
        "-o", "data.params.num_images=64", "-o", "train.autoencoder.steps=6", "-o", "train.autoencoder.batch_size=8",
        "-o", "train.autoencoder.checkpoint_every=0", "-o", "train.autoencoder.analyze_every=3",
        "-o", "latent_stats.images=16", "-o", "evaluation.frechet=false",
        "-o", "evaluation.reconstruction_images=8", "-o", "evaluation.spectrum_images=8"]


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    out = {}
    for name in ("sdvae", "dsm"):
        out[name] = base / name
        invoke("run", str(ROOT / "recipes" / "cpu" / f"{name}.toml"), "--output-dir", str(out[name]), *TINY)
    return out


def test_analyze_writes_report_and_figure(two_runs):
    run = two_runs["dsm"]
    text = invoke("analyze", str(run), "--images", "12", "--deltas", "0,1", "--levels", "0,8,12")
    report = json.loads((run / "analysis.json").read_text())
    assert report["n_images"] == 12 and report["latent_shape"] == [4, 16, 16]
    assert set(report["targets"]) == {"0", "1"}
    assert all(t["kl_to_latent_dc_removed"] >= 0 for t in report["targets"].values())
    for dist in (report["image"]["mean"], report["latent"]["mean"], report["targets"]["1"]["mean"]):
        assert len(dist) == 16 and abs(sum(dist) - 1) < 1e-4
    # delta tilts the target towards high frequencies: its slope is flatter than the image's
    assert report["targets"]["1"]["slope"] > report["image"]["slope"]
    assert set(report["lowpass"]) == {"lowpass_psnr_k0", "lowpass_psnr_k8", "lowpass_psnr_k12"}
    assert (run / "spectrum.png").stat().st_size > 1000
    assert "KL(target||latent)" in text
    # spectrum diagnostics were logged during training (analyze_every = 3)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("diag/spectrum_kl_delta1" in r for r in rows)


def test_analyze_rejects_a_folder_that_is_not_a_run(tmp_path):
    result = CliRunner().invoke(main, ["analyze", str(tmp_path)])
    assert result.exit_code == 1 and "not a specmatch run folder" in result.output
    assert "Traceback" not in result.output


def test_compare_and_recipes_diff(two_runs):
    text = invoke("compare", str(two_runs["sdvae"]), str(two_runs["dsm"]))
    assert text.splitlines()[0].split() == ["metric", "sdvae", "dsm"]
    assert any(line.startswith("recon_psnr ") for line in text.splitlines())
    data = json.loads(invoke("compare", "--json", str(two_runs["sdvae"]), str(two_runs["dsm"])))
    assert set(data) == {str(two_runs["sdvae"]), str(two_runs["dsm"])}
    diff = invoke("recipes", "diff", str(ROOT / "recipes/cpu/sdvae.toml"), str(ROOT / "recipes/cpu/dsm.toml"))
    keys = {line.split()[0] for line in diff.splitlines()[1:]}
    assert "regularizers[0].name" in keys and "run.name" in keys and "data.params.resolution" not in keys
    same = invoke("recipes", "diff", str(ROOT / "recipes/cpu/sdvae.toml"), str(ROOT / "recipes/cpu/sdvae.toml"))
    assert "identical" in same
