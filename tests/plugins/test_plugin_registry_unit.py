"""Unit tests of plugin loading and the registry: a fresh manager per test, autoload off, plugins given as
``--plugin-file`` style files in tmp_path or registered directly as modules with a distribution record."""

from __future__ import annotations

import types

import attrs
import pytest

from specmatch import PLUGIN_API, PluginConflictError, RegularizerSpec, hookimpl
from specmatch.core.plugins import LoadedPlugins, PluginRecord, load_plugins, new_manager
from specmatch.core.registry import Registry, UnknownComponentError

BUILTIN_REGULARIZERS = ["dsm", "eqvae", "esm", "kl", "scale-equivariance", "vavae"]


def registry_of(*files, **kwargs) -> Registry:
    return Registry.build(load_plugins(plugin_files=files, autoload=False, **kwargs))


def record(plugins: LoadedPlugins, suffix: str) -> PluginRecord:
    matches = [r for r in plugins.records if r.name.endswith(suffix)]
    assert len(matches) == 1, [r.name for r in plugins.records]
    return matches[0]


def build_factory(params, ctx):  # a shared factory, so two specs built from it compare equal
    return None


def dist_plugins(*plugins: tuple[str, str, str, object]) -> LoadedPlugins:
    """Register plugin objects as if they came from distributions: (distribution, version, entry, object)."""
    pm = new_manager()
    records = []
    for dist, version, entry, obj in plugins:
        rec = PluginRecord(name=f"{dist}:{entry}", distribution=dist, version=version, entry_point=entry)
        pm.register(obj, name=rec.name)
        records.append(rec)
    return LoadedPlugins(manager=pm, records=records)


def module_yielding(*specs) -> types.ModuleType:
    module = types.ModuleType("fake_plugin")

    @hookimpl
    def specmatch_regularizers():
        return list(specs)

    module.specmatch_regularizers = specmatch_regularizers
    return module


# -- built-ins ----------------------------------------------------------------------------------------------

def test_builtins_register_through_the_same_hooks():
    registry = registry_of()
    assert registry.names("regularizer") == BUILTIN_REGULARIZERS
    kl = registry.get("regularizer", "kl")
    assert str(kl.provider) == "specmatch 0.1.0 (builtin)"
    assert kl.provider.plugin == "specmatch.regularizers.kl"
    assert all(r.status == "active" and r.builtin for r in registry.plugins.records)


def test_without_builtins_the_registry_is_empty():
    assert registry_of(builtins=False).specs == ()


# -- conflicts ------------------------------------------------------------------------------------------------

def test_conflict_between_two_distributions_names_both_and_the_remedy():
    plugins = dist_plugins(
        ("pkg-a", "1.0", "a", module_yielding(RegularizerSpec(name="wavelet", factory="a.mod:build"))),
        ("pkg-b", "2.0", "b", module_yielding(RegularizerSpec(name="wavelet", factory="b.mod:build"))),
    )
    with pytest.raises(PluginConflictError) as info:
        Registry.build(plugins)
    message = str(info.value)
    assert "latent regularizer 'wavelet' is provided by" in message
    assert "pkg-a 1.0 [pkg-a:a]" in message and "pkg-b 2.0 [pkg-b:b]" in message
    assert "SPECMATCH_DISABLE_PLUGINS=pkg-b" in message


def test_conflict_with_a_builtin_name_suggests_disabling_the_external_distribution(write_plugin):
    plugins = load_plugins(autoload=False)
    plugins.manager.register(module_yielding(RegularizerSpec(name="KL", factory="x:y")), name="pkg-kl:kl")
    plugins.records.append(PluginRecord(name="pkg-kl:kl", distribution="pkg-kl", version="0.3"))
    with pytest.raises(PluginConflictError) as info:
        Registry.build(plugins)
    message = str(info.value)
    assert "specmatch 0.1.0 (builtin)" in message and "pkg-kl 0.3" in message
    assert "SPECMATCH_DISABLE_PLUGINS=pkg-kl" in message


