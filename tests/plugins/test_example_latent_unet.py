"""examples/specmatch-latent-unet as users get it: pip-installed (offline, no build isolation) into a temporary
target once per module, then specmatch and the example's own tests run in subprocesses with that target on
PYTHONPATH. The example's end-to-end run (marked slow there) is left to ``-m slow`` runs of the example."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import specmatch

from tests.plugins.example_install import clean_env, install_example

REPO = Path(__file__).resolve().parents[2]
#: the subprocesses use the specmatch under test (this one), not whichever the environment has installed
SPECMATCH_ROOT = str(Path(specmatch.__file__).resolve().parents[1])
EXAMPLE = REPO / "examples" / "specmatch-latent-unet"
RECIPE = EXAMPLE / "recipes" / "latent_unet_demo.toml"
COMPONENTS = [("denoiser", "latent-unet"), ("sampler", "latent-midpoint"), ("metric", "pixel-mse"),
              ("diagnostic", "latent-channel-variance")]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    return install_example(EXAMPLE, tmp_path_factory.mktemp("latent-unet"))


def specmatch(*args: str, installed) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "specmatch", *args], capture_output=True, text=True,
                          cwd=installed["root"], env=clean_env(str(installed["target"]) + os.pathsep + SPECMATCH_ROOT), timeout=120)


def test_installed_components_and_plugin_are_listed(installed):
    done = specmatch("components", "list", "--json", installed=installed)
    assert done.returncode == 0, done.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(done.stdout)}
    for key in COMPONENTS:
        assert rows[key]["provider"] == "specmatch-latent-unet 0.1.0", key
    assert done.stderr == ""  # nothing broken

    done = specmatch("plugins", "list", "--json", installed=installed)
    plugin = {r["name"]: r for r in json.loads(done.stdout)}["specmatch-latent-unet:latent-unet"]
    assert plugin["status"] == "active"
    assert Path(plugin["location"]) == installed["target"] / "specmatch_latent_unet" / "plugin.py"


def test_demo_recipe_validates(installed):
    done = specmatch("validate", str(RECIPE), installed=installed)
    assert done.returncode == 0, done.stderr


def test_the_example_package_tests_pass_against_the_installed_copy(installed):
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-m", "not slow",
                           str(installed["source"] / "tests")], capture_output=True, text=True,
                          cwd=installed["root"], env=clean_env(str(installed["target"]) + os.pathsep + SPECMATCH_ROOT),
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary, summary
    # only the sampler tests may skip (a specmatch without the sampling context), and they say why
    skips = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert all("test_sampler.py" in line and "sampling context" in line for line in skips), skips
