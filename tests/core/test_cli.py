"""The command line: every command's help, component listings and info, dry runs, env, validate."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import tomllib
from pathlib import Path

import attrs
import click
import pytest

import specmatch
from specmatch.cli import main
from specmatch.core.kinds import KINDS
from specmatch.core.recipe import load_recipe
from specmatch.testing import MINIMAL_RECIPE, invoke_cli

BASE = MINIMAL_RECIPE


invoke = invoke_cli


def ok(*args: str):
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield prefix + (name,)
        if isinstance(command, click.Group):
            yield from _command_paths(command, prefix + (name,))


ALL_COMMANDS = [()] + list(_command_paths(main))


def test_the_command_tree_has_the_documented_commands():
    paths = {" ".join(p) for p in ALL_COMMANDS}
    assert {"run", "validate", "env", "components", "components list", "components info", "plugins",
            "plugins list"} <= paths


def _command_at(path: tuple[str, ...]) -> click.Command:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "specmatch")
def test_help_of_every_command(path):
    """Every command's help renders (``--help`` and ``-h`` alike) and lists its subcommands and options."""
    result = ok(*path, "--help")
    assert result.output.startswith("Usage: ")
    assert " ".join(("main",) + path) in result.output.splitlines()[0]
    short = ok(*path, "-h")
    assert short.output == result.output
    command = _command_at(path)
    if isinstance(command, click.Group):
        listed = result.output.split("Commands:", 1)[1].split()
        for name in command.commands:
            assert name in listed, f"`{' '.join(path)} --help` does not list its subcommand {name!r}"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            flag = max(param.opts, key=len)
            assert flag in result.output, f"`{' '.join(path)} --help` does not show {flag}"


def test_version():
    result = ok("--version")
    assert result.output.strip() == f"specmatch, version {specmatch.__version__}"
    assert specmatch.__version__ == importlib.metadata.version("specmatch")


# -- components ----------------------------------------------------------------------------------------

def _components(*args: str) -> list[dict]:
    rows = json.loads(ok("components", "list", "--json", *args).output)
    assert isinstance(rows, list)
    return rows


def test_components_list_json_has_every_builtin_kind():
    rows = _components()
    assert all({"kind", "name", "provider"} <= set(row) for row in rows)
    assert {row["kind"] for row in rows} == set(KINDS)
    builtin = f"specmatch {specmatch.__version__} (builtin)"
    assert all(row["provider"] == builtin and row["builtin"] for row in rows)
    names = {(row["kind"], row["name"]) for row in rows}
    assert {("regularizer", "esm"), ("regularizer", "dsm"), ("regularizer", "kl"), ("autoencoder", "sdvae"),
            ("dataset", "demo-photos"), ("denoiser", "dit"), ("sampler", "euler")} <= names
    assert len(names) == len(rows)  # no component listed twice


def test_components_list_kind_filter():
    rows = _components("--kind", "regularizer")
    assert rows and {row["kind"] for row in rows} == {"regularizer"}
    assert {"esm", "dsm", "kl", "vavae"} <= {row["name"] for row in rows}
    assert len(rows) == sum(1 for row in _components() if row["kind"] == "regularizer")


def test_components_list_pattern_filter():
    rows = _components("e*")
    names = {row["name"] for row in rows}
    assert {"esm", "eqvae", "euler"} <= names
    assert "kl" not in names and "dsm" not in names
    assert all(fnmatch.fnmatch(row["name"], "e*") or any(fnmatch.fnmatch(a, "e*") for a in row["aliases"])
               for row in rows)


def test_components_list_text():
    out = ok("components", "list", "--kind", "regularizer").output
    assert out.splitlines()[0] == "[regularizer]"
    assert any(line.split()[0] == "esm" for line in out.splitlines()[1:])
    assert "no components match" in ok("components", "list", "zzz*").output


def test_components_info_esm_shows_params_and_a_snippet_that_validates(tmp_path):
    from specmatch.regularizers.esm import ESMParams

    out = ok("components", "info", "regularizer", "esm").output
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split() == ["name", "type", "default", "doc"])
    end = lines.index("", header)  # the table ends at the blank line before the TOML snippet
    rows = {line.split()[0]: line.split(None, 3) for line in lines[header + 1:end]}
    assert list(rows) == [f.name for f in attrs.fields(ESMParams)]
    for field in attrs.fields(ESMParams):
        name, type_, default, doc = rows[field.name]
        assert type_ == (field.type if isinstance(field.type, str) else field.type.__name__)
        assert default == repr(field.default)
        assert doc.startswith(field.metadata["doc"][:20])
    assert "[one of 'kl', 'l2']" in rows["loss"][3]

    snippet = out.split("TOML:\n", 1)[1]
    data = tomllib.loads(snippet)
    assert data["regularizers"][0]["name"] == "esm"
    assert data["regularizers"][0]["params"] == attrs.asdict(ESMParams())
    recipe = tmp_path / "r.toml"
    recipe.write_text(BASE + "\n" + snippet, encoding="utf-8")
    assert ok("validate", str(recipe)).output.strip() == f"{recipe}: ok"
    assert load_recipe(recipe).regularizers()[0].params == ESMParams()


