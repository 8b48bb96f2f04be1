"""The report files from synthetic run folders: table contents, significance marks, missing cells, an HTML file
that holds everything it shows (no network), escaped text, and the recipe diff."""

import base64
import csv
import io
import json
import math
import re

import pytest
from PIL import Image

from specmatch.study.cells import Cell, CellOutcome
from specmatch.study.report import analyse, render_markdown, write_csv, write_report
from tests.study.run_folders import write_run

# gen_fid per recipe and seed: "esm" is lower than "sdvae" at every seed by 5, 6, 8 (a consistent improvement)
FID = {"sdvae": [50.0, 52.0, 51.0], "esm": [45.0, 46.0, 43.0]}
SLOPE = {"sdvae": -1.0, "esm": -0.6}


def study(tmp_path, *, extra=()):
    outcomes = []
    for recipe, fids in FID.items():
        for seed, fid in enumerate(fids):
            run = write_run(tmp_path / "cells" / recipe, f"seed-{seed}", seed=seed, gen_fid=fid, psnr=20.0 + seed,
                            latent_slope=SLOPE[recipe] - 0.01 * seed,
                            latent_channels=4 if recipe == "sdvae" else 8)
            outcomes.append(CellOutcome(cell=Cell(recipe=recipe, seed=seed, run_dir=run), status="complete",
                                        seconds=4.0))
    return outcomes + list(extra)


FAILED = CellOutcome(cell=Cell(recipe="esm", seed=7, run_dir="/nowhere"), status="failed",
                     error="RuntimeError: <boom> & co")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return study(tmp_path_factory.mktemp("study"), extra=[FAILED])


@pytest.fixture(scope="module")
def results(outcomes):
    return analyse(outcomes, baseline="sdvae", title="CPU study <script>alert(1)</script>")


def test_results_csv(results, tmp_path):
    write_csv(results, tmp_path / "results.csv")
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    by = {(r["group"], r["metric"]): r for r in rows}
    metrics = {"gen_fid", "gen_kid", "recon_psnr", "latent_std", "spectrum_kl_delta1", "spectrum_latent_slope"}
    assert set(by) == {(g, m) for g in FID for m in metrics}
    base = by["sdvae", "gen_fid"]
    assert base["n"] == "3" and float(base["mean"]) == pytest.approx(51.0) and float(base["sd"]) == pytest.approx(1.0)
    assert float(base["ci_high"]) == pytest.approx(51.0 + 4.302652729911275 / math.sqrt(3))
    assert base["diff_vs_baseline"] == "" and base["p"] == "" and base["rank"] == "2"
    esm = by["esm", "gen_fid"]
    assert float(esm["diff_vs_baseline"]) == pytest.approx(-19 / 3) and esm["rank"] == "1"
    assert 0 < float(esm["p"]) < 0.05 and esm["significant"] == "true" and esm["direction"] == "lower"
    assert by["esm", "spectrum_latent_slope"]["rank"] == ""  # no known direction


def test_report_markdown(results):
    md = render_markdown(results)
    line = next(l for l in md.splitlines() if l.startswith("| gen_fid | esm |"))
    # one test per metric: Holm leaves p alone; lower gen_fid than the baseline is better
    assert line.rstrip(" |").endswith("1") and "| ** better |" in line
    assert "esm/seed-7 (failed): RuntimeError: <boom> & co" in md
    summary = next(l for l in md.splitlines() if l.startswith("- esm vs sdvae: "))
    assert "gen_fid -6.333 [" in summary and "recon_psnr" not in summary  # -19/3; psnr is the same
    assert "| group | cells | autoencoder (s, mean) | stages (s, total) | cell runs (s, total) |" in md
    assert "| esm | 3 | 3.5 | 10.5 | 12 |" in md  # time_autoencoder_s 3.5 in every cell; 4 s per cell this time
    # Spearman by hand: kl ranks 4 5 6 1 2 3 (sdvae, esm), gen_fid ranks 4 6 5 2 3 1; sum d^2 = 8
    rho = 1 - 6 * 8 / (6 * (6 ** 2 - 1))
    assert f"| spectrum_kl_delta1 | {rho:.3f} |" in md and f"| spectrum_latent_slope | {-rho:.3f} |" in md


