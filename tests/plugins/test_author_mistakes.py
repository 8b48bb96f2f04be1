"""Each plugin-author mistake that can be seen before anything trains is caught, and the message names the
plugin and the component (docs/plugins.md § Mistakes specmatch catches)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from specmatch.core.errors import PluginError
from specmatch.core.plugins import load_plugins
from specmatch.core.registry import Registry
from specmatch.testing import MINIMAL_RECIPE, invoke_cli, write_recipe

PARAMS = """
import attrs
from specmatch import param
"""


def plugin_records(*files):
    return {r.name: r for r in Registry.build(load_plugins(plugin_files=files, autoload=False)).plugins.records}


def status(path):
    """(status, reason) of a plugin file as `plugins list --json` reports it."""
    result = invoke_cli("--plugin-file", str(path), "plugins", "list", "--json")
    row = next(r for r in json.loads(result.stdout) if r["name"] == f"file:{path.resolve()}")
    return row["status"], row["reason"]


# -- the hook is there, the marker is not ---------------------------------------------------------------

def test_hook_without_hookimpl_is_reported_as_registering_nothing(write_plugin):
    path = write_plugin("no_marker", """
        from specmatch import SamplerSpec

        def specmatch_samplers():           # @hookimpl forgotten: pluggy would ignore it silently
            yield SamplerSpec(name="forgot-marker", factory=lambda params, ctx: None)
    """)
    state, reason = status(path)
    assert state == "broken"
    assert reason.startswith("registers nothing: specmatch_samplers (which would register sampler "
                             "'forgot-marker') is defined without @hookimpl, so specmatch never calls it "
                             "(likely cause: the decorator was forgotten")
    # the recipe that names the component is pointed at the plugin
    recipe = write_recipe(path.parent, MINIMAL_RECIPE + '[sampler]\nname = "forgot-marker"\n')
    result = invoke_cli("--plugin-file", str(path), "validate", str(recipe))
    assert result.exit_code == 2
    assert "unknown sampler 'forgot-marker'" in result.output and "no_marker.py (registers nothing" in result.output


def test_one_unmarked_hook_beside_marked_ones_breaks_the_plugin(write_plugin):
    path = write_plugin("half_marked", """
        from specmatch import DatasetSpec, SamplerSpec, hookimpl

        @hookimpl
        def specmatch_datasets():
            yield DatasetSpec(name="fine-data", factory=lambda params, ctx: None)

        def specmatch_samplers():
            yield SamplerSpec(name="lost-sampler", factory=lambda params, ctx: None)
    """)
    state, reason = status(path)
    assert state == "broken"
    assert reason.startswith("specmatch_samplers (which would register sampler 'lost-sampler') is defined "
                             "without @hookimpl, so specmatch never calls it (likely cause: the decorator was "
                             "forgotten")


def test_a_plugin_without_any_hook_registers_nothing(write_plugin):
    path = write_plugin("empty_plugin", "import attrs\n")
    state, reason = status(path)
    assert (state, reason) == ("broken", "registers nothing: it has no @hookimpl function (likely cause: the entry "
                                         "point or plugin file names a module other than the one with the hooks)")


# -- params defaults that fail their own declaration ----------------------------------------------------

WRONG_DEFAULTS = PARAMS + """
from specmatch import SamplerSpec, hookimpl

@attrs.frozen(kw_only=True)
class MidpointParams:
    steps: int = param(16.0, doc="ODE steps", ge=1)            # an int field with a float default
    shift: float = param("1.0", doc="time shift")                # a str for a float

@hookimpl
def specmatch_samplers():
    yield SamplerSpec(name="bad-default", factory=lambda params, ctx: None, params=MidpointParams)
"""

OUT_OF_RANGE = PARAMS + """
from specmatch import SamplerSpec, hookimpl

@attrs.frozen(kw_only=True)
class Params:
    steps: int = param(0, doc="ODE steps", ge=1)
    mode: str = param("fast", doc="mode", choices=("euler", "midpoint"))
    width: int = param(doc="required: the recipe gives it", ge=1)

@hookimpl
def specmatch_samplers():
    yield SamplerSpec(name="out-of-range", factory=lambda params, ctx: None, params=Params)
