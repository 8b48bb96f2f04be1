"""Regression tests: what `validate` accepts, the run accepts; recipes cannot escape runs/ or run code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from specmatch.core.errors import RecipeError
from specmatch.core.recipe import load_recipe
from specmatch.testing import MINIMAL_RECIPE, invoke_cli

ROOT = Path(__file__).resolve().parents[2]
DENOISED = MINIMAL_RECIPE + '[denoiser]\nname = "dit"\nparams = { preset = "dit-micro" }\n'


def problems(tmp_path: Path, text: str, *overrides: str, **kw) -> list[str]:
    path = tmp_path / "r.toml"
    path.write_text(text, encoding="utf-8")
    try:
        load_recipe(path, overrides, **kw)
    except RecipeError as exc:
        return [p.render() for p in exc.problems]
    return []


def cli(tmp_path: Path, text: str, *args: str, raw: bytes | None = None):
    path = tmp_path / "r.toml"
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text(text, encoding="utf-8")
    return invoke_cli(*args[:args.index("validate") + 1] if "validate" in args else ("validate",),
                      str(path), *args[args.index("validate") + 1:] if "validate" in args else args), path


# -- item 3: values the run would refuse ------------------------------------------------------------------

@pytest.mark.parametrize("override, key", [
    ('data.name=""', "data.name"),
    ('denoiser.name=""', "denoiser.name"),
    ('sampler.name=""', "sampler.name"),
    ('objective.name=""', "objective.name"),
    ('regularizers[0].name=""', "regularizers[0].name"),
    ("run.seed=-1", "run.seed"),
    ("run.seed=4294967296", "run.seed"),
    ("regularizers[0].adaptive={}", "regularizers[0].adaptive.layer"),
    ('regularizers[0].adaptive={ layer = "encoder.last", max = 1e40 }', "regularizers[0].adaptive.max"),
    ("denoiser.params.patch_size=3", "denoiser.params.patch_size"),
    ("denoiser_regularizers[0].params.depth=3", "denoiser_regularizers[0].params.depth"),
    ("sampler.params={ cfg_scale = 2.0 }", "sampler.params.cfg_scale"),
    ('run.trackers=["wandb"]', "run.trackers[0]"),
    ("denoiser_regularizers[0].params.projector_width=2147483648",
     "denoiser_regularizers[0].params.projector_width"),
    ("train.autoencoder.batch_size=100000000000", "train.autoencoder.batch_size"),
    ("regularizers[1].params.delta=nan", "regularizers[1].params.delta"),
    ("train.autoencoder.lr=inf", "train.autoencoder.lr"),
    ("objective.params.logit_mean=-inf", "objective.params.logit_mean"),
])
def test_validate_refuses_what_the_run_would(tmp_path, override, key):
    recipe = DENOISED + ('[[regularizers]]\nname = "kl"\n[[regularizers]]\nname = "esm"\n'
                         '[alignment]\nname = "stlpips-alex"\n'
                         '[[denoiser_regularizers]]\nname = "repa"\nparams = { depth = 1 }\n')
    assert problems(tmp_path, recipe) == []
    found = problems(tmp_path, recipe, override)
    assert any(p.startswith(key + ":") for p in found), found
    result, _ = cli(tmp_path, recipe, "-o", override)  # the CLI: exit 2, no traceback
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_adaptive_on_kl_names_the_layer_it_needs(tmp_path):
    (line,) = problems(tmp_path, MINIMAL_RECIPE + '[[regularizers]]\nname = "kl"\nadaptive = {}\n')
    assert "does not depend on decoder.last" in line and "'encoder.last'" in line
    assert problems(tmp_path, MINIMAL_RECIPE + '[[regularizers]]\nname = "kl"\n'
                                               'adaptive = { layer = "encoder.last" }\n') == []
    (line,) = problems(tmp_path, MINIMAL_RECIPE + '[[regularizers]]\nname = "dsm"\nparams = { block_size = 4 }\n'
                                                  'adaptive = {}\n')
    assert line.startswith("regularizers[0].adaptive: 'dsm' has no loss term")


def test_missing_files_are_found_before_training(tmp_path):
    recipe = MINIMAL_RECIPE.replace('name = "demo-photos"\nparams = { resolution = 16 }',
                                    'name = "image-folder"\nparams = { root = "photos", resolution = 16 }') + (
        '[perceptual]\nname = "lpips"\nparams = { weights = "vgg.pth" }\n'
        '[alignment]\nname = "timm"\nparams = { weights = "dino.safetensors" }\n'
        '[evaluation]\nfeature_network = "inception.pt"\n')
    found = problems(tmp_path, recipe)
    assert [p.split(":")[0] for p in found] == ["data.params.root", "perceptual.params.weights",
                                                "alignment.params.weights", "evaluation.feature_network"]
    assert all(p.endswith("does not exist") for p in found)
    assert problems(tmp_path, recipe, check_files=False) == []
    (tmp_path / "photos").mkdir()
    for name in ("vgg.pth", "dino.safetensors", "inception.pt"):
        (tmp_path / name).write_bytes(b"x")
    assert problems(tmp_path, recipe) == []


def test_dsm_block_check_uses_autoencoder_facts_not_its_name(tmp_path):
    """A third-party autoencoder gets the geometry checks of its declared facts."""
    plugin = tmp_path / "my_ae.py"
    plugin.write_text(
        "import attrs\n"
        "from specmatch import AutoencoderSpec, Facts, hookimpl, param\n"
        "@attrs.frozen(kw_only=True)\n"
        "class P:\n"
        "    factor: int = param(4, doc='downsampling', ge=1)\n"
        "@hookimpl\n"
        "def specmatch_autoencoders():\n"
        "    yield AutoencoderSpec(name='my-ae', factory=lambda params, ctx: None, params=P,\n"
        "                          facts=lambda p: Facts(latent_channels=4, downsample_factor=p.factor))\n",
        encoding="utf-8")
    recipe = ('[data]\nname = "demo-photos"\nparams = { resolution = 32 }\n[autoencoder]\nname = "my-ae"\n'
              '[[regularizers]]\nname = "dsm"\nparams = { block_size = 8 }\n')
    found = problems(tmp_path, recipe, plugin_files=[plugin])  # latent side 32/4 = 8: fine
    assert found == []
    found = problems(tmp_path, recipe, "autoencoder.params.factor=8", plugin_files=[plugin])
    assert found == ["regularizers[0].params.block_size: the latent side 4 is not a multiple of block_size 8 "
                     "(latent 4x4x4 from the autoencoder and data)"]
    found = problems(tmp_path, recipe, "autoencoder.params.factor=3", plugin_files=[plugin])
    assert found == ["data.params.resolution: expected a multiple of the autoencoder's downsampling factor 3; "
                     "got 32"]


def test_core_never_names_a_component():
    """Core code compares no string with a component name (docstring examples aside)."""
    import ast

    names = {"sdvae", "dit", "kl", "esm", "dsm", "vavae", "eqvae", "timm", "lpips", "euler", "heun",
             "demo-photos", "image-folder", "fashion-mnist", "stlpips-alex", "patchgan"}
    for path in (ROOT / "specmatch" / "core").glob("*.py"):
        if path.name == "schema.py":  # the recipe's documented defaults (objective, sampler), not checks
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
        used = {n.value for n in ast.walk(tree)
                if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings}
        assert not used & names, f"{path.name} names {sorted(used & names)}"


# -- item 1: run.name -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["", ".", "..", "../../escaped", "/tmp/abs", "a/b", "a\\\\b", "~x", "a\\u0000b"])
def test_run_name_cannot_leave_the_runs_folder(tmp_path, name):
    found = problems(tmp_path, MINIMAL_RECIPE + f'[run]\nname = "{name}"\n')
    assert len(found) == 1 and found[0].startswith("run.name: expected one folder name"), found


@pytest.mark.parametrize("name", ["cpu-esm", "run 1", "émoji-🙂", "v1.2"])
def test_plain_run_names_are_fine(tmp_path, name):
    assert problems(tmp_path, MINIMAL_RECIPE + f'[run]\nname = "{name}"\n') == []


# -- item 2: recipe plugin files need an opt-in; paths resolve against the file that wrote them -----------

EVIL = "from pathlib import Path\nPath(__file__).with_name('RAN').write_text('x')\n"


@pytest.mark.parametrize("command", [("validate",), ("run", "--dry-run"), ("recipes", "diff")])
def test_recipe_plugin_files_do_not_run_without_the_opt_in(tmp_path, command):
    (tmp_path / "evil.py").write_text(EVIL, encoding="utf-8")
    path = tmp_path / "r.toml"
    path.write_text(MINIMAL_RECIPE + '[plugins]\nfiles = ["evil.py"]\n', encoding="utf-8")
    args = [*command, str(path)] + ([str(path)] if command == ("recipes", "diff") else [])
    result = invoke_cli(*args)
    assert result.exit_code == 2, result.output
    assert "plugins.files: the recipe names local plugin files" in result.output
    assert "--allow-recipe-plugins" in result.output
    assert not (tmp_path / "RAN").exists()
    result = invoke_cli("--allow-recipe-plugins", *args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "RAN").exists()


def test_plugin_file_on_the_command_line_needs_no_opt_in(tmp_path):
    (tmp_path / "mine.py").write_text("x = 1\n", encoding="utf-8")
    path = tmp_path / "r.toml"
    path.write_text(MINIMAL_RECIPE, encoding="utf-8")
    result = invoke_cli("--plugin-file", str(tmp_path / "mine.py"), "validate", str(path))
    assert result.exit_code == 0, result.output


def test_paths_in_a_base_resolve_against_the_base(tmp_path):
    base_dir, leaf_dir = tmp_path / "basedir", tmp_path / "leafdir"
    (base_dir / "photos").mkdir(parents=True)
    leaf_dir.mkdir()
    (base_dir / "p.py").write_text("x = 1\n", encoding="utf-8")
    (base_dir / "base.toml").write_text(
        MINIMAL_RECIPE.replace('name = "demo-photos"\nparams = { resolution = 16 }',
                               'name = "image-folder"\nparams = { root = "photos", resolution = 16 }')
        + '[plugins]\nfiles = ["p.py"]\n', encoding="utf-8")
    leaf = leaf_dir / "leaf.toml"
    leaf.write_text('extends = "../basedir/base.toml"\n', encoding="utf-8")
    resolved = load_recipe(leaf, allow_recipe_plugins=True)
    root = (leaf_dir / resolved.component("data").params.root).resolve()
    assert root == (base_dir / "photos").resolve()
    assert (leaf_dir / resolved.recipe.plugins.files[0]).resolve() == (base_dir / "p.py").resolve()
    # a value the leaf (or -o) writes is relative to the leaf
    with pytest.raises(RecipeError) as info:
        load_recipe(leaf, ['data.params.root="photos"'], allow_recipe_plugins=True)
    assert str(leaf_dir / "photos") in str(info.value)


# -- item 4: validate never prints a traceback ------------------------------------------------------------

def test_deep_nesting_is_a_recipe_error(tmp_path):
    deep = "[" * 3000 + "]" * 3000
    result, path = cli(tmp_path, MINIMAL_RECIPE, "-o", f"run.name={deep}")
    assert result.exit_code == 2 and "nest too deeply" in result.output
    result, path = cli(tmp_path, MINIMAL_RECIPE + f"x = {deep}\n")
    assert result.exit_code == 2 and "nest too deeply" in result.output
    result, path = cli(tmp_path, MINIMAL_RECIPE + "x = " + "{a=" * 2000 + "1" + "}" * 2000 + "\n")
    assert result.exit_code == 2 and "nest too deeply" in result.output


def test_non_utf8_recipe_and_base(tmp_path):
    result, path = cli(tmp_path, "", raw=b"\xff\xfe[data]\n")
    assert result.exit_code == 2 and "not a UTF-8 text file" in result.output
    (tmp_path / "bin.toml").write_bytes(b"\x80\x81")
    result, path = cli(tmp_path, 'extends = "bin.toml"\n')
    assert result.exit_code == 2 and "extends:" in result.output and "not a UTF-8 text file" in result.output


def test_nul_in_extends(tmp_path):
    result, path = cli(tmp_path, 'extends = "a\\u0000.toml"\n')
    assert result.exit_code == 2 and "NUL character" in result.output


def test_bom_is_accepted(tmp_path):
    result, path = cli(tmp_path, "", raw=b"\xef\xbb\xbf" + MINIMAL_RECIPE.encode())
    assert result.exit_code == 0, result.output


def test_newline_inside_an_override_is_refused(tmp_path):
    result, path = cli(tmp_path, MINIMAL_RECIPE, "-o", 'train.autoencoder.steps=5\nextends="x"')
    assert result.exit_code == 2 and "continues after a newline" in result.output
    result, path = cli(tmp_path, MINIMAL_RECIPE, "-o", 'run.name="""a"""')  # one value: fine
    assert result.exit_code == 0, result.output


def test_index_on_a_table_says_it_is_a_table(tmp_path):
    result, path = cli(tmp_path, MINIMAL_RECIPE, "-o", "train[0].steps=1")
    assert result.exit_code == 2
    assert "train is a table, not an array" in result.output


# -- item 6: from_run folders not written by specmatch ----------------------------------------------------

@pytest.mark.parametrize("recorded, expected", [
    ('autoencoder = "x"\n', "[autoencoder] is not a table"),
    ('[autoencoder]\nname = 5\n', "autoencoder.name is 5"),
])
def test_from_run_foreign_folder(tmp_path, recorded, expected):
    run = tmp_path / "other"
    (run / "autoencoder").mkdir(parents=True)
    (run / "recipe.toml").write_text(recorded, encoding="utf-8")
    (run / "autoencoder" / "model.safetensors").write_bytes(b"")
    result, path = cli(tmp_path, MINIMAL_RECIPE.split("[autoencoder]")[0] + '[autoencoder]\nfrom_run = "other"\n')
    assert result.exit_code == 2 and expected in result.output, result.output


def test_from_run_lists_what_differs(tmp_path):
    run = tmp_path / "other"
    (run / "autoencoder").mkdir(parents=True)
    (run / "recipe.toml").write_text(MINIMAL_RECIPE, encoding="utf-8")
    (run / "autoencoder" / "model.safetensors").write_bytes(b"")
    text = MINIMAL_RECIPE.replace('params = { preset = "micro-f2d4" }',
                                  'params = { preset = "tiny-f4d4" }\nfrom_run = "other"')
    (line,) = problems(tmp_path, text)
    assert "params.preset = 'tiny-f4d4' (the run has 'micro-f2d4')" in line


# -- item 7: global plugin options reach analyze ----------------------------------------------------------

def test_cli_plugin_options_reach_recipes_the_engine_loads(tmp_path):
    from specmatch.core import session

    plugin = tmp_path / "extra.py"
    plugin.write_text("x = 1\n", encoding="utf-8")
    result = invoke_cli("--plugin-file", str(plugin), "--disable-plugin", "some-dist", "env")
    assert result.exit_code == 0
    registry = session.get_registry()  # what analyze's load_recipe(registry=None) uses
    names = {r.name for r in registry.plugins.records}
    assert any(str(plugin.resolve()) in n for n in names), names


# -- no torch while validating ----------------------------------------------------------------------------

def test_validate_imports_no_torch(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(DENOISED + '[[regularizers]]\nname = "dsm"\nparams = { block_size = 4 }\n'
                               '[alignment]\nname = "timm"\nparams = { weights = "w.safetensors" }\n'
                               '[[denoiser_regularizers]]\nname = "repa"\nparams = { depth = 1 }\n',
                    encoding="utf-8")
    code = ("import sys\nfrom specmatch.cli import main\n"
            "try:\n    main(['validate', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NOTORCH')\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "SPECMATCH_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": ""})
    assert out.stdout.strip().endswith("NOTORCH"), out.stdout + out.stderr
    assert "alignment.params.weights" in out.stderr  # it did validate (the weights file is missing)
