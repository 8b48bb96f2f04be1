"""``autoencoder.init``: training starts from given weights, the run records them, mismatches are named."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from specmatch.core.plan import make_plan
from specmatch.core.recipe import load_recipe
from specmatch.core.session import get_registry
from specmatch.testing import invoke_cli

from .conftest import ae_recipe


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run folder with a trained micro autoencoder (2 steps)."""
    folder = tmp_path_factory.mktemp("first")
    recipe = ae_recipe(folder, "first")
    result = invoke_cli("run", str(recipe), "--output-dir", str(folder / "run"))
    assert result.exit_code == 0, result.output
    return folder / "run"


def test_init_round_trip_through_a_run_folder(trained, tmp_path):
    # zero fine-tuning steps: the stage's weights are exactly the ones it started from
    recipe = ae_recipe(tmp_path, "second", seed=5, steps=0, init=str(trained))
    out = tmp_path / "run"
    result = invoke_cli("run", str(recipe), "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    source = trained / "autoencoder" / "model.safetensors"
    a, b = load_file(str(source)), load_file(str(out / "autoencoder" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    marker = json.loads((out / "autoencoder" / "stage.json").read_text())
    assert marker["init_sha256"] == sha256(source) and marker["init_kind"] == "run"
    assert marker["init_file"] == str(source) and marker["init"] == str(trained)
    assert f'init = "{trained}"' in (out / "recipe.toml").read_text()


def test_fine_tuning_moves_away_from_the_init(trained, tmp_path):
    recipe = ae_recipe(tmp_path, "tune", steps=2, init=str(trained / "autoencoder" / "model.safetensors"))
    out = tmp_path / "run"
    assert invoke_cli("run", str(recipe), "--output-dir", str(out)).exit_code == 0
    a = load_file(str(trained / "autoencoder" / "model.safetensors"))
    b = load_file(str(out / "autoencoder" / "model.safetensors"))
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert json.loads((out / "autoencoder" / "stage.json").read_text())["init_kind"] == "file"


def test_a_different_init_file_changes_the_stage_key(trained, tmp_path):
    weights = tmp_path / "w.safetensors"
    state = load_file(str(trained / "autoencoder" / "model.safetensors"))
    save_file(state, str(weights))
    recipe = ae_recipe(tmp_path, "k", init="w.safetensors")  # relative to the recipe

    def key() -> str:
        resolved = load_recipe(recipe, registry=get_registry())
        return make_plan(resolved, tmp_path / "out").stage("autoencoder").key

    first = key()
    assert key() == first
    state["decoder.conv_out.bias"] = state["decoder.conv_out.bias"] + 1
    save_file(state, str(weights))  # same path, other content
    assert key() != first


def test_mismatched_init_names_missing_unexpected_and_wrong_shaped(trained, tmp_path):
    state = load_file(str(trained / "autoencoder" / "model.safetensors"))
    state.pop("encoder.conv_in.weight")
    state["encoder.extra.weight"] = torch.zeros(2)
    state["decoder.conv_out.bias"] = torch.zeros(7)
    save_file(state, str(tmp_path / "bad.safetensors"))
    recipe = ae_recipe(tmp_path, "bad", init="bad.safetensors")
    result = invoke_cli("run", str(recipe), "--output-dir", str(tmp_path / "run"))
    assert result.exit_code == 1, result.output
    text = result.output
    assert "missing (1): encoder.conv_in.weight" in text
    assert "unexpected (1): encoder.extra.weight" in text
    assert "wrong shape (1): decoder.conv_out.bias (7,) (the model has (3,))" in text
    assert "bad.safetensors" in text


def test_validate_checks_the_init_path(tmp_path):
    recipe = ae_recipe(tmp_path, "missing", init="nowhere/weights.safetensors")
    result = invoke_cli("validate", str(recipe))
    assert result.exit_code == 2
    assert "autoencoder.init" in result.output and str(tmp_path / "nowhere" / "weights.safetensors") in result.output
    assert invoke_cli("validate", str(recipe), "--no-file-checks").exit_code == 0


def test_init_and_from_run_conflict(trained, tmp_path):
    recipe = ae_recipe(tmp_path, "both", init=str(trained))
    recipe.write_text(recipe.read_text().replace("[autoencoder]\n", f'[autoencoder]\nfrom_run = "{trained}"\n'))
    result = invoke_cli("validate", str(recipe))
    assert result.exit_code == 2 and "cannot be combined with autoencoder.from_run" in result.output