"""


def test_params_default_of_the_wrong_type_breaks_the_plugin_at_registration(write_plugin):
    path = write_plugin("wrong_default", WRONG_DEFAULTS)
    state, reason = status(path)
    assert state == "broken"
    assert reason == (f"sampler 'bad-default' (from local file wrong_default.py - [file:{path.resolve()}]): its "
                      "params class MidpointParams has defaults that fail their own declaration (steps: expected "
                      "an integer, got 16.0 (float); shift: expected a number, got '1.0' (str)); fix the default "
                      "or the declaration in the plugin")
    listed = invoke_cli("--plugin-file", str(path), "components", "list", "--json")
    assert "bad-default" not in [row["name"] for row in json.loads(listed.stdout)]  # and no snippet to paste


def test_params_default_outside_its_own_range_breaks_the_plugin_not_the_recipe(write_plugin):
    path = write_plugin("out_of_range", OUT_OF_RANGE)
    state, reason = status(path)
    assert state == "broken"
    assert "sampler 'out-of-range'" in reason and "out_of_range.py" in reason
    assert ("(steps: expected a value >= 1; got 0; mode: expected one of 'euler', 'midpoint'; got 'fast')"
            in reason)
    assert "width" not in reason  # a required key has no default to check


def test_a_lazy_params_class_is_checked_when_a_recipe_uses_it(write_plugin, tmp_path, monkeypatch):
    (tmp_path / "lazy_params_mod.py").write_text(textwrap.dedent(OUT_OF_RANGE), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write_plugin("lazy_params", """
        from specmatch import SamplerSpec, hookimpl

        @hookimpl
        def specmatch_samplers():
            yield SamplerSpec(name="lazy-range", factory=lambda params, ctx: None, params="lazy_params_mod:Params")
    """)
    recipe = write_recipe(tmp_path, MINIMAL_RECIPE + '[sampler]\nname = "lazy-range"\nparams = { width = 4 }\n')
    result = invoke_cli("--plugin-file", str(path), "validate", str(recipe))
    assert result.exit_code == 2
    assert "sampler.params: sampler 'lazy-range' (from local file lazy_params.py" in result.output
    assert "steps: expected a value >= 1; got 0" in result.output
    info = invoke_cli("--plugin-file", str(path), "components", "info", "sampler", "lazy-range")
    assert info.exit_code == 1 and "TOML:" not in info.output  # no snippet that validate would reject
    assert "Error: sampler 'lazy-range' (from local file lazy_params.py" in info.output


# -- transforms_pair and transform_pair disagree ---------------------------------------------------------

FLAG_MISMATCH = """
from specmatch import RegularizerSpec, hookimpl

class NoiseAugment:                       # has the method, the spec forgot the flag
    def __init__(self, params, ctx): pass
    def transform_pair(self, z, target, ctx): return z, target

class FlagOnly:                           # has the flag, not the method
    def __init__(self, params, ctx): pass
    def loss(self, inputs): return inputs.z.mean()

@hookimpl
def specmatch_regularizers():
    yield RegularizerSpec(name={name!r}, factory={cls}, transforms_pair={flag})
"""


@pytest.mark.parametrize("cls,flag,expected", [
    ("NoiseAugment", False, "has a transform_pair method, but its RegularizerSpec does not say "
                            "transforms_pair=True, so the method would never be called"),
    ("FlagOnly", True, "its RegularizerSpec says transforms_pair=True, but the built regularizer has no "
                       "transform_pair(z, target, ctx) method"),
])
def test_pair_transform_flag_and_method_must_agree_at_registration(write_plugin, cls, flag, expected):
    path = write_plugin("flag", FLAG_MISMATCH.format(name="aug", cls=cls, flag=flag))
    state, reason = status(path)
    assert state == "broken"
    assert reason.startswith(f"regularizer 'aug' (from local file flag.py - [file:{path.resolve()}]): {expected}")


@pytest.mark.parametrize("cls,flag,expected", [
    ("NoiseAugment", False, "does not say transforms_pair=True"),
    ("FlagOnly", True, "has no transform_pair(z, target, ctx) method"),
])
def test_pair_transform_flag_of_a_function_factory_is_checked_when_built(write_plugin, cls, flag, expected):
    """A factory function (or a lazy reference) hides the class until it runs: the engine checks the object."""
    from specmatch.core.recipe import load_recipe
    from specmatch.core.specs import BuildContext
    from specmatch.core.session import get_registry
    from specmatch.engine.build import build

    source = FLAG_MISMATCH.format(name="aug", cls=f"lambda params, ctx: {cls}(params, ctx)", flag=flag)
    path = write_plugin("flag_fn", source)
    state, _ = status(path)
    assert state == "active"  # nothing to see at registration
    recipe = write_recipe(path.parent, MINIMAL_RECIPE + '[[regularizers]]\nname = "aug"\n')
    resolved = load_recipe(recipe, registry_for=lambda files: get_registry(plugin_files=[path]))
    with pytest.raises(PluginError) as info:
        build(resolved.component("regularizers[0]"), BuildContext())
    assert str(info.value).startswith("regularizer 'aug' (from local file flag_fn.py")
    assert expected in str(info.value)


# -- specmatch_validate_recipe raises --------------------------------------------------------------------

RAISING_VALIDATE = """
from specmatch import DatasetSpec, hookimpl