def test_components_info_of_every_builtin_component():
    for row in _components():
        out = ok("components", "info", row["kind"], row["name"]).output
        assert out.startswith(f"{row['kind']} '{row['name']}' — ")
        assert f"provider: {row['provider']}" in out
        snippet = tomllib.loads(out.split("TOML:\n", 1)[1])  # always valid TOML
        assert snippet
        info = json.loads(ok("components", "info", row["kind"], row["name"], "--json").output)
        assert (info["kind"], info["name"]) == (row["kind"], row["name"])
        assert all({"name", "type", "default", "doc", "constraints"} <= set(p) for p in info["params"])
        assert all(p["doc"] for p in info["params"]), f"{row['kind']} {row['name']} has an undocumented param"


def test_components_info_by_alias_and_unknown_name():
    assert ok("components", "info", "regularizer", "vf").output.startswith("regularizer 'vavae' — ")
    result = invoke("components", "info", "regularizer", "esn")
    assert result.exit_code == 1
    assert result.output.startswith("Error: unknown latent regularizer 'esn'; did you mean 'esm'?")
    assert invoke("components", "info", "gizmo", "esm").exit_code == 2  # not a kind: a usage error


# -- run, validate, env, plugins ---------------------------------------------------------------------------

def test_run_dry_run_prints_the_resolved_recipe_and_the_plan(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(BASE + '[[regularizers]]\nname = "kl"\nweight = 1e-6\n[denoiser]\nname = "dit"\n',
                      encoding="utf-8")
    out_dir = tmp_path / "out"
    out = ok("run", str(recipe), "--dry-run", "--output-dir", str(out_dir), "-o", "train.autoencoder.steps=12").output
    assert out.startswith(f"# resolved from {recipe}\n")
    resolved = tomllib.loads(out)  # the plan lines are TOML comments
    assert resolved == load_recipe(recipe, ["train.autoencoder.steps=12"]).to_dict()
    assert resolved["train"]["autoencoder"]["steps"] == 12
    plan = [line for line in out.splitlines() if line.startswith("#  ")]
    assert [line.split()[2] for line in plan] == ["autoencoder", "latent_stats", "denoiser", "evaluation"]
    assert f"# plan: outputs in {out_dir}" in out
    assert "train sdvae for 12 steps (batch 32; regularizers: kl=1e-06)" in plan[0]
    assert not out_dir.exists()  # a dry run writes nothing


def test_run_dry_run_default_output_folder(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('run = { name = "tiny" }\n' + BASE, encoding="utf-8")
    out = ok("run", str(recipe), "--dry-run").output
    assert f"# plan: outputs in {Path('runs') / 'tiny'}" in out


def test_env():
    out = ok("env").output
    assert out.startswith(f"specmatch {specmatch.__version__} at ")
    for var in ("SPECMATCH_PLUGINS=", "SPECMATCH_DISABLE_PLUGINS=", "SPECMATCH_DISABLE_PLUGIN_AUTOLOAD=1"):
        assert var in out
    assert "\npython 3." in out
    import click as click_module  # any installed package: its folder must be among the listed site dirs

    listed = [line.split(" ", 1)[1].removesuffix(" (absent)") for line in out.splitlines()
              if line.startswith("site-packages ")]
    assert any(Path(click_module.__file__).is_relative_to(folder) for folder in listed)


def test_validate_several_files_reports_only_the_bad_one(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(BASE, encoding="utf-8")
    also_good = tmp_path / "also_good.toml"
    also_good.write_text(BASE + '[[regularizers]]\nname = "esm"\n', encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE + '[[regularizers]]\nname = "esn"\n', encoding="utf-8")
    result = invoke("validate", str(good), str(bad), str(also_good))
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert f"{good}: ok" in lines and f"{also_good}: ok" in lines
    assert f"Error: {bad} is not a valid recipe (1 problem)" in lines
    assert not any(str(good) in line and "Error" in line for line in lines)
    assert sum(line.startswith("Error:") for line in lines) == 1


def test_validate_all_good_exits_zero(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(BASE, encoding="utf-8")
    assert ok("validate", str(good), "-o", "run.seed=3").output == f"{good}: ok\n"


def test_plugins_list_json_shows_the_builtins():
    records = json.loads(ok("plugins", "list", "--json").output)
    from specmatch.plugins import BUILTIN_PLUGINS

    assert [r["name"] for r in records if r["builtin"]] == list(BUILTIN_PLUGINS)
    assert all(r["status"] == "active" for r in records)


def test_plugin_file_option_adds_components(tmp_path):
    from specmatch.core.session import clear_cache

    plugin = tmp_path / "toy.py"
    plugin.write_text('from specmatch import RegularizerSpec, hookimpl\n\n@hookimpl\ndef specmatch_regularizers():\n'
                      '    yield RegularizerSpec(name="toy", factory=lambda p, c: None, summary="a toy")\n',
                      encoding="utf-8")
    clear_cache()
    try:
        rows = json.loads(ok("--plugin-file", str(plugin), "components", "list", "--json", "toy").output)
        assert [(r["kind"], r["name"], r["provider"]) for r in rows] == [("regularizer", "toy", "local file toy.py -")]
        recipe = tmp_path / "r.toml"
        recipe.write_text(BASE + '[[regularizers]]\nname = "toy"\n', encoding="utf-8")
        assert ok("--plugin-file", str(plugin), "validate", str(recipe)).output == f"{recipe}: ok\n"
        assert invoke("validate", str(recipe)).exit_code == 2
    finally:
        clear_cache()


def test_broken_plugin_warns_and_strict_fails(tmp_path):
    from specmatch.core.session import clear_cache

    plugin = tmp_path / "broken.py"
    plugin.write_text("raise ImportError('no wavelets here')\n", encoding="utf-8")
    clear_cache()
    try:
        result = invoke("--plugin-file", str(plugin), "components", "list", "--kind", "dataset")
        assert result.exit_code == 0
        assert "Warning: plugin file:" in result.output and "no wavelets here" in result.output
        result = invoke("--plugin-file", str(plugin), "--strict-plugins", "components", "list")
        assert result.exit_code == 1
        assert "(--strict-plugins)" in result.output
    finally:
        clear_cache()


def test_validate_and_components_do_not_import_torch(tmp_path):
    import subprocess
    import sys

    recipe = tmp_path / "r.toml"
    recipe.write_text(BASE + '[[regularizers]]\nname = "esm"\n[denoiser]\nname = "dit"\n', encoding="utf-8")
    code = ("import sys\nfrom click.testing import CliRunner\nfrom specmatch.cli import main\n"
            f"r = CliRunner().invoke(main, ['validate', {str(recipe)!r}])\nassert r.exit_code == 0, r.output\n"
            "r = CliRunner().invoke(main, ['components', 'info', 'regularizer', 'esm'])\nassert r.exit_code == 0\n"
            "print(sorted(m for m in ('torch', 'timm', 'accelerate') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_recipes_list_shows_each_recipe_with_its_purpose(tmp_path):
    from specmatch.testing import invoke_cli

    folder = tmp_path / "recipes"
    (folder / "cpu").mkdir(parents=True)
    (folder / "cpu" / "base.toml").write_text("# shared base\nversion = 1\n")
    (folder / "cpu" / "esm.toml").write_text('#\n# ESM on the demo data\n#   run it\nextends = "base.toml"\n')
    (folder / "plain.toml").write_text("version = 1\n")
    lines = invoke_cli("recipes", "list", str(folder)).output.splitlines()
    assert lines[1:] == ["cpu/esm.toml  ESM on the demo data", "plain.toml"]
    with_bases = invoke_cli("recipes", "list", str(folder), "--bases").output
    assert "cpu/base.toml  (base) shared base" in with_bases
    missing = invoke_cli("recipes", "list", str(tmp_path / "nope"))
    assert missing.exit_code == 1 and "nope: no such folder" in missing.output


def test_validate_reads_each_recipe_file_once(tmp_path, monkeypatch):
    import specmatch.core.recipe as recipe_module

    reads = []
    original = recipe_module.read_toml
    monkeypatch.setattr(recipe_module, "read_toml", lambda path, *a: reads.append(path) or original(path, *a))
    recipe = tmp_path / "r.toml"
    recipe.write_text(BASE)
    ok("validate", str(recipe))
    assert reads == [recipe]
