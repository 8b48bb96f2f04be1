"""Shared fixtures of the plugin-system tests: no plugin switches from the caller's shell, plugin files in
tmp_path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

PLUGIN_ENV_VARS = ("SPECMATCH_PLUGINS", "SPECMATCH_DISABLE_PLUGINS", "SPECMATCH_DISABLE_PLUGIN_AUTOLOAD")


@pytest.fixture(autouse=True)
def no_plugin_switches(monkeypatch):
    """Tests set the switches they exercise themselves; the suite-wide conftest clears the plugin cache."""
    for var in PLUGIN_ENV_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def write_plugin(tmp_path):
    """``write_plugin("name", source) -> Path`` of a plugin module file (the ``--plugin-file`` kind)."""

    def write(name: str, source: str) -> Path:
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        return path

    return write
