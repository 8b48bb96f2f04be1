"""Loading recipes: ``extends``, ``-o`` overrides, the resolved recipe, its hashes and the plan's stage keys."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import attrs
import pytest

from specmatch.core import schema
from specmatch.core.errors import RecipeError
from specmatch.core.plan import make_plan
from specmatch.core.recipe import load_recipe, parse_override
from specmatch.core.session import clear_cache
from specmatch.testing import MINIMAL_RECIPE

BASE = MINIMAL_RECIPE

# every table in use, aliases included
RICH = """\
run = { name = "rich", seed = 3 }

[data]
name = "demo-photos"
params = { resolution = 32, num_images = 64 }

[autoencoder]
name = "sd-vae"
params = { preset = "tiny-f4d4", latent_channels = 8 }

[[regularizers]]
name = "esm"
weight = 0.01
start_step = 5
warmup_steps = 3
end_step = 100
adaptive = { layer = "encoder.last", max = 10.0 }

[[regularizers]]
name = "vf"
weight = 0.1

[[regularizers]]
name = "dsm"
params = { probabilities = [0.25, 0.25, 0.25, 0.25] }

[alignment]
name = "stlpips-alex"

[perceptual]
name = "stlpips"

[adversarial]
name = "patchgan"
start_step = 10

[denoiser]
name = "dit"
params = { preset = "dit-micro" }

[[denoiser_regularizers]]
name = "repa"
params = { depth = 1 }

[train.denoiser]
steps = 7
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- extends ---------------------------------------------------------------------------------------------

def test_extends_merges_tables_and_replaces_arrays_of_tables(tmp_path):
    write(tmp_path / "base.toml", BASE.replace("resolution = 16", "resolution = 16, num_images = 64") + """
[[regularizers]]
name = "kl"
weight = 1e-6
[[regularizers]]
name = "esm"

[train.autoencoder]
steps = 11
lr = 0.002
""")
    child = write(tmp_path / "child.toml", """extends = "base.toml"
[data.params]
num_images = 32
[[regularizers]]
name = "dsm"
[train.autoencoder]
steps = 22
""")
    r = load_recipe(child).to_dict()
    assert r["data"]["params"]["resolution"] == 16  # from the base: tables merge key by key
    assert r["data"]["params"]["num_images"] == 32  # from the child
    assert r["autoencoder"]["params"]["preset"] == "micro-f2d4"
    assert [reg["name"] for reg in r["regularizers"]] == ["dsm"]  # arrays of tables replace
    assert r["train"]["autoencoder"]["steps"] == 22
    assert r["train"]["autoencoder"]["lr"] == 0.002


def test_extends_path_is_relative_to_the_recipe_not_the_working_directory(tmp_path, monkeypatch):
    write(tmp_path / "bases" / "small.toml", BASE)
    child = write(tmp_path / "recipes" / "exp" / "child.toml", 'extends = "../../bases/small.toml"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_recipe(child).recipe.data.name == "demo-photos"


def test_extends_several_levels(tmp_path):
    # c (root) <- b (in another folder, relative to itself) <- a; the nearest file wins
    write(tmp_path / "root" / "c.toml", BASE + '[run]\nname = "c"\nseed = 1\nlog_every = 7\n')
    write(tmp_path / "mid" / "b.toml", 'extends = "../root/c.toml"\n[run]\nname = "b"\nseed = 2\n')
    a = write(tmp_path / "a.toml", 'extends = "mid/b.toml"\n[run]\nname = "a"\n')
    run = load_recipe(a).recipe.run
    assert (run.name, run.seed, run.log_every) == ("a", 2, 7)


# -- overrides ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, parts, value", [
    ("train.autoencoder.steps=200", ["train", "autoencoder", "steps"], 200),
    ("regularizers[0].weight=0.5", ["regularizers", 0, "weight"], 0.5),
    ("regularizers.1.weight=1e-3", ["regularizers", 1, "weight"], 0.001),
    ("data.name=demo-photos", ["data", "name"], "demo-photos"),
    ('run.name="two words"', ["run", "name"], "two words"),
    ("run.cpu=true", ["run", "cpu"], True),
    ("train.autoencoder.betas=[0.5, 0.9]", ["train", "autoencoder", "betas"], [0.5, 0.9]),
    ("regularizers[0].params={ delta = 0.6, n_bins = 8 }", ["regularizers", 0, "params"],
     {"delta": 0.6, "n_bins": 8}),
    (" data.params.resolution = 32 ", ["data", "params", "resolution"], 32),
])
def test_override_values_are_toml_literals(text, parts, value):
    got_parts, got_value = parse_override(text)
    assert got_parts == parts
    assert got_value == value
    assert type(got_value) is type(value)


