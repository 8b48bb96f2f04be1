"""Reading a cell's run folder: metrics, timings, diagnostics in either analysis.json layout, curves, grids, recipe."""

import json

from specmatch.study.cells import Cell, CellOutcome
from specmatch.study.collect import analysis_scalars, collect_cell
from tests.study.run_folders import spectrum, write_run


def outcome(run, status="complete", seed=0):
    return CellOutcome(cell=Cell(recipe="ae", seed=seed, run_dir=run), status=status)


def test_a_run_folder_becomes_numbers(tmp_path):
    run = write_run(tmp_path, "r", seed=2, gen_fid=30.0, psnr=24.0, latent_slope=-0.7)
    data = collect_cell(outcome(run))
    # counts and labels left out; the latent statistics' scale is a metric, not a diagnostic
    assert data.metrics == {"gen_fid": 30.0, "gen_kid": 0.3, "recon_psnr": 24.0, "latent_std": 1.5}
    assert data.timings == {"time_autoencoder_s": 3.5}
    assert data.diagnostics["spectrum_latent_slope"] == -0.7
    assert data.diagnostics["spectrum_kl_delta1"] == abs(-0.7 + 0.5)
    assert data.spectrum["latent"]["slope"] == -0.7
    assert {r["stage"] for r in data.curves} == {"autoencoder", "denoiser"} and len(data.curves) == 8
    assert set(data.grids) == {"reconstructions", "samples"}
    assert data.recipe["run"]["seed"] == 2 and data.problems == []


def test_old_analysis_layout(tmp_path):
    report = spectrum(-0.9)
    report["lowpass"] = {"lowpass_psnr_k0": 30.0, "lowpass_psnr_k4": 22.0}
    report["targets"]["1"]["kl_to_latent"] = 0.123
    scalars = analysis_scalars(report)
    assert scalars["analysis_kl_delta1"] == 0.123 and scalars["analysis_latent_slope"] == -0.9
    assert scalars["analysis_lowpass_psnr_k4"] == 22.0


def test_per_diagnostic_analysis_layout(tmp_path):
    report = {"latent-spectrum": {"settings": {"deltas": [0, 1]}, "n": 64,
                                  "scalars": {"spectrum_kl_delta1": 0.5, "bad": "text", "flag": True}},
              "lowpass": {"settings": {}, "n": 64, "report": {"lowpass_psnr_k2": 28.0, "levels": [0, 2]}},
              "spectrum-only-report": {"n": 8, "report": spectrum(-0.4)}}
    scalars = analysis_scalars(report)
    assert scalars["analysis_spectrum_kl_delta1"] == 0.5
    assert "analysis_bad" not in scalars and "analysis_flag" not in scalars  # only numbers
    assert scalars["analysis_lowpass_lowpass_psnr_k2"] == 28.0
    assert scalars["analysis_latent_slope"] == -0.4


def test_analysis_json_in_the_run_folder_is_read(tmp_path):
    run = write_run(tmp_path, "r", seed=0, gen_fid=30.0, psnr=24.0, latent_slope=-0.7)
    (run / "analysis.json").write_text(json.dumps({"latent-spectrum": {"n": 8, "scalars": {"x_kl": 1.5}}}))
    assert collect_cell(outcome(run)).diagnostics["analysis_x_kl"] == 1.5


def test_damaged_files_are_problems_not_crashes(tmp_path):
    run = write_run(tmp_path, "r", seed=0, gen_fid=30.0, psnr=24.0, latent_slope=-0.7)
    (run / "metrics.json").write_text("{not json")
    (run / "recipe.toml").write_text("[run\n")
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"stage": "denoiser", "st')  # a line cut short by a kill
    data = collect_cell(outcome(run))
    assert data.metrics == {} and data.recipe == {} and len(data.curves) == 8
    assert any("metrics.json" in p and "JSON" in p for p in data.problems)
    assert any("recipe.toml" in p for p in data.problems)


def test_failed_and_missing_cells(tmp_path):
    assert collect_cell(outcome(tmp_path / "nothing", status="failed")).values() == {}
    (tmp_path / "empty").mkdir()
    data = collect_cell(outcome(tmp_path / "empty"))
    assert data.values() == {} and any("missing" in p for p in data.problems)


def test_unstamped_numbers_of_metrics_json_are_diagnostics(tmp_path):
    run = write_run(tmp_path, "r", seed=0, gen_fid=30.0, psnr=24.0, latent_slope=-0.7)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["my_diagnostic_score"] = 0.25  # a third-party diagnostic's scalar: no provenance stamp
    (run / "metrics.json").write_text(json.dumps(metrics))
    data = collect_cell(outcome(run))
    assert data.diagnostics["my_diagnostic_score"] == 0.25 and "my_diagnostic_score" not in data.metrics
    del metrics["provenance"]  # an older metrics.json: the built-in diagnostics' names decide
    (run / "metrics.json").write_text(json.dumps(metrics))
    data = collect_cell(outcome(run))
    assert set(data.diagnostics) == {"spectrum_kl_delta1", "spectrum_latent_slope"}
    assert "my_diagnostic_score" in data.metrics


def test_report_files_stand_in_for_a_missing_metrics_json(tmp_path):
    run = write_run(tmp_path, "r", seed=0, gen_fid=30.0, psnr=24.0, latent_slope=-0.7)
    (run / "metrics.json").unlink()
    (run / "lowpass.json").write_text(json.dumps({"lowpass_psnr_k2": 28.0, "levels": [0, 2]}))
    data = collect_cell(outcome(run))
    assert data.metrics == {} and data.diagnostics["spectrum_latent_slope"] == -0.7
    assert data.diagnostics["lowpass_lowpass_psnr_k2"] == 28.0
