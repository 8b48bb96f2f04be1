"""Installing a shipped example plugin package the way a user does (``pip install`` of a copy, offline), for the
tests that check the installed distribution."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def clean_env(pythonpath: str | None) -> dict[str, str]:
    """The environment of a fresh shell: no SPECMATCH_* variables, only the given PYTHONPATH, offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECMATCH_") and k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    env["OMP_NUM_THREADS"] = "1"   # tiny models: one thread avoids oversubscription on a shared machine
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def install_example(example: Path, root: Path) -> dict[str, Path]:
    """``pip install`` the example into ``root/target`` from a copy (building writes into the source tree)."""
    source = root / "source"
    shutil.copytree(example, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__",
                                                                   ".pytest_cache"))
    target = root / "target"
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-build-isolation",
               "--disable-pip-version-check", "--quiet", "--target", str(target), str(source)]
    done = subprocess.run(command, capture_output=True, text=True, env={**clean_env(None), "NO_NETWORK": "1"},
                          timeout=300)
    assert done.returncode == 0, f"pip install failed:\n{done.stdout}\n{done.stderr}"
    return {"root": root, "source": source, "target": target}
