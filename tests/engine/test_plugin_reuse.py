"""Reuse never serves results of changed plugin code: stage keys hash each component's spec version, its
plugin's version and, for local files and editable installs, the plugin's source (docs/plugins.md § Reuse)."""

from __future__ import annotations

import textwrap

import attrs
import pytest

from specmatch.core.fingerprint import fingerprint, source_files
from specmatch.core.plan import make_plan
from specmatch.core.recipe import load_recipe
from specmatch.core.session import clear_cache, get_registry
from specmatch.core.specs import Provider, RegularizerSpec
from specmatch.testing import MINIMAL_RECIPE, invoke_cli, write_recipe

PLUGIN = """
import torch
from specmatch import RegularizerSpec, SamplerSpec, hookimpl

SCALE = {scale}


class LatentEnergy(torch.nn.Module):
    def loss(self, inputs):
        return SCALE * inputs.z.pow(2).mean()


@hookimpl
def specmatch_regularizers():
    yield RegularizerSpec(name="latent-energy", factory=lambda params, ctx: LatentEnergy(), version={version!r})


@hookimpl
def specmatch_samplers():
    yield SamplerSpec(name="plugin-sampler", factory=lambda params, ctx: None)
"""

RECIPE = MINIMAL_RECIPE + '[[regularizers]]\nname = "latent-energy"\n'


def keys(plugin, recipe):
    clear_cache()  # a fresh process: plugins are loaded again from their files
    resolved = load_recipe(recipe, registry_for=lambda files: get_registry(plugin_files=[plugin]))
    return {s.name: s.key for s in make_plan(resolved, recipe.parent / "run").stages}


def write(path, scale=0.1, version=""):
    path.write_text(textwrap.dedent(PLUGIN.format(scale=scale, version=version)), encoding="utf-8")


def test_editing_a_local_plugin_file_changes_the_keys_of_the_stages_that_use_it(tmp_path):
    plugin, recipe = tmp_path / "energy.py", write_recipe(tmp_path, RECIPE)
    write(plugin)
    before = keys(plugin, recipe)
    assert keys(plugin, recipe) == before  # unchanged: every stage is reused
    write(plugin, scale=0.2)
    after = keys(plugin, recipe)
    assert all(after[stage] != before[stage] for stage in before)  # the autoencoder and all after it


def test_a_component_version_changes_the_key_and_an_unused_plugin_leaves_it_alone(tmp_path):
    plugin, recipe = tmp_path / "energy.py", write_recipe(tmp_path, RECIPE)
    write(plugin)
    before = keys(plugin, recipe)
    write(plugin, version="2")
    assert keys(plugin, recipe)["autoencoder"] != before["autoencoder"]
    plain = write_recipe(tmp_path, MINIMAL_RECIPE, "plain.toml")  # uses no component of the plugin
    first = keys(plugin, plain)
    write(plugin, scale=0.3)
    assert keys(plugin, plain) == first


def test_a_distribution_version_is_hashed_and_builtins_hash_only_their_spec():
    spec = RegularizerSpec(name="wavelet-energy", factory="specmatch_wavelet.regularizer:build")
    released = attrs.evolve(spec, provider=Provider(distribution="specmatch-wavelet", version="0.1.0",
                                                    plugin="specmatch-wavelet:wavelet"))
    upgraded = attrs.evolve(released, provider=attrs.evolve(released.provider, version="0.2.0"))
    assert fingerprint(released) != fingerprint(upgraded)
    assert source_files(released) == []  # a regular install: its version stands for its code
    builtin = attrs.evolve(spec, provider=Provider(distribution="specmatch", version="9.9", plugin="x",
                                                   builtin=True))
    assert fingerprint(builtin) == {"kind": "regularizer", "name": "wavelet-energy", "version": ""}


def test_an_editable_install_hashes_every_module_of_its_package(tmp_path, monkeypatch):
    package = tmp_path / "src" / "my_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text("# hooks\n")
    (package / "helpers.py").write_text("WIDTH = 8\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    spec = attrs.evolve(RegularizerSpec(name="my-term", factory="my_plugin.helpers:build"),
                        provider=Provider(distribution="my-plugin", version="0.1.0", plugin="my-plugin:main",
                                          location=str(package / "plugin.py"), editable=True))
    assert [p.name for p in source_files(spec)] == ["__init__.py", "helpers.py", "plugin.py"]
    before = fingerprint(spec)
    (package / "helpers.py").write_text("WIDTH = 16\n")
    assert fingerprint(spec)["source_sha256"] != before["source_sha256"]


TINY = RECIPE + """
[train.autoencoder]
steps = 1
batch_size = 2

[latent_stats]
images = 4
flips = false

[evaluation]
reconstruction_images = 0
num_samples = 0
frechet = false
spectrum_images = 0
"""


@pytest.mark.slow
def test_a_rerun_after_editing_the_plugin_file_retrains_and_an_unchanged_one_reuses(tmp_path):
    plugin, recipe = tmp_path / "energy.py", write_recipe(tmp_path, TINY)
    write(plugin)
    args = ("--plugin-file", str(plugin), "run", str(recipe), "--output-dir", str(tmp_path / "run"))
    assert invoke_cli(*args).exit_code == 0
    again = invoke_cli(*args)
    assert again.exit_code == 0 and "[autoencoder] complete in" in again.output and "reused" in again.output
    write(plugin, scale=0.5)
    edited = invoke_cli(*args)
    assert edited.exit_code == 0 and "[autoencoder] complete in" not in edited.output


WEIGHTS_PLUGIN = """
import attrs
import torch
from specmatch import Facts, FileNeed, RegularizerSpec, hookimpl, param


@attrs.frozen(kw_only=True)
class Params:
    weights: str = param("", doc="a file the term reads", path=True)


class Term(torch.nn.Module):
    def loss(self, inputs):
        return inputs.z.pow(2).mean()


@hookimpl
def specmatch_regularizers():
    yield RegularizerSpec(name="file-term", factory=lambda params, ctx: Term(), params=Params,
                          facts=lambda params: Facts(files=[FileNeed(param="weights", path=params.weights,
                                                                     what="term weights")]))
"""


def test_other_bytes_in_a_weights_file_a_component_reads_change_the_key(tmp_path):
    plugin = tmp_path / "file_term.py"
    plugin.write_text(WEIGHTS_PLUGIN, encoding="utf-8")
    (tmp_path / "w.bin").write_bytes(b"first weights")
    recipe = write_recipe(tmp_path, MINIMAL_RECIPE + '[[regularizers]]\nname = "file-term"\n'
                                                     'params = { weights = "w.bin" }\n')
    before = keys(plugin, recipe)
    assert keys(plugin, recipe) == before
    (tmp_path / "w.bin").write_bytes(b"other weights")  # same name, other bytes
    after = keys(plugin, recipe)
    assert after["autoencoder"] != before["autoencoder"]
    (tmp_path / "w.bin").write_bytes(b"first weights")
    assert keys(plugin, recipe) == before