def test_overrides_apply_to_the_recipe(tmp_path):
    path = write(tmp_path / "r.toml", BASE + '[[regularizers]]\nname = "kl"\n[[regularizers]]\nname = "esm"\n')
    r = load_recipe(path, [
        "train.autoencoder.steps=200",
        "regularizers[1].weight=0.5",
        "regularizers[1].params={ delta = 0.6 }",
        "data.params.resolution=32",
        "train.autoencoder.betas=[0.5, 0.9]",
        "perceptual.name=stlpips",  # creates the missing table
    ])
    assert r.recipe.train.autoencoder.steps == 200
    assert r.recipe.regularizers[1].weight == 0.5
    assert r.regularizers()[1].params.delta == 0.6
    assert r.regularizers()[1].params.n_bins == 16  # untouched params keep their defaults
    assert r.component("data").params.resolution == 32
    assert r.recipe.train.autoencoder.betas == (0.5, 0.9)
    assert r.recipe.perceptual.name == "stlpips"


def test_later_overrides_win(tmp_path):
    path = write(tmp_path / "r.toml", BASE)
    r = load_recipe(path, ["run.seed=1", "run.seed=5"])
    assert r.recipe.run.seed == 5


def test_a_partial_sub_table_keeps_the_other_defaults_of_its_parent(tmp_path):
    # train.denoiser's defaults (lr 2e-4, EMA 0.999) differ from the shared optimiser defaults (1e-4, 0)
    path = write(tmp_path / "r.toml", BASE + '[train.denoiser]\nsteps = 7\n[adversarial]\nname = "patchgan"\n'
                                             'adaptive = { max = 5.0 }\n[sampler]\nparams = { steps = 3 }\n')
    r = load_recipe(path).recipe
    assert (r.train.denoiser.steps, r.train.denoiser.lr, r.train.denoiser.ema_decay) == (7, 2e-4, 0.999)
    assert (r.adversarial.adaptive.layer, r.adversarial.adaptive.max) == ("decoder.last", 5.0)
    assert (r.sampler.name, r.sampler.params) == ("euler", {"steps": 3})
    r = load_recipe(path, ["train={ denoiser = { lr = 0.5 } }"]).recipe  # the same through an override
    assert (r.train.denoiser.steps, r.train.denoiser.lr, r.train.denoiser.ema_decay) == (1000, 0.5, 0.999)


# -- the resolved recipe -------------------------------------------------------------------------------------

def _expected_keys(cls: type, default: Any) -> dict[str, Any]:
    """Every key of the schema record ``cls`` with a TOML-representable default (None means omitted)."""
    out = {}
    for field in attrs.fields(cls):
        value = getattr(default, field.name) if default is not None else field.default
        if value is None or value is attrs.NOTHING:
            continue
        out[field.name] = value
    return out


def _check_complete(data: dict[str, Any], cls: type, default: Any, where: str) -> None:
    for key, value in _expected_keys(cls, default).items():
        assert key in data, f"{where}.{key} is missing from the resolved recipe"
        if attrs.has(type(value)):
            _check_complete(data[key], type(value), value, f"{where}.{key}")