def test_html_is_self_contained_and_escaped(outcomes, tmp_path):
    report = write_report(outcomes, output_dir=tmp_path / "out", baseline="sdvae",
                          title="CPU study <script>alert(1)</script>")
    assert {k: p.name for k, p in report.items()} == {"html": "report.html", "csv": "results.csv", "md": "report.md"}
    assert all(p.is_file() for p in report.values())
    text = report["html"].read_text()
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;boom&gt; &amp; co" in text
    assert not re.search(r"https?://", text) and "<link" not in text
    sources = re.findall(r'<img [^>]*src="([^"]+)"', text)
    # spectra, curves, two grids for each of two groups, two diagnostic scatters
    assert len(sources) == 1 + 1 + 4 + 2
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert image.width > 10 and image.height > 10
    assert "autoencoder.params.latent_channels" in text  # the recipe diff against the baseline
    assert "<td>spectrum_kl_delta1</td><td>0.771</td>" in text  # the Spearman table beside the scatters


def test_a_study_without_results_still_reports(tmp_path):
    paths = write_report([FAILED], output_dir=tmp_path / "out", baseline="sdvae", title="t")
    md = paths["md"].read_text()
    assert "esm/seed-7 (failed)" in md and "baseline 'sdvae' has no results" in md
    assert paths["html"].is_file() and list(csv.reader(paths["csv"].open()))[1:] == []


def test_unknown_baseline_and_unpaired_seeds(tmp_path):
    outcomes = study(tmp_path)
    lonely = write_run(tmp_path / "cells" / "esm", "seed-5", seed=5, gen_fid=40.0, psnr=20.0, latent_slope=-0.6)
    outcomes.append(CellOutcome(cell=Cell(recipe="esm", seed=5, run_dir=lonely), status="reused"))
    md = render_markdown(analyse(outcomes, baseline="sdvae", title="t"))
    assert "esm: seeds [5] have no partner" in md
    assert "| gen_fid | esm | 4 |" in md


def test_compare_writes_the_report(tmp_path):
    from specmatch.testing import invoke_cli

    a = write_run(tmp_path, "ae-small", seed=0, gen_fid=50.0, psnr=20.0, latent_slope=-1.0)
    b = write_run(tmp_path, "ae-wide", seed=0, gen_fid=45.0, psnr=21.0, latent_slope=-0.6, latent_channels=8)
    out = tmp_path / "report"
    result = invoke_cli("compare", str(a), str(b), "--report", str(out), "--baseline", "ae-small")
    assert result.exit_code == 0, result.output
    assert "gen_fid" in result.output  # the side-by-side table still prints
    rows = {(r["group"], r["metric"]): r for r in csv.DictReader((out / "results.csv").open())}
    wide = rows["ae-wide", "gen_fid"]
    assert wide["n"] == "1" and wide["ci_low"] == "" and float(wide["diff_vs_baseline"]) == -5.0
    assert wide["p"] == ""  # one pair: no test
    assert "one seed: no interval" in (out / "report.md").read_text()
    assert "autoencoder.params.latent_channels" in (out / "report.html").read_text()


def test_compare_report_input_errors(tmp_path):
    from specmatch.testing import invoke_cli

    a = write_run(tmp_path, "a", seed=0, gen_fid=50.0, psnr=20.0, latent_slope=-1.0)
    result = invoke_cli("compare", str(a), "--report", str(tmp_path / "r"), "--baseline", "zzz")
    assert result.exit_code != 0 and "--baseline 'zzz' is not one of the runs" in result.output
    (a / "recipe.toml").write_text('[run]\nseed = "zero"\n')
    result = invoke_cli("compare", str(a), "--report", str(tmp_path / "r"))
    assert result.exit_code != 0 and "recipe.toml: run.seed must be an integer" in result.output
    twin = write_run(tmp_path / "other", "a", seed=0, gen_fid=1.0, psnr=1.0, latent_slope=-1.0)
    (a / "recipe.toml").write_text('[run]\nseed = 0\n')
    result = invoke_cli("compare", str(a), str(twin), "--report", str(tmp_path / "r"))
    assert result.exit_code != 0 and "runs share a folder name (a)" in result.output


