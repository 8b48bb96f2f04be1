"""Golden recipe errors: the exact text a user sees for each kind of mistake (error text is API).

Every case runs ``specmatch validate`` through click's test runner and checks the exit code (2), the
header naming the file and the problem count, and each problem line ``<file>: <key path>: <message>``.
No output may contain a Python traceback.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

from specmatch.core.errors import RecipeError
from specmatch.core.recipe import load_recipe
from specmatch.testing import MINIMAL_RECIPE, invoke_cli

# a valid minimal recipe: 16 px demo photos, the 2x-downsampling CPU autoencoder
BASE = MINIMAL_RECIPE
invoke = invoke_cli


def validate(tmp_path: Path, text: str, *args: str, name: str = "recipe.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return invoke("validate", str(path), *args), path


def problems_of(output: str, path: Path) -> list[str]:
    """The problem lines for ``path`` (without the file prefix), in order."""
    prefix = f"  {path}: "
    return [line[len(prefix):] for line in output.splitlines() if line.startswith(prefix)]


def assert_invalid(result, path: Path, *expected: str) -> list[str]:
    """Exit code 2, the header, and exactly the expected problem lines (``key: message``)."""
    assert result.exit_code == 2, result.output
    n = len(expected)
    assert f"Error: {path} is not a valid recipe ({n} problem{'s' if n != 1 else ''})" in result.output
    found = problems_of(result.output, path)
    assert found == list(expected)
    return found


# -- phase 1: files, syntax, extends, overrides ---------------------------------------------------------

def test_toml_syntax_error_names_line_and_column(tmp_path):
    text = ('[data]\nname = "demo-photos"\n\n'
            '[autoencoder]\nname = "sdvae"\n\n'
            '[run\nname = 1\n')  # line 7: the header lacks its "]"; tomllib stops at column 5 (the newline)
    result, path = validate(tmp_path, text)
    assert_invalid(result, path,
                   "invalid TOML: Expected ']' at the end of a table declaration (at line 7, column 5)")
    assert "Traceback" not in result.output


def test_syntax_error_in_a_base_names_the_base_file(tmp_path):
    (tmp_path / "base.toml").write_text('# shared\n[data]\nname = "demo-photos"\n[autoencoder\n', encoding="utf-8")
    result, path = validate(tmp_path, 'extends = "base.toml"\n')
    # reported on the recipe (the file the user ran) at its extends key, naming the base, line 4, column 13
    assert_invalid(result, path,
                   f"extends: invalid TOML in {(tmp_path / 'base.toml').resolve()}: Expected ']' at the end of a "
                   f"table declaration (at line 4, column 13)")


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.toml"
    result = invoke("validate", str(path))
    assert_invalid(result, path, f"file {path} does not exist")


def test_missing_required_table(tmp_path):
    result, path = validate(tmp_path, '[autoencoder]\nname = "sdvae"\n')
    assert_invalid(result, path, "data: required table [data] is missing")


def test_unknown_top_level_key(tmp_path):
    result, path = validate(tmp_path, "epochs = 3\n" + BASE)
    assert_invalid(result, path, "epochs: unexpected key 'epochs' (allowed: version, run, plugins, data, "
                                 "autoencoder, regularizers, perceptual, adversarial, alignment, denoiser, "
                                 "denoiser_regularizers, objective, sampler, latent_stats, train, "
                                 "evaluation)")


def test_unknown_nested_key_lists_the_allowed_keys(tmp_path):
    result, path = validate(tmp_path, BASE + "[train.autoencoder]\nstepz = 3\n")
    assert_invalid(result, path, "train.autoencoder.stepz: unexpected key 'stepz' (allowed: steps, batch_size, "
                                 "lr, weight_decay, betas, warmup_steps, grad_clip, grad_accumulation, "
                                 "ema_decay, checkpoint_every, max_nonfinite_steps, pixel_loss, sample_posterior, "
                                 "analyze_every)")


def test_wrong_type_shows_the_value_and_its_type(tmp_path):
    text = BASE.replace('preset = "micro-f2d4"', 'preset = "micro-f2d4", latent_channels = "four"')
    result, path = validate(tmp_path, text)
    assert_invalid(result, path, "autoencoder.params.latent_channels: expected an integer, got 'four' (str)")
    # the same mistake made on the command line is reported at the same key path
    result, path = validate(tmp_path, BASE, "-o", 'autoencoder.params.latent_channels="four"', name="o.toml")
    assert_invalid(result, path, "autoencoder.params.latent_channels: expected an integer, got 'four' (str)")


def test_bool_is_not_an_int_and_int_is_not_a_bool(tmp_path):
    result, path = validate(tmp_path, BASE + "[run]\nseed = true\ncpu = 1\n")
    assert_invalid(result, path,
                   "run.seed: expected an integer, got True (bool)",
                   "run.cpu: expected true or false, got 1 (int)")


def test_float_is_not_an_int_but_int_is_a_float(tmp_path):
    result, path = validate(tmp_path, BASE + "[train.autoencoder]\nsteps = 3.0\n")
    assert_invalid(result, path, "train.autoencoder.steps: expected an integer, got 3.0 (float)")
    result, _ = validate(tmp_path, BASE + "[train.autoencoder]\nlr = 1\n", name="ok.toml")
    assert result.exit_code == 0, result.output


def test_string_is_not_an_array(tmp_path):
    # a string must not be split into characters ('tensorboard' -> 't', 'e', ...)
    result, path = validate(tmp_path, BASE + '[run]\ntrackers = "tensorboard"\n')
    assert_invalid(result, path, "run.trackers: expected an array, got 'tensorboard' (str)")


def test_fixed_length_array(tmp_path):
    result, path = validate(tmp_path, BASE + "[train.autoencoder]\nbetas = [0.9]\n")
    assert_invalid(result, path, "train.autoencoder.betas: expected an array of 2 values, got [0.9] (list)")


def test_value_that_should_be_a_table(tmp_path):
    result, path = validate(tmp_path, BASE + '[[regularizers]]\nname = "esm"\nparams = 5\n')
    assert_invalid(result, path, "regularizers[0].params: expected a table, got 5 (int)")


def test_single_bracket_regularizers(tmp_path):
    result, path = validate(tmp_path, BASE + '[regularizers]\nname = "kl"\n')
    assert_invalid(result, path, "regularizers: expected an array of tables: write [[regularizers]], not "
                                 "[regularizers]")


def test_value_out_of_range(tmp_path):
    result, path = validate(tmp_path, BASE + "[train.autoencoder]\nbatch_size = 0\nbetas = [0.9, 1.5]\n")
    assert_invalid(result, path,
                   "train.autoencoder.batch_size: expected a value >= 1; got 0",
                   "train.autoencoder.betas: expected a value < 1; got 1.5")


def test_top_level_choice_is_checked(tmp_path):
    result, path = validate(tmp_path, "version = 2\n" + BASE)
    assert_invalid(result, path, "version: expected one of 1; got 2")


def test_bad_choice(tmp_path):
    result, path = validate(tmp_path, BASE + '[run]\nmixed_precision = "fp8"\n')
    assert_invalid(result, path, "run.mixed_precision: expected one of 'no', 'fp16', 'bf16'; got 'fp8'")


def test_bad_choice_in_component_params(tmp_path):
    result, path = validate(tmp_path, BASE + '[[regularizers]]\nname = "esm"\nparams = { loss = "l3" }\n')
    assert_invalid(result, path, "regularizers[0].params.loss: expected one of 'kl', 'l2'; got 'l3'")


def test_unknown_component_suggests_and_lists_installed(tmp_path):
    result, path = validate(tmp_path, BASE + '[[regularizers]]\nname = "kl"\n[[regularizers]]\nname = "esn"\n')
    (line,) = problems_of(result.output, path)
    assert result.exit_code == 2
    m = re.fullmatch(r"regularizers\[1\]\.name: unknown latent regularizer 'esn'; did you mean 'esm'\? "
                     r"\(installed: (.*); see `specmatch components list --kind regularizer`\)", line)
    assert m, line
    installed = m.group(1).split(", ")
    assert installed == sorted(installed)
    assert {"dsm", "esm", "kl", "vavae", "eqvae", "scale-equivariance"} <= set(installed)


def test_unknown_component_of_another_kind(tmp_path):
    result, path = validate(tmp_path, BASE.replace('"demo-photos"', '"demo-foto"'))
    (line,) = problems_of(result.output, path)
    assert line.startswith("data.name: unknown dataset 'demo-foto'; did you mean 'demo-photos'? (installed: ")
    assert line.endswith("; see `specmatch components list --kind dataset`)")


def test_unknown_params_key_lists_the_component_params(tmp_path):
    from specmatch.regularizers.esm import ESMParams

    result, path = validate(tmp_path, BASE + '[[regularizers]]\nname = "esm"\nparams = { delat = 1.0 }\n')
    allowed = ", ".join(f.name for f in attrs.fields(ESMParams))
    assert_invalid(result, path, f"regularizers[0].params.delat: unexpected key 'delat' (allowed: {allowed})")
    assert allowed.startswith("delta, n_bins")


def test_params_for_a_component_without_params(tmp_path):
    result, path = validate(tmp_path, BASE + '[[regularizers]]\nname = "kl"\nparams = { beta = 1 }\n')
    assert_invalid(result, path, "regularizers[0].params: 'kl' takes no parameters")


def test_missing_required_key_in_a_component_table(tmp_path):
    result, path = validate(tmp_path, BASE + "[[regularizers]]\nweight = 1.0\n")
    assert_invalid(result, path, "regularizers[0].name: required key is missing")


# -- phase 4: cross-checks ------------------------------------------------------------------------------

def test_vavae_needs_an_alignment_table(tmp_path):
    result, path = validate(tmp_path, BASE + '[[regularizers]]\nname = "vavae"\n')
    assert_invalid(result, path, "regularizers[0]: 'vavae' needs teacher features, but the recipe has no "
                                 "[alignment] table (see `specmatch components list --kind alignment`)")
    fixed = BASE + '[[regularizers]]\nname = "vavae"\n[alignment]\nname = "stlpips-alex"\n'
    result, _ = validate(tmp_path, fixed, name="fixed.toml")
    assert result.exit_code == 0, result.output


def test_dsm_probabilities_length(tmp_path):
    result, path = validate(tmp_path, BASE + '[[regularizers]]\nname = "dsm"\n'
                                             'params = { mask_levels = [0, 8, 10], probabilities = [0.5, 0.5] }\n')
    assert_invalid(result, path, "regularizers[0].params.probabilities: expected 3 values (one per mask level); "
                                 "got 2")


def test_resolution_must_be_a_multiple_of_the_downsampling_factor(tmp_path):
    # tiny-f4d4 has 3 levels: factor 4; 18 px is not a multiple of it
    text = BASE.replace("resolution = 16", "resolution = 18").replace("micro-f2d4", "tiny-f4d4")
    result, path = validate(tmp_path, text)
    assert_invalid(result, path, "data.params.resolution: expected a multiple of the autoencoder's downsampling "
                                 "factor 4; got 18")


def test_end_step_before_start_step(tmp_path):
    result, path = validate(tmp_path, BASE + '[[regularizers]]\nname = "kl"\nstart_step = 10\nend_step = 5\n')
    assert_invalid(result, path, "regularizers[0].end_step: expected end_step > start_step (10); got 5")


def test_cross_checks_are_all_reported(tmp_path):
    text = BASE + ('[[regularizers]]\nname = "vf"\n'
                   '[[regularizers]]\nname = "dsm"\nparams = { probabilities = [1.0] }\n'
                   '[[regularizers]]\nname = "kl"\nstart_step = 3\nend_step = 3\n')
    result, path = validate(tmp_path, text)
    assert_invalid(result, path,
                   "regularizers[0]: 'vavae' needs teacher features, but the recipe has no [alignment] table "
                   "(see `specmatch components list --kind alignment`)",
                   "regularizers[2].end_step: expected end_step > start_step (3); got 3",
                   "regularizers[1].params.probabilities: expected 4 values (one per mask level); got 1")


# -- overrides -------------------------------------------------------------------------------------------

def test_override_without_equals(tmp_path):
    result, path = validate(tmp_path, BASE, "-o", "train.autoencoder.steps")
    assert_invalid(result, path, "-o: override 'train.autoencoder.steps' must look like key.path=value")


def test_override_with_a_bad_key_path(tmp_path):
    result, path = validate(tmp_path, BASE, "-o", "train..steps=3")
    assert_invalid(result, path, "-o: override 'train..steps=3': 'train..steps' is not a dotted key path")


def test_override_with_a_bad_value(tmp_path):
    result, path = validate(tmp_path, BASE, "-o", "run.name=two words")
    assert_invalid(result, path, "-o: override 'run.name=two words': 'two words' is not a TOML value")


def test_override_index_out_of_range(tmp_path):
    result, path = validate(tmp_path, BASE + '[[regularizers]]\nname = "kl"\n', "-o", "regularizers[3].weight=1")
    assert_invalid(result, path, "regularizers[3].weight: cannot override (index 3 is out of range)")


def test_override_through_an_array_needs_an_index(tmp_path):
    result, path = validate(tmp_path, BASE + '[[regularizers]]\nname = "kl"\n', "-o", "regularizers.weight=1")
    assert_invalid(result, path, "regularizers.weight: cannot override (regularizers is an array: use an index, "
                                 "e.g. regularizers[0])")


# -- extends -------------------------------------------------------------------------------------------

def test_extends_missing_base(tmp_path):
    result, path = validate(tmp_path, 'extends = "bases/missing.toml"\n')
    # only the real problem: not the [data]/[autoencoder] tables the missing base would have provided
    assert_invalid(result, path, f"extends: file {(tmp_path / 'bases' / 'missing.toml').resolve()} does not exist")


def test_circular_extends(tmp_path):
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n', encoding="utf-8")
    result, path = validate(tmp_path, 'extends = "b.toml"\n', name="a.toml")
    a, b = (tmp_path / "a.toml").resolve(), (tmp_path / "b.toml").resolve()
    assert_invalid(result, path, f"extends: circular extends: {a} -> {b} -> {a}")


def test_extends_must_be_a_string(tmp_path):
    result, path = validate(tmp_path, "extends = 5\n" + BASE)
    assert_invalid(result, path, "extends: expected a path string, got 5")


def test_missing_plugin_file(tmp_path):
    result, path = validate(tmp_path, BASE + '[plugins]\nfiles = ["local_plugin.py"]\n')
    assert result.exit_code == 2
    assert f"plugins.files[0]: file {tmp_path / 'local_plugin.py'} does not exist" in problems_of(result.output,
                                                                                                  path)


# -- every problem at once -----------------------------------------------------------------------------

def test_independent_problems_are_all_reported(tmp_path):
    bad_type = BASE.replace('preset = "micro-f2d4"', 'preset = "micro-f2d4", latent_channels = "four"')
    text = "epochs = 3\n" + bad_type + (
        '[run]\nmixed_precision = "fp8"\n'
        '[train.autoencoder]\nbatch_size = 0\n'
        '[[regularizers]]\nname = "esn"\n'
        '[[regularizers]]\nname = "esm"\nparams = { delat = 1.0 }\n')
    result, path = validate(tmp_path, text, "-o", "train.autoencoder.steps")
    found = problems_of(result.output, path)
    assert result.exit_code == 2
    assert f"Error: {path} is not a valid recipe (7 problems)" in result.output
    assert len(found) == 7
    keys = sorted(line.split(": ", 1)[0] for line in found)
    assert keys == sorted(["-o", "epochs", "run.mixed_precision", "train.autoencoder.batch_size",
                           "autoencoder.params.latent_channels", "regularizers[0].name",
                           "regularizers[1].params.delat"])

    # the Python API reports the same problems as records
    with pytest.raises(RecipeError) as info:
        load_recipe(path, ["train.autoencoder.steps"])
    assert sorted(p.path for p in info.value.problems) == keys


def test_problems_of_two_files_are_reported_separately(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(BASE, encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = 3\n" + BASE, encoding="utf-8")
    result = invoke("validate", str(bad), str(good), str(tmp_path / "gone.toml"))
    assert result.exit_code == 2
    assert f"{good}: ok" in result.output
    assert problems_of(result.output, bad)[0].startswith("epochs: unexpected key 'epochs'")
    assert problems_of(result.output, tmp_path / "gone.toml") == [f"file {tmp_path / 'gone.toml'} does not exist"]


def test_run_reports_recipe_errors_like_validate(tmp_path):
    path = tmp_path / "recipe.toml"
    path.write_text(BASE + '[[regularizers]]\nname = "vavae"\n', encoding="utf-8")
    result = invoke("run", str(path), "--dry-run")
    assert result.exit_code == 2
    assert problems_of(result.output, path)[0].startswith("regularizers[0]: 'vavae' needs teacher features")