def test_a_name_that_equals_a_builtin_alias_conflicts(write_plugin):
    path = write_plugin("vf_plugin", """
        from specmatch import RegularizerSpec, hookimpl

        @hookimpl
        def specmatch_regularizers():
            yield RegularizerSpec(name="vf", factory="x:y")
    """)
    with pytest.raises(PluginConflictError) as info:
        registry_of(path)
    message = str(info.value)
    assert "latent regularizer 'vf' is provided by specmatch 0.1.0 (builtin)" in message
    assert "vf_plugin.py" in message


def test_conflict_between_two_plugin_files_says_which_file_to_drop(write_plugin):
    source = """
        from specmatch import DatasetSpec, hookimpl

        @hookimpl
        def specmatch_datasets():
            yield DatasetSpec(name="stripes", factory="{mod}:build")
    """
    first = write_plugin("first", source.format(mod="first"))
    second = write_plugin("second", source.format(mod="second"))
    with pytest.raises(PluginConflictError) as info:
        registry_of(first, second)
    message = str(info.value)
    assert "dataset 'stripes' is provided by local file first.py" in message
    assert "local file second.py" in message
    assert f"remove the plugin file {second}" in message


def test_identical_spec_from_one_distribution_counts_once_but_not_across_distributions():
    spec = RegularizerSpec(name="twice", factory=build_factory, aliases=("tw",))
    same_dist = dist_plugins(("pkg-a", "1.0", "one", module_yielding(spec)),
                             ("pkg-a", "1.0", "two", module_yielding(spec)))
    registry = Registry.build(same_dist)
    assert [s.name for s in registry.of_kind("regularizer")] == ["twice"]
    two_dists = dist_plugins(("pkg-a", "1.0", "one", module_yielding(spec)),
                             ("pkg-b", "1.0", "two", module_yielding(spec)))
    with pytest.raises(PluginConflictError, match="'tw' is provided by pkg-a 1.0 .* and pkg-b 1.0"):
        Registry.build(two_dists)


def test_different_specs_under_one_name_from_one_distribution_conflict():
    plugins = dist_plugins(
        ("pkg-a", "1.0", "one", module_yielding(RegularizerSpec(name="dup", factory=build_factory))),
        ("pkg-a", "1.0", "two", module_yielding(RegularizerSpec(name="dup", factory=build_factory, summary="x"))),
    )
    with pytest.raises(PluginConflictError, match=r"\[pkg-a:one\] and .*\[pkg-a:two\]"):
        Registry.build(plugins)


def test_the_same_plugin_file_given_twice_is_loaded_once(write_plugin):
    path = write_plugin("once", """
        from specmatch import DatasetSpec, hookimpl

        @hookimpl
        def specmatch_datasets():
            yield DatasetSpec(name="once-data", factory="once:build")
    """)
    registry = registry_of(path, str(path), path.parent / "." / path.name)
    file_records = [r for r in registry.plugins.records if r.name.startswith("file:")]
    assert [r.status for r in file_records] == ["active"]
    assert registry.find("dataset", "once-data") is not None


# -- aliases and lookups -------------------------------------------------------------------------------------

def test_aliases_and_name_normalisation(write_plugin):
    path = write_plugin("aliased", """
        from specmatch import RegularizerSpec, hookimpl

        @hookimpl
        def specmatch_regularizers():
            yield RegularizerSpec(name="Wavelet_Energy", factory="aliased:build", aliases=["Haar Energy"])
    """)
    registry = registry_of(path)
    spec = registry.get("regularizer", "haar-energy")
    assert spec.name == "wavelet-energy" and spec.aliases == ("haar-energy",)
    assert registry.get("regularizer", "WAVELET_ENERGY") is spec
    assert registry.get("regularizer", "VF").name == "vavae"  # a built-in alias
    assert registry.find("dataset", "haar-energy") is None  # aliases are per kind
    assert [s.name for s in registry.search("regularizer", "haar*")] == ["wavelet-energy"]


