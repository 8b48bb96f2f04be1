"""Kind defaults: a plugin declares the component used when a recipe omits its kind's table."""

from __future__ import annotations

import attrs
import pytest

from specmatch import PluginConflictError, RecipeError
from specmatch.core.plugins import load_plugins
from specmatch.core.recipe import load_recipe
from specmatch.core.registry import Registry
from specmatch.testing import MINIMAL_RECIPE, write_recipe


def registry_of(*files, **kwargs) -> Registry:
    return Registry.build(load_plugins(plugin_files=files, autoload=False, **kwargs))


def test_builtin_defaults_fill_omitted_tables(tmp_path):
    resolved = load_recipe(write_recipe(tmp_path, MINIMAL_RECIPE), registry=registry_of())
    assert (resolved.recipe.objective.name, resolved.recipe.sampler.name) == ("flow-matching", "euler")
    assert resolved.to_dict()["sampler"]["name"] == "euler"


def test_two_defaults_for_one_kind_conflict_naming_both(write_plugin):
    path = write_plugin("other_sampler", """
        from specmatch import SamplerSpec, hookimpl

        @hookimpl
        def specmatch_samplers():
            yield SamplerSpec(name="ddim", factory="x:y", default_for_kind=True)
    """)
    with pytest.raises(PluginConflictError) as info:
        registry_of(path)
    message = str(info.value)
    assert "'euler' from specmatch 0.1.0 (builtin)" in message and "'ddim' from local file" in message
    assert "default_for_kind" in message


def test_a_kind_without_defaults_refuses_a_declared_default(write_plugin):
    path = write_plugin("default_data", """
        from specmatch import DatasetSpec, hookimpl

        @hookimpl
        def specmatch_datasets():
            yield DatasetSpec(name="stripes", factory="x:y", default_for_kind=True)
    """)
    plugins = load_plugins(plugin_files=[path], autoload=False)
    registry = Registry.build(plugins)
    assert registry.find("dataset", "stripes") is None
    broken = [r for r in plugins.records if r.status == "broken"]
    assert len(broken) == 1 and "[data] has no default" in broken[0].reason


def test_no_declared_default_is_a_recipe_problem(tmp_path):
    full = registry_of()
    registry = attrs.evolve(full, specs=tuple(s for s in full.specs if s.kind != "objective"))
    with pytest.raises(RecipeError) as info:
        load_recipe(write_recipe(tmp_path, MINIMAL_RECIPE), registry=registry)
    assert "no diffusion objective named, and no installed plugin declares a default one (installed: none)" in \
        str(info.value)