def test_resolved_recipe_has_every_default_and_every_params_field(tmp_path):
    resolved = load_recipe(write(tmp_path / "rich.toml", RICH))
    data = resolved.to_dict()
    schema_fields = {f.name for f in attrs.fields(schema.Recipe)}
    assert set(data) == schema_fields - {"plugins"}  # [plugins] only appears when it lists files
    _check_complete(data["run"], schema.RunConfig, None, "run")
    _check_complete(data["train"], schema.TrainConfig, schema.TrainConfig(), "train")
    _check_complete(data["latent_stats"], schema.LatentStatsConfig, None, "latent_stats")
    _check_complete(data["evaluation"], schema.EvaluationConfig, None, "evaluation")
    _check_complete(data["adversarial"]["adaptive"], schema.AdaptiveConfig,
                    schema.AdversarialConfig(name="x").adaptive, "adversarial.adaptive")
    for i in range(3):
        _check_complete(data["regularizers"][i], schema.RegularizerConfig, None, f"regularizers[{i}]")
    assert data["train"]["denoiser"]["lr"] == 2e-4  # the denoiser stage's own default, not OptimConfig's
    assert data["train"]["denoiser"]["steps"] == 7

    # params tables are complete: every field of the component's params class with a non-None value
    from specmatch.regularizers.dsm import DSMParams
    from specmatch.regularizers.esm import ESMParams
    from specmatch.regularizers.vavae import VAVAEParams

    for table, cls in ((data["regularizers"][0], ESMParams), (data["regularizers"][1], VAVAEParams),
                       (data["regularizers"][2], DSMParams)):
        expected = {f.name for f in attrs.fields(cls) if f.default is not None}
        assert set(table["params"]) >= expected
    assert data["regularizers"][0]["params"]["n_bins"] == ESMParams().n_bins
    assert data["regularizers"][2]["params"]["mask_levels"] == [0, 8, 10, 12]
    for table in ("data", "autoencoder", "alignment", "perceptual", "adversarial", "denoiser", "objective",
                  "sampler"):
        assert data[table]["params"], f"{table}.params is empty"
    # aliases are written as the canonical name
    assert data["autoencoder"]["name"] == "sdvae"
    assert data["regularizers"][1]["name"] == "vavae"


def test_resolved_recipe_round_trips(tmp_path):
    first = load_recipe(write(tmp_path / "rich.toml", RICH))
    text = first.to_toml(header="# resolved\n")
    assert text.startswith("# resolved\n")
    again = load_recipe(write(tmp_path / "out" / "recipe.toml", text))
    assert again.to_dict() == first.to_dict()
    assert tomllib.loads(text) == first.to_dict()
    for table in [None, *first.to_dict()]:
        keys = () if table is None else (table,)
        assert again.section_hash(*keys) == first.section_hash(*keys)


def test_round_trip_of_a_recipe_reusing_a_trained_autoencoder(tmp_path):
    ae_run = tmp_path / "runs" / "ae"
    first = load_recipe(write(tmp_path / "ae.toml", BASE))
    write(ae_run / "recipe.toml", first.to_toml())
    write(ae_run / "autoencoder" / "model.safetensors", "")
    text = BASE.replace('name = "sdvae"\nparams = { preset = "micro-f2d4" }', 'from_run = "runs/ae"')
    den = load_recipe(write(tmp_path / "den.toml", text + '[denoiser]\nname = "dit"\n'))
    assert den.recipe.autoencoder.name == "sdvae"
    assert den.recipe.autoencoder.params["preset"] == "micro-f2d4"
    again = load_recipe(write(tmp_path / "den_resolved.toml", den.to_toml()))  # name/params beside from_run
    assert again.to_dict() == den.to_dict()
    plan = make_plan(den, tmp_path / "out")
    assert plan.stage("autoencoder").reused_from == tmp_path / "runs" / "ae"


def test_autoencoder_from_run_requires_a_run_folder(tmp_path):
    path = write(tmp_path / "den.toml", BASE.replace('name = "sdvae"\nparams = { preset = "micro-f2d4" }',
                                                     'from_run = "runs/none"'))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert [p.render() for p in info.value.problems] == [
        f"autoencoder.from_run: {tmp_path / 'runs' / 'none'} is not a specmatch run folder (no readable "
        f"recipe.toml)"]


