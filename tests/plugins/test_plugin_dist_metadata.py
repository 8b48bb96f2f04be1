"""Discovery on real metadata: the committed fake distributions under ``data/site`` are put on sys.path and
every assertion goes through the command line (click's CliRunner on ``specmatch.cli.main``).

``specmatch-dummy 0.1`` has the entry points ``ok`` (a regularizer and a dataset) and ``broken`` (raises
ImportError at import); ``specmatch-dummy-oldapi 0.1`` (entry point ``skew``) requires ``specmatch<0.1``.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from specmatch import __version__
from specmatch.cli import main
from specmatch.core.plugins import BUILTIN_PLUGINS
from specmatch.core.session import clear_cache

SITE = Path(__file__).parent / "data" / "site"
BUILTINS = BUILTIN_PLUGINS  # listed first, in registration order
IMPORT_FAILURE = "import failed: ImportError: specmatch_dummy.broken needs the 'sharpness' package"
SKEW = f"requires specmatch<0.1 but specmatch {__version__} is installed"


@pytest.fixture
def dummy_site(monkeypatch):
    monkeypatch.syspath_prepend(str(SITE))
    clear_cache()
    yield SITE
    clear_cache()


def cli(*args: str, env: dict[str, str] | None = None):
    clear_cache()  # each invocation discovers afresh, as a new process would
    return CliRunner().invoke(main, list(args), env=env)


def plugins_by_name(*args: str, env=None) -> dict[str, dict]:
    result = cli(*args, "plugins", "list", "--json", env=env)
    assert result.exit_code == 0, result.output
    return {r["name"]: r for r in json.loads(result.stdout)}


def components(*args: str, env=None) -> dict[tuple[str, str], dict]:
    result = cli(*args, "components", "list", "--json", env=env)
    assert result.exit_code == 0, result.output
    return {(r["kind"], r["name"]): r for r in json.loads(result.stdout)}


def test_plugins_list_reports_active_broken_and_skewed(dummy_site):
    plugins = plugins_by_name()
    assert list(plugins) == [*BUILTINS, "specmatch-dummy:broken", "specmatch-dummy:ok",
                             "specmatch-dummy-oldapi:skew"]
    assert all(plugins[b]["builtin"] and plugins[b]["status"] == "active" for b in BUILTINS)
    ok = plugins["specmatch-dummy:ok"]
    assert (ok["status"], ok["distribution"], ok["version"]) == ("active", "specmatch-dummy", "0.1")
    assert ok["entry_point"] == "ok = specmatch_dummy.ok"
    assert Path(ok["location"]) == SITE / "specmatch_dummy" / "ok.py"
    broken = plugins["specmatch-dummy:broken"]
    assert broken["status"] == "broken" and broken["reason"].startswith(IMPORT_FAILURE)
    skew = plugins["specmatch-dummy-oldapi:skew"]
    assert (skew["status"], skew["reason"]) == ("broken", SKEW)
    # refused from its metadata alone: the skewed plugin's code was never imported
    assert "specmatch_dummy_oldapi.plugin" not in sys.modules


def test_plugins_list_text_shows_each_status(dummy_site):
    result = cli("plugins", "list")
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert lines["specmatch-dummy:ok"].endswith("specmatch-dummy 0.1  active")
    assert "specmatch 0.1.0 (builtin)  active" in lines["specmatch.regularizers.kl"]
    assert f"broken: {SKEW}" in lines["specmatch-dummy-oldapi:skew"]


def test_components_list_shows_the_dummy_provider(dummy_site):
    result = cli("components", "list", "--json")
    assert result.exit_code == 0
    rows = {(r["kind"], r["name"]): r for r in json.loads(result.stdout)}
    smooth = rows[("regularizer", "dummy-smooth")]
    assert smooth["provider"] == "specmatch-dummy 0.1" and smooth["aliases"] == ["dsmooth"]
    assert (smooth["distribution"], smooth["version"], smooth["builtin"]) == ("specmatch-dummy", "0.1", False)
    assert rows[("dataset", "dummy-noise")]["provider"] == "specmatch-dummy 0.1"
    assert rows[("regularizer", "kl")]["provider"] == f"specmatch {__version__} (builtin)"
    assert ("regularizer", "dummy-old") not in rows
    # broken plugins are warned about once each, on stderr, and do not stop the command
    assert result.stderr.count("Warning: plugin ") == 2
    assert "plugin specmatch-dummy:broken (specmatch-dummy 0.1) is broken: " + IMPORT_FAILURE in result.stderr


def test_components_info_of_a_plugin_component(dummy_site):
    result = cli("components", "info", "regularizer", "dsmooth", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert (info["name"], info["provider"]) == ("dummy-smooth", "specmatch-dummy 0.1")
    assert info["params"][0]["name"] == "strength" and info["params"][0]["doc"] == "how smooth"


def test_allow_list_by_distribution_and_by_entry_point(dummy_site):
    plugins = plugins_by_name(env={"SPECMATCH_PLUGINS": "specmatch-dummy"})
    assert plugins["specmatch-dummy:ok"]["status"] == "active"
    assert plugins["specmatch-dummy:broken"]["status"] == "broken"
    assert plugins["specmatch-dummy-oldapi:skew"]["status"] == "disabled"
    assert plugins["specmatch-dummy-oldapi:skew"]["reason"] == "not in SPECMATCH_PLUGINS"
    assert all(plugins[b]["status"] == "active" for b in BUILTINS)  # built-ins are always loaded

    plugins = plugins_by_name(env={"SPECMATCH_PLUGINS": "specmatch-dummy:ok"})
    assert [n for n, r in plugins.items() if r["status"] == "disabled"] == ["specmatch-dummy:broken",
                                                                            "specmatch-dummy-oldapi:skew"]

    rows = components(env={"SPECMATCH_PLUGINS": "specmatch-dummy-oldapi"})
    assert ("regularizer", "dummy-smooth") not in rows and ("regularizer", "kl") in rows


def test_block_list_from_the_environment_and_the_option(dummy_site):
    plugins = plugins_by_name(env={"SPECMATCH_DISABLE_PLUGINS": "Specmatch_Dummy"})  # names are normalised
    for name in ("specmatch-dummy:ok", "specmatch-dummy:broken"):
        assert (plugins[name]["status"], plugins[name]["reason"]) == ("disabled", "blocked by the disable list")
    assert plugins["specmatch-dummy-oldapi:skew"]["status"] == "broken"
    assert ("regularizer", "dummy-smooth") not in components(env={"SPECMATCH_DISABLE_PLUGINS": "specmatch-dummy"})

    plugins = plugins_by_name("--disable-plugin", "specmatch-dummy-oldapi",
                              "--disable-plugin", "specmatch-dummy:broken")
    assert plugins["specmatch-dummy-oldapi:skew"]["status"] == "disabled"
    assert plugins["specmatch-dummy:broken"]["status"] == "disabled"
    assert plugins["specmatch-dummy:ok"]["status"] == "active"


def test_autoload_off_keeps_only_builtins(dummy_site):
    plugins = plugins_by_name(env={"SPECMATCH_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert list(plugins) == list(BUILTINS)
    assert ("regularizer", "dummy-smooth") not in components(env={"SPECMATCH_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "specmatch-dummy:ok" in plugins_by_name(env={"SPECMATCH_DISABLE_PLUGIN_AUTOLOAD": "0"})


def test_strict_plugins_fails_on_broken_plugins(dummy_site):
    listed = cli("--strict-plugins", "plugins", "list", "--json")
    assert listed.exit_code == 1
    assert {r["status"] for r in json.loads(listed.stdout)} == {"active", "broken"}  # still printed
    result = cli("--strict-plugins", "components", "list")
    assert result.exit_code == 1
    assert "is broken: " in result.stderr and "(--strict-plugins)" in result.stderr
    # with the broken ones switched off, strict mode passes
    calm = cli("--strict-plugins", "--disable-plugin", "specmatch-dummy-oldapi", "components", "list",
               env={"SPECMATCH_PLUGINS": "specmatch-dummy:ok"})
    assert calm.exit_code == 0, calm.output


def write_recipe(tmp_path: Path, name: str, regularizer: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(f"""
        version = 1

        [data]
        name = "dummy-noise"
        params = {{ resolution = 16 }}

        [autoencoder]
        name = "sdvae"
        params = {{ preset = "micro-f2d4" }}

        [[regularizers]]
        name = "{regularizer}"
        weight = 0.5
    """), encoding="utf-8")
    return path


def test_a_recipe_needing_what_a_broken_plugin_may_provide_names_it(dummy_site, tmp_path):
    recipe = write_recipe(tmp_path, "sharp", "dummy-sharp")
    result = cli("validate", str(recipe))
    assert result.exit_code == 2
    assert "regularizers[0].name: unknown latent regularizer 'dummy-sharp'" in result.stderr
    assert "installed: dsm, dummy-smooth, eqvae, esm, kl, scale-equivariance, vavae" in result.stderr
    assert "broken plugins may have provided it: specmatch-dummy:broken (" + IMPORT_FAILURE in result.stderr
    assert "specmatch-dummy-oldapi:skew (" + SKEW in result.stderr


def test_a_recipe_not_using_the_broken_plugin_validates(dummy_site, tmp_path):
    recipe = write_recipe(tmp_path, "smooth", "dsmooth")
    result = cli("validate", str(recipe))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{recipe}: ok"
    assert "specmatch-dummy:broken" in result.stderr  # a warning, not an error
    # validation imports neither the factories nor anything heavy
    assert "specmatch_dummy.heavy" not in sys.modules
    assert cli("--strict-plugins", "validate", str(recipe)).exit_code == 1


def test_a_distribution_visible_twice_is_loaded_once(dummy_site, tmp_path, monkeypatch):
    copy = tmp_path / "site-copy"
    shutil.copytree(SITE, copy)
    monkeypatch.syspath_prepend(str(copy))
    plugins = plugins_by_name()
    assert [n for n in plugins if n.startswith("specmatch-dummy:")] == ["specmatch-dummy:broken",
                                                                       "specmatch-dummy:ok"]
    assert ("regularizer", "dummy-smooth") in components()
