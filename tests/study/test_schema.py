"""Study files: every problem at once with its key path, labels resolved, cells' recipes validated, and the
shipped studies accepted by a dry run."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from specmatch.cli import main
from specmatch.core.overrides import parse_override
from specmatch.study.schema import StudyError, load_study, toml_inline

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(StudyError) as info:
        load_study(path)
    assert str(path) in str(info.value).splitlines()[0]
    return [p.render() for p in info.value.problems]


def test_every_problem_at_once_with_key_paths(tmp_path):
    path = write(tmp_path, f"""
name = "s"
seeds = [0, 1, 1]
baseline = "nope"
colour = "red"
overrides = ["train.autoencoder.steps"]
[recipes.a]
file = "{HERE / 'tiny.toml'}"
[recipes.b]
[recipes.c]
file = "missing.toml"
[recipes."bad/label"]
base = "a"
[recipes.d]
file = "{HERE / 'tiny.toml'}"
speed = 3
[slurm]
gpus = "two"
""")
    rendered = problems_of(path)
    # a key that does not structure (colour, recipes.d.speed, slurm.gpus) hides none of the other problems
    assert any(r.startswith("colour: unexpected key 'colour'") for r in rendered)
    assert any(r.startswith("recipes.d.speed: unexpected key 'speed'") for r in rendered)
    assert any(r.startswith("slurm.gpus: ") for r in rendered)
    assert any(r.startswith("seeds: each seed once; repeated: 1") for r in rendered)
    assert any(r.startswith("baseline: expected a recipe label") and "'nope'" in r for r in rendered)
    assert any(r.startswith("overrides[0]: ") and "key.path=value" in r for r in rendered)
    assert any(r.startswith("recipes.b: give exactly one of file") for r in rendered)
    assert any(r.startswith("recipes.c.file: file ") and "missing.toml does not exist" in r for r in rendered)
    assert any(r.startswith("recipes.bad/label: a label is one folder name") for r in rendered)
    assert len(rendered) == 9, rendered


def test_an_entry_that_does_not_structure_is_still_a_known_label(tmp_path):
    # the baseline and a variant name recipes.a, whose own entry is wrong: only that entry's problem is reported
    path = write(tmp_path, f"""
name = "s"
seeds = [0]
baseline = "a"
[recipes.a]
file = "{HERE / 'tiny.toml'}"
overrides = "not-an-array"
[recipes.v]
base = "a"
[recipes.w]
base = "v"
""")
    rendered = problems_of(path)
    assert len(rendered) == 1 and rendered[0].startswith("recipes.a.overrides: "), rendered


def test_empty_seeds_wrong_types_and_missing_keys(tmp_path):
    rendered = problems_of(write(tmp_path, 'name = "s"\nseeds = []\n[recipes.a]\nfile = "x.toml"\n'))
    assert any(r.startswith("seeds: expected at least one seed") for r in rendered)
    rendered = problems_of(write(tmp_path, 'name = "s"\nseeds = ["0"]\n'))
    assert any(r.startswith("seeds[0]: expected an integer") for r in rendered)
    assert any(r.startswith("recipes: required key is missing") for r in rendered)
    rendered = problems_of(write(tmp_path, 'name = "s"\nseeds = [-1]\n[recipes.a]\nfile = "x.toml"\n'))
    assert any(r.startswith("seeds: expected a value >= 0") for r in rendered)


def test_variants_follow_their_base_and_cycles_are_refused(tmp_path):
    path = write(tmp_path, f"""
name = "s"
seeds = [0]
baseline = "weak"
[recipes.a]
file = "{HERE / 'tiny.toml'}"
overrides = ["train.autoencoder.steps=3"]
[recipes.strong]
base = "a"
overrides = ["regularizers[0].weight=1e-3"]
[recipes.weak]
base = "strong"
overrides = ["regularizers[0].weight=1e-9"]
""")
    study = load_study(path)
    assert study.recipes["weak"].file == HERE / "tiny.toml"
    assert study.recipes["weak"].overrides == ("train.autoencoder.steps=3", "regularizers[0].weight=1e-3",
                                               "regularizers[0].weight=1e-9")
    cyclic = write(tmp_path, """
name = "s"
seeds = [0]
[recipes.x]
base = "y"
[recipes.y]
base = "x"
""")
    assert any("circular base" in r for r in problems_of(cyclic))


def test_a_recipe_problem_names_the_cell(tmp_path):
    path = write(tmp_path, f"""
name = "s"
seeds = [0, 1]
[recipes.a]
file = "{HERE / 'tiny.toml'}"
overrides = ["autoencoder.params.preset='no-such-preset'"]
""")
    result = CliRunner().invoke(main, ["study", str(path), "--dry-run", "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"Error: {path} is not a valid study (1 problem)")
    # one problem, shared by both seeds' cells, reported once with the other cell named
    assert "a/seed-0: autoencoder.params.preset:" in lines[1] and "also cells a/seed-1" in lines[1]
    assert "Traceback" not in result.output


def test_toml_inline_round_trips_through_the_override_grammar():
    value = {"name": "dit", "params": {"preset": "a \"b\"\\c", "sizes": [1, 2.5, True]}, "odd key": {}}
    assert parse_override(f"t={toml_inline(value)}") == (["t"], value)
    assert parse_override(f"x={toml_inline(float('inf'))}")[1] == float("inf")


@pytest.mark.parametrize("study", sorted((ROOT / "recipes" / "studies").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_studies_pass_a_dry_run(study, tmp_path):
    result = CliRunner().invoke(main, ["study", str(study), "--dry-run", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("# study ")


def test_validate_takes_study_files_too(tmp_path):
    good = ROOT / "recipes" / "studies" / "cpu-denoisers.toml"
    result = CliRunner().invoke(main, ["validate", str(good), str(ROOT / "recipes" / "smoke.toml")])
    assert result.exit_code == 0, result.output
    assert f"{good}: ok (study, 4 cells)" in result.output
    result = CliRunner().invoke(main, ["validate", str(good), "-o", "train.denoiser.steps=-1"])
    assert result.exit_code == 2
    assert "sdvae/seed-0/sit: train.denoiser.steps: expected a value >= 0; got -1" in result.output


def test_analyze_diagnostics_are_registered_names_and_need_analyze_images(tmp_path):
    path = write(tmp_path, f"""
name = "s"
seeds = [0]
analyze_diagnostics = ["all", "latent-spectrum", "no-such-diagnostic"]
[recipes.a]
file = "{HERE / 'tiny.toml'}"
""")
    found = problems_of(path)
    assert any("analyze_diagnostics[2]" in p and "'no-such-diagnostic'" in p for p in found), found
    assert any(p.startswith("analyze_diagnostics:") and "analyze_images is 0" in p for p in found), found
    assert not any("analyze_diagnostics[0]" in p or "analyze_diagnostics[1]" in p for p in found), found
    good = write(tmp_path, f"""
name = "s"
seeds = [0]
analyze_images = 8
analyze_diagnostics = ["all"]
[recipes.a]
file = "{HERE / 'tiny.toml'}"
""", "good.toml")
    assert load_study(good).analyze_diagnostics == ("all",)