def test_section_hash_follows_the_tables_it_covers(tmp_path):
    path = write(tmp_path / "r.toml", BASE + '[[regularizers]]\nname = "vf"\n[alignment]\nname = "stlpips-alex"\n')
    base = load_recipe(path)
    more_images = load_recipe(path, ["data.params.num_images=10"])
    assert more_images.section_hash("data") != base.section_hash("data")
    assert more_images.section_hash() != base.section_hash()
    for unrelated in ("autoencoder", "regularizers", "train", "evaluation"):
        assert more_images.section_hash(unrelated) == base.section_hash(unrelated)
    # writing a default explicitly, or using an alias, changes nothing
    explicit = load_recipe(path, ["data.params.num_images=4096", "run.seed=0", "regularizers[0].name=vavae"])
    assert explicit.section_hash() == base.section_hash()
    # hashes are stable across processes: a fixed value for a fixed recipe
    assert len(base.section_hash()) == 16 and int(base.section_hash(), 16) >= 0


def test_plan_keys_change_only_for_the_stages_that_depend_on_a_change(tmp_path):
    path = write(tmp_path / "r.toml", RICH)
    out = tmp_path / "runs" / "rich"

    def keys(*overrides: str) -> dict[str, str]:
        plan = make_plan(load_recipe(path, overrides), out)
        return {s.name: s.key for s in plan.stages}

    base = keys()
    assert list(base) == ["autoencoder", "latent_stats", "denoiser", "evaluation"]
    assert keys() == base  # deterministic

    denoiser_steps = keys("train.denoiser.steps=8")
    assert denoiser_steps["autoencoder"] == base["autoencoder"]
    assert denoiser_steps["latent_stats"] == base["latent_stats"]
    assert denoiser_steps["denoiser"] != base["denoiser"]
    assert denoiser_steps["evaluation"] != base["evaluation"]

    weight = keys("regularizers[0].weight=0.02")
    assert all(weight[stage] != base[stage] for stage in base)

    ae_steps = keys("train.autoencoder.steps=5")
    assert all(ae_steps[stage] != base[stage] for stage in base)

    evaluation = keys("evaluation.num_samples=8")
    assert [evaluation[s] == base[s] for s in base] == [True, True, True, False]


def test_plan_without_denoiser(tmp_path):
    plan = make_plan(load_recipe(write(tmp_path / "r.toml", BASE)), tmp_path / "out")
    assert [s.name for s in plan.stages] == ["autoencoder", "latent_stats", "evaluation"]
    assert plan.stage("autoencoder").folder == tmp_path / "out" / "autoencoder"


# -- local plugins --------------------------------------------------------------------------------------------

PLUGIN = '''
import attrs
from specmatch import Problem, RegularizerSpec, hookimpl, param


@attrs.frozen(kw_only=True)
class ToyParams:
    strength: float = param(1.0, doc="how strong", ge=0)


@hookimpl
def specmatch_regularizers():
    yield RegularizerSpec(name="toy-wavelet", factory=lambda params, ctx: None, params=ToyParams,
                          summary="a toy")


@hookimpl
def specmatch_validate_recipe(recipe):
    for comp in recipe.regularizers():
        if comp.spec.name == "toy-wavelet" and comp.config.weight > 1:
            yield Problem(comp.path + ".weight", "toy-wavelet is unstable above weight 1")
'''


def test_recipe_plugin_files_are_loaded_relative_to_the_recipe(tmp_path):
    clear_cache()
    try:
        write(tmp_path / "plugins" / "toy.py", PLUGIN)
        path = write(tmp_path / "r.toml", BASE + '[plugins]\nfiles = ["plugins/toy.py"]\n[[regularizers]]\n'
                                                 'name = "toy-wavelet"\nparams = { strength = 2.0 }\n')
        resolved = load_recipe(path, allow_recipe_plugins=True)
        assert resolved.regularizers()[0].params.strength == 2.0
        assert resolved.to_dict()["plugins"] == {"files": ["plugins/toy.py"]}
        with pytest.raises(RecipeError) as info:  # the plugin's own cross-check is collected
            load_recipe(path, ["regularizers[0].weight=2.0"], allow_recipe_plugins=True)
        assert [p.render() for p in info.value.problems] == [
            "regularizers[0].weight: toy-wavelet is unstable above weight 1"]
        with pytest.raises(RecipeError) as info:  # without the file the component is unknown
            load_recipe(path, ["plugins.files=[]"], allow_recipe_plugins=True)
        assert info.value.problems[0].message.startswith("unknown latent regularizer 'toy-wavelet'")
    finally:
        clear_cache()