def test_unknown_name_suggests_the_closest_and_lists_installed():
    registry = registry_of()
    with pytest.raises(UnknownComponentError) as info:
        registry.get("regularizer", "esn")
    message = str(info.value)
    assert "unknown latent regularizer 'esn'; did you mean 'esm'?" in message
    assert f"installed: {', '.join(BUILTIN_REGULARIZERS)}" in message
    assert "specmatch components list --kind regularizer" in message
    far = registry.unknown_message("regularizer", "zzzzzz")
    assert "did you mean" not in far and "installed: dsm" in far
    assert "did you mean 'vf'?" in registry.unknown_message("regularizer", "vff")  # aliases are suggested
    assert "broken plugins" not in far


def test_unknown_name_mentions_broken_plugins(write_plugin):
    bad = write_plugin("bad_import", "import not_a_module_anywhere\n")
    message = registry_of(bad).unknown_message("dataset", "stripes")
    assert "note: broken plugins may have provided it: file:" in message
    assert "bad_import.py (import failed: ModuleNotFoundError: No module named 'not_a_module_anywhere')" in message


# -- broken plugins --------------------------------------------------------------------------------------------

def test_misspelled_hook_is_reported_with_a_suggestion(write_plugin):
    path = write_plugin("typo", """
        from specmatch import DatasetSpec, RegularizerSpec, hookimpl

        @hookimpl
        def specmatch_regularisers():
            yield RegularizerSpec(name="typo-reg", factory="typo:build")

        @hookimpl
        def specmatch_datasets():
            yield DatasetSpec(name="typo-data", factory="typo:build")
    """)
    registry = registry_of(path)
    rec = record(registry.plugins, "typo.py")
    assert rec.status == "broken"
    assert rec.reason == ("declares unknown hook 'specmatch_regularisers' "
                          "(did you mean 'specmatch_regularizers'?)")
    assert registry.find("dataset", "typo-data") is None  # a broken plugin contributes nothing
    assert registry.names("regularizer") == BUILTIN_REGULARIZERS


def test_a_raising_hook_breaks_only_its_plugin(write_plugin):
    raising = write_plugin("raising", """
        from specmatch import DatasetSpec, Problem, hookimpl

        @hookimpl
        def specmatch_datasets():
            yield DatasetSpec(name="raising-data", factory="raising:build")

        @hookimpl
        def specmatch_regularizers():
            raise RuntimeError("boom")

        @hookimpl
        def specmatch_validate_recipe(recipe):
            raise AssertionError("a broken plugin's hooks must not run")
    """)
    fine = write_plugin("fine", """
        from specmatch import DatasetSpec, hookimpl

        @hookimpl
        def specmatch_datasets():
            yield DatasetSpec(name="fine-data", factory="fine:build")

        @hookimpl
        def specmatch_validate_recipe(recipe):
            return []
    """)
    registry = registry_of(raising, fine)
    rec = record(registry.plugins, "raising.py")
    assert rec.status == "broken"
    assert rec.reason == "hook specmatch_regularizers failed: RuntimeError: boom"
    assert "RuntimeError: boom" in rec.details  # the traceback is kept for `plugins list`
    assert record(registry.plugins, "fine.py").status == "active"
    assert registry.find("dataset", "fine-data") is not None
    assert registry.find("dataset", "raising-data") is None  # its other hooks' specs are dropped too
    assert registry.plugins.manager.get_plugin(rec.name) is None  # ... and its other hooks never run
    validators = registry.plugins.manager.hook.specmatch_validate_recipe.get_hookimpls()
    assert rec.name not in {impl.plugin_name for impl in validators}
    assert record(registry.plugins, "fine.py").name in {impl.plugin_name for impl in validators}


