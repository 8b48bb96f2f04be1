"""Every shipped recipe validates and says how to run it; the recipe reference in the docs is current."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from specmatch.core.errors import RecipeError
from specmatch.core.recipe import is_base_recipe, load_recipe

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted(p for p in ROOT.glob("recipes/**/*.toml") if "studies" not in p.parts)  # studies: tests/study


def _is_base(path: Path) -> bool:
    return is_base_recipe(path.relative_to(ROOT / "recipes"))


def _id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# shipped recipes may use only what specmatch itself provides (conftest.py turns autoload off)


def test_recipes_are_shipped():
    assert ROOT.joinpath("recipes", "smoke.toml") in RECIPES


@pytest.mark.parametrize("path", RECIPES, ids=_id)
def test_shipped_recipe_validates(path):
    """Valid apart from data and weights files, which only the training machine has."""
    try:
        load_recipe(path, check_files=False)
    except RecipeError as exc:
        pytest.fail(f"shipped recipe does not validate:\n{exc}")
    try:
        load_recipe(path)
    except RecipeError as exc:  # with file checks: only missing files may be reported
        for problem in exc.problems:
            assert problem.message.endswith("does not exist"), problem.render()


def test_recipes_list_shows_every_shipped_recipe_with_its_purpose():
    """`specmatch recipes list --bases` on the shipped folder: one row per recipe, each with the purpose its
    header comment states (bases marked), so no shipped recipe is listed without saying what it is for."""
    from specmatch.testing import invoke_cli

    result = invoke_cli("recipes", "list", str(ROOT / "recipes"), "--bases")
    assert result.exit_code == 0, result.output
    rows = {}
    for line in result.output.splitlines()[1:]:
        name, _, purpose = line.partition("  ")
        rows[name] = purpose.strip()
    # study files are listed too (their purpose is their header as well)
    expected = {path.relative_to(ROOT / "recipes").as_posix(): path for path in ROOT.glob("recipes/**/*.toml")}
    assert set(rows) == set(expected)
    for name, path in expected.items():
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# "), f"{name} must start with a comment saying what it is"
        purpose = rows[name].removeprefix("(base) ") if _is_base(path) else rows[name]
        assert rows[name].startswith("(base) ") == _is_base(path), rows[name]
        assert len(purpose) > 8 and first[2:].strip().startswith(purpose.removesuffix("...")), (name, purpose)


@pytest.mark.parametrize("path", [p for p in RECIPES if not _is_base(p)], ids=_id)
def test_shipped_recipe_names_its_own_run_command(path):
    command = f"specmatch run {_id(path)}"
    text = path.read_text(encoding="utf-8")
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert any(re.search(re.escape(command) + r"(\s|$)", line) for line in comments), \
        f"{_id(path)} must show the command `{command}` in a comment"


def test_base_detection():
    recipes = ROOT / "recipes"
    assert _is_base(recipes / "cpu" / "base.toml")
    assert _is_base(recipes / "paper" / "base_celeba_f16d16.toml")
    assert _is_base(recipes / "x" / "_base_small.toml")
    assert _is_base(recipes / "bases" / "small.toml")
    assert not _is_base(recipes / "cpu" / "esm.toml")
    assert not _is_base(recipes / "smoke.toml")


def _reference_generator():
    script = ROOT / "docs" / "gen_recipe_reference.py"
    spec = importlib.util.spec_from_file_location("gen_recipe_reference", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recipe_reference_in_the_docs_is_up_to_date():
    gen = _reference_generator()
    document = (ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")
    block = gen.render()
    assert gen.BEGIN in document and gen.END in document
    assert gen.splice(document, block) == document, \
        "docs/recipes.md is out of date: run `python docs/gen_recipe_reference.py --write`"


def test_recipe_reference_covers_every_schema_key():
    import attrs

    from specmatch.core import schema

    block = _reference_generator().render()
    for cls in (schema.Recipe, schema.RunConfig, schema.DataConfig, schema.RegularizerConfig,
                schema.AdaptiveConfig, schema.AdversarialConfig, schema.AutoencoderTrainConfig,
                schema.DenoiserTrainConfig, schema.LatentStatsConfig, schema.EvaluationConfig):
        for field in attrs.fields(cls):
            assert f"| `{field.name}` |" in block, f"{cls.__name__}.{field.name} is not in the reference"
    for heading in ("[run]", "[[regularizers]]", "[regularizers.adaptive]", "[adversarial.adaptive]",
                    "[train.autoencoder]", "[train.denoiser]", "[evaluation]"):
        assert f"#### `{heading}`" in block
    # train.denoiser shows its own defaults, not the shared optimiser class defaults
    denoiser = block.split("#### `[train.denoiser]`")[1].split("####")[0]
    assert "| `lr` | float | `0.0002` |" in denoiser and "| `ema_decay` | float | `0.999` |" in denoiser
