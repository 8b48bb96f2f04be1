"""report.html in a real browser (headless Chromium): every figure decodes, no console message, the page is not
blank. Skips where no chromium binary is installed (Debian: apt-get install chromium; .ci/run installs it)."""

import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from specmatch.study.cells import Cell, CellOutcome
from specmatch.study.report import write_report
from tests.study.run_folders import write_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get install "
                                                          "chromium); the report's browser check needs one")]


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    return subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
                           f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=60)


def screenshot(tmp_path, url: str, name: str) -> np.ndarray:
    path = tmp_path / name
    chromium(tmp_path, f"--screenshot={path}", "--window-size=1200,3000", "--hide-scrollbars", url)
    assert path.is_file(), f"chromium wrote no screenshot of {url}"
    return np.asarray(Image.open(path).convert("L"), dtype=float)


def test_report_renders_in_chromium(tmp_path):
    outcomes = []
    for recipe, fid, slope in (("sdvae", 50.0, -1.0), ("esm", 44.0, -0.6)):
        for seed in range(3):
            run = write_run(tmp_path / "cells" / recipe, f"seed-{seed}", seed=seed, gen_fid=fid + seed * seed,
                            psnr=22.0 + seed, latent_slope=slope - 0.02 * seed)
            outcomes.append(CellOutcome(cell=Cell(recipe=recipe, seed=seed, run_dir=run), status="complete"))
    outcomes.append(CellOutcome(cell=Cell(recipe="esm", seed=9, run_dir=tmp_path / "none"), status="failed",
                                error="stopped"))
    html = write_report(outcomes, output_dir=tmp_path / "out", baseline="sdvae", title="browser check")["html"]
    url = html.resolve().as_uri()

    # --dump-dom prints the DOM after the page's scripts ran; console messages go to stderr as CONSOLE lines
    result = chromium(tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", url)
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], f"the report logged to the browser console: {console}"
    found = re.search(r'data-figures-ok="(\d+)/(\d+)"', result.stdout)
    assert found, "the figure check did not run (no data-figures-ok on <body>)"
    ok, total = map(int, found.groups())
    assert total == 1 + 1 + 4 + 2 and ok == total  # spectra, curves, 2 grids x 2 groups, 2 scatters

    page = screenshot(tmp_path, url, "report.png")
    empty_file = tmp_path / "empty.html"
    empty_file.write_text("<!DOCTYPE html><html><body></body></html>")
    empty = screenshot(tmp_path, empty_file.as_uri(), "empty.png")
    assert page.std() > 20, f"the report's screenshot is nearly uniform (pixel std {page.std():.1f})"
    assert page.shape == empty.shape and np.abs(page - empty).mean() > 5