def test_wrong_spec_type_breaks_the_plugin(write_plugin):
    path = write_plugin("wrong_type", """
        from specmatch import DatasetSpec, hookimpl

        @hookimpl
        def specmatch_regularizers():
            yield DatasetSpec(name="not-a-regularizer", factory="x:y")
    """)
    rec = record(registry_of(path).plugins, "wrong_type.py")
    assert rec.status == "broken"
    assert rec.reason.startswith("hook specmatch_regularizers failed: TypeError: specmatch_regularizers must "
                                 "return RegularizerSpec records, got DatasetSpec(name='not-a-regularizer'")


def test_a_hook_returning_one_spec_instead_of_an_iterable_is_broken(write_plugin):
    path = write_plugin("not_iterable", """
        from specmatch import DatasetSpec, hookimpl

        @hookimpl
        def specmatch_datasets():
            return DatasetSpec(name="single", factory="x:y")
    """)
    rec = record(registry_of(path).plugins, "not_iterable.py")
    assert rec.status == "broken" and "not iterable" in rec.reason


def test_a_spec_for_a_newer_plugin_api_is_refused(write_plugin):
    path = write_plugin("future", f"""
        from specmatch import RegularizerSpec, hookimpl

        @hookimpl
        def specmatch_regularizers():
            yield RegularizerSpec(name="from-the-future", factory="x:y", api={PLUGIN_API + 1})
    """)
    registry = registry_of(path)
    rec = record(registry.plugins, "future.py")
    assert rec.status == "broken"
    assert (f"regularizer 'from-the-future' needs plugin API {PLUGIN_API + 1}; this specmatch supports "
            f"{PLUGIN_API} (upgrade specmatch)") in rec.reason
    assert registry.find("regularizer", "from-the-future") is None


def test_invalid_names_and_needs_break_the_plugin(write_plugin):
    bad_name = write_plugin("bad_name", """
        from specmatch import RegularizerSpec, hookimpl

        @hookimpl
        def specmatch_regularizers():
            yield RegularizerSpec(name="my reg!", factory="x:y")
    """)
    bad_needs = write_plugin("bad_needs", """
        from specmatch import RegularizerSpec, hookimpl

        @hookimpl
        def specmatch_regularizers():
            yield RegularizerSpec(name="needy", factory="x:y", needs={"gradients"})
    """)
    plugins = registry_of(bad_name, bad_needs).plugins
    assert "must be lower-case kebab-case" in record(plugins, "bad_name.py").reason
    assert "unknown needs ['gradients']" in record(plugins, "bad_needs.py").reason


def test_a_hook_with_an_unknown_argument_is_broken(write_plugin):
    path = write_plugin("bad_signature", """
        from specmatch import hookimpl

        @hookimpl
        def specmatch_validate_recipe(recipe, registry):
            return []
    """)
    rec = record(registry_of(path).plugins, "bad_signature.py")
    assert rec.status == "broken"
    assert "PluginValidationError" in rec.reason and "registry" in rec.reason


def test_missing_or_failing_plugin_files_are_broken_not_fatal(tmp_path, write_plugin):
    failing = write_plugin("failing", "raise ValueError('bad configuration')\n")
    registry = registry_of(tmp_path / "absent.py", failing)
    absent = record(registry.plugins, "absent.py")
    assert absent.status == "broken" and absent.reason == f"plugin file {tmp_path / 'absent.py'} does not exist"
    failed = record(registry.plugins, "failing.py")
    assert failed.reason == "import failed: ValueError: bad configuration"
    assert registry.names("regularizer") == BUILTIN_REGULARIZERS


def test_provider_of_a_file_plugin(write_plugin):
    path = write_plugin("local_reg", """
        from specmatch import RegularizerSpec, hookimpl

        @hookimpl
        def specmatch_regularizers():
            yield RegularizerSpec(name="local-reg", factory="x:y")
    """)
    spec = registry_of(path).get("regularizer", "local-reg")
    assert str(spec.provider) == "local file local_reg.py -"
    assert spec.provider.plugin == f"file:{path.resolve()}" and spec.provider.location == str(path.resolve())
    assert attrs.evolve(spec, provider=None) == spec  # the provider is not part of a spec's identity