@hookimpl
def specmatch_datasets():
    yield DatasetSpec(name="raising-check-data", factory=lambda params, ctx: None)

@hookimpl
def specmatch_validate_recipe(recipe):
    return [] if recipe.component("denoiser").spec.name else []   # assumes a [denoiser]
"""

OTHER_CHECK = """
from specmatch import Problem, SamplerSpec, hookimpl

@hookimpl
def specmatch_samplers():
    yield SamplerSpec(name="checked-sampler", factory=lambda params, ctx: None)

@hookimpl
def specmatch_validate_recipe(recipe):
    return [Problem("run.name", "the other plugin still checks")] if recipe.recipe.run.name == "checked" else []
"""


def test_a_raising_validate_hook_breaks_only_its_plugin(write_plugin, tmp_path):
    raising = write_plugin("raising_validate", RAISING_VALIDATE)
    other = write_plugin("other_check", OTHER_CHECK)
    args = ("--plugin-file", str(raising), "--plugin-file", str(other))
    plain = write_recipe(tmp_path, MINIMAL_RECIPE)
    result = invoke_cli(*args, "validate", str(plain))
    assert result.exit_code == 0, result.output
    assert (f"plugin file:{raising.resolve()} (local file raising_validate.py -) is broken: hook "
            f"specmatch_validate_recipe failed: AttributeError: 'NoneType' object has no attribute 'spec'; its "
            f"checks were skipped") in result.output
    # the other plugin's check still runs
    checked = write_recipe(tmp_path, '[run]\nname = "checked"\n' + MINIMAL_RECIPE, "checked.toml")
    result = invoke_cli(*args, "validate", str(checked))
    assert result.exit_code == 2 and "run.name: the other plugin still checks" in result.output
    # a recipe that uses the broken plugin's own component cannot be vouched for
    uses = write_recipe(tmp_path, MINIMAL_RECIPE.replace('"demo-photos"\nparams = { resolution = 16 }',
                                                         '"raising-check-data"'), "uses.toml")
    result = invoke_cli(*args, "validate", str(uses))
    assert result.exit_code == 2
    assert ("data.name: dataset 'raising-check-data' comes from plugin file:" in result.output
            and "which is broken: hook specmatch_validate_recipe failed: AttributeError" in result.output)


# -- a typo in a lazy "module:attr" factory --------------------------------------------------------------

LAZY_TYPO = """
from specmatch import SamplerSpec, hookimpl

@hookimpl
def specmatch_samplers():
    yield SamplerSpec(name="lazy-typo", factory={factory!r})
"""


def test_validate_finds_a_missing_lazy_module_without_importing_torch(write_plugin, tmp_path):
    path = write_plugin("lazy_typo", LAZY_TYPO.format(factory="specmatch.diffusion.samplerz:build"))
    recipe = write_recipe(tmp_path, MINIMAL_RECIPE + '[sampler]\nname = "lazy-typo"\n')
    script = textwrap.dedent(f"""
        import sys
        from specmatch.core.errors import RecipeError
        from specmatch.core.recipe import load_recipe
        from specmatch.core.session import get_registry
        try:
            load_recipe({str(recipe)!r}, registry_for=lambda files: get_registry(plugin_files=[{str(path)!r}]),
                        check_files=False)
        except RecipeError as exc:
            print(exc)
        print("torch imported:", "torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "SPECMATCH_DISABLE_PLUGIN_AUTOLOAD": "1"}).stdout
    assert (f"sampler.name: sampler 'lazy-typo' (from local file lazy_typo.py - [file:{path.resolve()}]): its "
            f"factory 'specmatch.diffusion.samplerz:build' names the module 'specmatch.diffusion.samplerz', which "
            f"cannot be found") in out
    assert "torch imported: False" in out  # specmatch.diffusion's __init__ was not imported to look


def test_a_missing_lazy_attribute_fails_the_run_before_the_first_stage(write_plugin, tmp_path):
    path = write_plugin("lazy_attr", LAZY_TYPO.format(factory="specmatch.diffusion.samplers:build_midpont"))
    recipe = write_recipe(tmp_path, MINIMAL_RECIPE + '[sampler]\nname = "lazy-typo"\n')
    assert invoke_cli("--plugin-file", str(path), "validate", str(recipe)).exit_code == 0  # the module exists
    out = tmp_path / "run"
    result = invoke_cli("--plugin-file", str(path), "run", str(recipe), "--output-dir", str(out))
    assert result.exit_code == 1
    assert ("sampler: sampler 'lazy-typo' factory (from local file lazy_attr.py -): module "
            "'specmatch.diffusion.samplers' has no attribute 'build_midpont'") in result.output
    assert not (out / "autoencoder").exists() or not any((out / "autoencoder").iterdir())  # nothing trained
