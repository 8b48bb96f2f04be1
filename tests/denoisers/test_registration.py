"""The denoiser plugin: validate checks the latent geometry without torch,
and the factories build from ``upstream`` the way the engine calls them."""

from __future__ import annotations

from pathlib import Path

import pytest

from specmatch.core.errors import ParamError, RecipeError
from specmatch.core.plugins import BUILTIN_PLUGINS
from specmatch.core.recipe import load_recipe
from specmatch.core.specs import BuildContext
from specmatch.core.structure import structure
from specmatch.plugins import denoisers as plugin
from specmatch.testing import MINIMAL_RECIPE, invoke_cli

# MINIMAL_RECIPE: 16 px images, the micro f2d4 autoencoder -> latent (4, 8, 8)


def test_registered_as_a_builtin_plugin():
    assert "specmatch.plugins.denoisers" in BUILTIN_PLUGINS


def problems(tmp_path: Path, denoiser: str, *overrides: str) -> list[str]:
    path = tmp_path / "r.toml"
    path.write_text(MINIMAL_RECIPE + denoiser)
    try:
        load_recipe(path, overrides)
    except RecipeError as exc:
        return [p.render() for p in exc.problems]
    return []


@pytest.mark.parametrize("name", ["sit", "uvit", "lightningdit"])
def test_validate_rejects_a_patch_size_that_does_not_divide_the_latent(tmp_path, name):
    table = f'[denoiser]\nname = "{name}"\n'
    assert problems(tmp_path, table) == []
    assert problems(tmp_path, table, "denoiser.params.patch_size=4") == []  # 8 / 4
    (line,) = problems(tmp_path, table, "denoiser.params.patch_size=3")
    assert line.startswith("denoiser.params.patch_size:") and "latent side 8" in line
    result = invoke_cli("validate", str(tmp_path / "r.toml"), "-o", "denoiser.params.patch_size=3")
    assert result.exit_code == 2 and "denoiser.params.patch_size" in result.output


def test_validate_rejects_a_unet_deeper_than_the_latent(tmp_path):
    table = '[denoiser]\nname = "adm-unet"\n'
    assert problems(tmp_path, table, "denoiser.params.channel_mult=[1, 2, 2, 2]") == []  # 8 / 2**3 = 1
    (line,) = problems(tmp_path, table, "denoiser.params.channel_mult=[1, 2, 2, 2, 2]")
    assert line.startswith("denoiser.params.channel_mult:") and "multiples of 16" in line


@pytest.mark.parametrize("name, override, key", [
    ("sit", "denoiser.params={ hidden_size = 66, num_heads = 3 }", "denoiser.params.hidden_size"),
    ("uvit", "denoiser.params.depth=3", "denoiser.params.depth"),
    ("lightningdit", "denoiser.params={ hidden_size = 72, num_heads = 12 }", "denoiser.params.hidden_size"),
    ("adm-unet", "denoiser.params.norm_groups=5", "denoiser.params.norm_groups"),
    ("adm-unet", "denoiser.params.num_head_channels=48", "denoiser.params.num_head_channels"),
    ("adm-unet", "denoiser.params.attention_ds=[3]", "denoiser.params.attention_ds"),
    ("adm-unet", "denoiser.params.attention_ds=[4]", "denoiser.params.attention_ds"),  # 2 levels: 1, 2
])
def test_validate_rejects_sizes_the_model_would_refuse(tmp_path, name, override, key):
    found = problems(tmp_path, f'[denoiser]\nname = "{name}"\n', override)
    assert any(p.startswith(key + ":") for p in found), found


def test_validate_checks_the_tap_index_against_the_facts(tmp_path):
    """U-ViT with depth 2 has 3 blocks, so 3 taps: a REPA tap of 3 passes, 4 does not."""
    table = ('[denoiser]\nname = "uvit"\n[alignment]\nname = "stlpips-alex"\n'
             '[[denoiser_regularizers]]\nname = "repa"\nparams = { depth = 3 }\n')
    assert problems(tmp_path, table) == []
    found = problems(tmp_path, table, "denoiser_regularizers[0].params.depth=4")
    assert any(p.startswith("denoiser_regularizers[0].params.depth:") for p in found), found


def test_square_latent_needed_by_the_transformers_not_by_the_unet():
    for name, params_class, facts in [("sit", plugin.SiTParams, plugin.sit_facts),
                                      ("uvit", plugin.UViTParams, plugin.uvit_facts),
                                      ("lightningdit", plugin.LightningDiTParams, plugin.lightningdit_facts)]:
        with pytest.raises(ParamError, match="square"):
            facts(params_class()).check_latent((4, 8, 16))
    plugin.adm_unet_facts(plugin.ADMUNetParams()).check_latent((4, 8, 16))  # no error


def test_facts_depth_equals_the_built_models_taps():
    import torch

    specs = {s.name: s for s in plugin.specmatch_denoisers()}
    cases = {"sit": {"depth": 3}, "uvit": {"depth": 4}, "lightningdit": {"depth": 3},
             "adm-unet": {"channel_mult": [1, 2, 2]}}
    for name, table in cases.items():
        spec = specs[name]
        params, found = structure(table, spec.params_class(), "denoiser.params")
        assert not found
        ctx = BuildContext(upstream={"latent_shape": (4, 8, 8), "num_classes": 2})
        torch.manual_seed(0)
        model = spec.factory_callable()(params, ctx)
        assert spec.alignable and spec.facts_for(params).depth == model.depth == len(model.tap_widths), name
        assert model.null_class == 2


def test_factory_refuses_a_bad_latent_with_a_param_error():
    specs = {s.name: s for s in plugin.specmatch_denoisers()}
    params, _ = structure({"patch_size": 3}, plugin.SiTParams, "denoiser.params")
    with pytest.raises(ParamError, match="patch_size"):
        specs["sit"].factory_callable()(params, BuildContext(upstream={"latent_shape": (4, 8, 8)}))
