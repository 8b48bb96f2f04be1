"""Core tests see built-in plugins only, so 'installed: ...' lists do not depend on what else is installed."""

import pytest


@pytest.fixture(autouse=True)
def _builtins_only(monkeypatch):
    monkeypatch.setenv("SPECMATCH_DISABLE_PLUGIN_AUTOLOAD", "1")