def test_a_malformed_spectrum_costs_one_figure(tmp_path):
    outcomes = study(tmp_path)
    spectrum_file = outcomes[0].cell.run_dir / "spectrum.json"
    broken = json.loads(spectrum_file.read_text())
    broken["latent"]["mean"] = "not a list"
    spectrum_file.write_text(json.dumps(broken))
    html = write_report(outcomes, output_dir=tmp_path / "out", baseline="sdvae", title="t")["html"].read_text()
    assert "figure not drawn:" in html and "<h2>Training curves</h2>" in html


def test_significance_marks_name_the_direction():
    from specmatch.study.report import mark
    from specmatch.study.stats import GroupStats

    def row(metric, diff, significant, holm):
        return GroupStats(group="g", metric=metric, n=3, mean=1.0, sd=0.1, ci_low=0.9, ci_high=1.1, diff=diff,
                          p=0.01, significant=significant, significant_holm=holm)

    assert mark(row("recon_psnr", 2.0, True, False)) == "* better"  # higher is better
    assert mark(row("gen_fid", 2.0, True, True)) == "** worse"  # lower is better
    assert mark(row("spectrum_latent_slope", 2.0, True, True)) == "**"  # no direction
    assert mark(row("gen_fid", -2.0, False, False)) == ""


def test_stage_seconds_total_says_at_least_when_a_cell_did_not_record_one(tmp_path):
    """A cell whose folder completed a stage without knowing its seconds (resumed from a state that did not
    record them) makes the group's total a lower bound, and the report says so; a stage the folder did not
    complete itself (an autoencoder taken with from_run) is not expected to have a time."""
    outcomes = study(tmp_path)
    for o in outcomes:  # every cell trained its denoiser here; all but one know how long that took
        (o.cell.run_dir / "denoiser").mkdir()
        (o.cell.run_dir / "denoiser" / "stage.json").write_text('{"key": "k"}')
        if (o.cell.recipe, o.cell.seed) != ("esm", 2):
            path = o.cell.run_dir / "metrics.json"
            path.write_text(json.dumps({**json.loads(path.read_text()), "time_denoiser_s": 10.0}))
    md = render_markdown(analyse(outcomes, baseline="sdvae", title="t"))
    assert "| group | cells | autoencoder (s, mean) | denoiser (s, mean) | stages (s, total) |" in md
    assert "| sdvae | 3 | 3.5 | 10 | 40.5 | 12 |" in md  # 3 x (3.5 + 10)
    assert "| esm | 3 | 3.5 | 10 | at least 30.5 | 12 |" in md  # 3 x 3.5 + 2 x 10


def test_seconds_are_whole_from_100_s_up():
    from specmatch.study.report import fmt_seconds

    assert fmt_seconds(2253.8) == "2254" and fmt_seconds(12345.4) == "12345"  # not 2.25e+03
    assert fmt_seconds(99.5) == "99.5" and fmt_seconds(3.5) == "3.5" and fmt_seconds(0.0123) == "0.0123"


def test_other_metrics_are_correlated_with_gfid_for_comparison(tmp_path):
    """Reconstruction metrics get a Spearman row of their own (what a diagnostic must beat); generation metrics,
    measured on the same samples as gFID, do not."""
    outcomes = []
    for recipe, fids in FID.items():
        for seed, fid in enumerate(fids):  # PSNR falls as gFID rises: rho = -1 exactly
            run = write_run(tmp_path / "cells" / recipe, f"seed-{seed}", seed=seed, gen_fid=fid, psnr=100.0 - fid,
                            latent_slope=SLOPE[recipe], latent_channels=4)
            outcomes.append(CellOutcome(cell=Cell(recipe=recipe, seed=seed, run_dir=run), status="complete"))
    results = analyse(outcomes, baseline="sdvae", title="t")
    assert [(c.diagnostic, round(c.rho, 6), c.n) for c in results.metric_correlations] == [("recon_psnr", -1.0, 6)]
    md = render_markdown(results)
    assert "| recon_psnr | -1.000 |" in md and "| gen_kid |" not in md.split("## Diagnostics")[1]
    html = write_report(outcomes, output_dir=tmp_path / "report", baseline="sdvae", title="t")["html"].read_text()
    assert "<td>recon_psnr</td><td>-1.000</td>" in html
