"""A real installed distribution: examples/specmatch-wavelet is pip-installed (offline, no build isolation)
into a temporary target once per module, then specmatch runs in subprocesses with that target on
PYTHONPATH, exactly as a user's environment would see it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from specmatch.core.plugins import load_plugins
from specmatch.core.registry import Registry

from tests.plugins.example_install import clean_env, install_example

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "specmatch-wavelet"
RECIPE = EXAMPLE / "recipes" / "wavelet_demo.toml"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    return install_example(EXAMPLE, tmp_path_factory.mktemp("wavelet"))


def specmatch(*args: str, pythonpath: Path | None, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "specmatch", *args], capture_output=True, text=True,
                          cwd=cwd, env=clean_env(str(pythonpath) if pythonpath else None), timeout=120)


def test_install_wrote_real_metadata(installed):
    dist_info = installed["target"] / "specmatch_wavelet-0.1.0.dist-info"
    assert (dist_info / "entry_points.txt").read_text().split() == ["[specmatch]", "wavelet", "=",
                                                                   "specmatch_wavelet.plugin"]
    metadata = (dist_info / "METADATA").read_text()
    assert "Classifier: Framework :: specmatch" in metadata
    assert "Requires-Dist: specmatch<0.3,>=0.1" in metadata


def test_installed_components_are_listed_with_their_distribution(installed):
    done = specmatch("components", "list", "--json", pythonpath=installed["target"], cwd=installed["root"])
    assert done.returncode == 0, done.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(done.stdout)}
    assert rows[("regularizer", "wavelet-energy")]["provider"] == "specmatch-wavelet 0.1.0"
    assert rows[("regularizer", "wavelet-energy")]["aliases"] == ["haar-energy"]
    assert rows[("dataset", "checkerboards")]["provider"] == "specmatch-wavelet 0.1.0"
    assert done.stderr == ""  # nothing broken

    done = specmatch("plugins", "list", "--json", pythonpath=installed["target"], cwd=installed["root"])
    plugin = {r["name"]: r for r in json.loads(done.stdout)}["specmatch-wavelet:wavelet"]
    assert (plugin["status"], plugin["version"]) == ("active", "0.1.0")
    assert Path(plugin["location"]) == installed["target"] / "specmatch_wavelet" / "plugin.py"


def test_demo_recipe_validates_and_dry_runs(installed):
    done = specmatch("validate", str(RECIPE), pythonpath=installed["target"], cwd=installed["root"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{RECIPE}: ok"

    out = installed["root"] / "run"
    done = specmatch("run", str(RECIPE), "--dry-run", "--output-dir", str(out), pythonpath=installed["target"],
                     cwd=installed["root"])
    assert done.returncode == 0, done.stderr
    assert 'name = "wavelet-energy"' in done.stdout and 'name = "checkerboards"' in done.stdout
    assert "bands = [" in done.stdout  # the resolved params table is printed in full
    assert f"# plan: outputs in {out}" in done.stdout
    assert not out.exists()  # a dry run builds nothing


def test_without_the_distribution_the_recipe_names_what_is_missing(installed):
    done = specmatch("validate", str(RECIPE), pythonpath=None, cwd=installed["root"])
    assert done.returncode == 2
    builtins = Registry.build(load_plugins(autoload=False))
    assert (f"regularizers[1].name: unknown latent regularizer 'wavelet-energy' "
            f"(installed: {', '.join(builtins.names('regularizer'))};") in done.stderr
    assert (f"data.name: unknown dataset 'checkerboards' "
            f"(installed: {', '.join(builtins.names('dataset'))};") in done.stderr


def test_the_example_package_tests_pass_against_the_installed_copy(installed):
    # run from the temporary root, so the installed copy (not the source folder) is what gets imported
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(installed["source"] / "tests")], capture_output=True, text=True,
                          cwd=installed["root"], env=clean_env(str(installed["target"])), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary, summary
