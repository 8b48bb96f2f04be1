"""The matrix of a study: cells, their ids and folders, their overrides, and the autoencoder they share."""

from __future__ import annotations

from pathlib import Path

from specmatch.core.recipe import load_recipe
from specmatch.study.matrix import expand, resolve_cells, select
from specmatch.study.schema import load_study

HERE = Path(__file__).resolve().parent


def study_file(tmp_path: Path) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(f"""
name = "m"
seeds = [3, 7]
baseline = "kl"
overrides = ["train.autoencoder.steps=2"]
[recipes.kl]
file = "{HERE / 'tiny.toml'}"
[recipes.kl-strong]
base = "kl"
overrides = ["regularizers[0].weight=1e-3"]
[denoisers.dit]
file = "{HERE / 'tiny-denoiser.toml'}"
[denoisers.dit-slow]
file = "{HERE / 'tiny-denoiser.toml'}"
overrides = ["train.denoiser.lr=1e-5"]
""")
    return path


def test_cells_are_recipes_times_seeds_times_denoisers(tmp_path):
    study = load_study(study_file(tmp_path))
    specs = expand(study, tmp_path / "out")
    ids = [s.cell.id for s in specs]
    assert ids == ["kl/seed-3/dit", "kl/seed-3/dit-slow", "kl/seed-7/dit", "kl/seed-7/dit-slow",
                   "kl-strong/seed-3/dit", "kl-strong/seed-3/dit-slow", "kl-strong/seed-7/dit",
                   "kl-strong/seed-7/dit-slow"]
    by_id = {s.cell.id: s for s in specs}
    cell = by_id["kl-strong/seed-7/dit-slow"]
    assert cell.cell.run_dir == (tmp_path / "out").resolve() / "cells" / "kl-strong" / "seed-7" / "dit-slow"
    assert cell.cell.group == "kl-strong/dit-slow"
    # study-wide overrides first, then the variant's, the denoiser's, then seed and name
    assert cell.overrides[0] == "train.autoencoder.steps=2"
    assert cell.overrides[1] == "regularizers[0].weight=1e-3"
    assert cell.overrides[-3:] == ("train.denoiser.lr=1e-5", "run.seed=7", 'run.name="kl-strong-seed-7-dit-slow"')
    # the first denoiser's cell trains the autoencoder; the second reuses it
    assert by_id["kl/seed-3/dit"].autoencoder_from == ""
    assert by_id["kl/seed-3/dit-slow"].autoencoder_from == "kl/seed-3/dit"
    assert by_id["kl-strong/seed-7/dit-slow"].autoencoder_from == "kl-strong/seed-7/dit"


def test_cells_resolve_with_their_seed_name_and_denoiser_tables(tmp_path):
    study = load_study(study_file(tmp_path))
    specs = expand(study, tmp_path / "out")
    resolved = resolve_cells(study, specs, lambda file, overrides: load_recipe(file, overrides))
    r = resolved["kl-strong/seed-7/dit-slow"].recipe
    assert (r.run.seed, r.run.name) == (7, "kl-strong-seed-7-dit-slow")
    assert r.regularizers[0].weight == 1e-3 and r.train.autoencoder.steps == 2
    assert r.denoiser.name == "dit" and r.train.denoiser.lr == 1e-5
    assert r.evaluation.num_samples == 4  # the denoiser file's [evaluation] replaced tiny.toml's
    assert resolved["kl/seed-3/dit"].recipe.train.denoiser.lr != 1e-5


def test_from_run_points_at_the_cell_that_trains_the_autoencoder(tmp_path):
    study = load_study(study_file(tmp_path))
    specs = {s.cell.id: s for s in expand(study, tmp_path / "out")}
    source = specs["kl/seed-3/dit"].cell.run_dir
    overrides = specs["kl/seed-3/dit-slow"].overrides_with(source)
    assert overrides[-1] == f'autoencoder.from_run="{source}"'
    assert specs["kl/seed-3/dit"].overrides_with(None) == specs["kl/seed-3/dit"].overrides


def test_only_selects_cells_and_the_cells_they_depend_on(tmp_path):
    specs = expand(load_study(study_file(tmp_path)), tmp_path / "out")
    assert [s.cell.id for s in select(specs, "kl/seed-7/dit-slow")] == ["kl/seed-7/dit", "kl/seed-7/dit-slow"]
    assert [s.cell.id for s in select(specs, "kl-strong/dit")] == ["kl-strong/seed-3/dit", "kl-strong/seed-7/dit"]
    assert len(select(specs, "*/seed-3/*")) == 4
    assert select(specs, "nothing*") == []
