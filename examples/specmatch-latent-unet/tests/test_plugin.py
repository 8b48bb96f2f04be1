"""Tests of specmatch-latent-unet: the denoiser contract, the metric and diagnostic against hand computations,
the light entry module, and the plugin as specmatch sees it through its entry point (validate and a run).

specmatch finds plugins through installed entry points. When the package is installed (``pip install -e .``
or ``pip install --target``) the tests use that; otherwise the ``entry_point`` fixture writes the metadata pip
would write (``METADATA`` and ``entry_points.txt``, from this package's ``pyproject.toml``) into a temporary
folder on ``sys.path``, so the same discovery path runs without an install.
"""

import importlib.metadata as md
import json
import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from specmatch_latent_unet import plugin
from specmatch_latent_unet.evaluation import ChannelVariance, PixelMSE
from specmatch_latent_unet.unet import LatentUNet

PACKAGE = Path(__file__).resolve().parents[1]
RECIPE = PACKAGE / "recipes" / "latent_unet_demo.toml"
DIST = "specmatch-latent-unet"


def _installed() -> bool:
    return any(ep.value == "specmatch_latent_unet.plugin" for ep in md.entry_points(group="specmatch"))


@pytest.fixture
def entry_point(tmp_path, monkeypatch):
    """This package's entry point visible to ``importlib.metadata``, and specmatch's plugin cache cleared."""
    from specmatch.core.session import clear_cache

    if not _installed():
        project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
        site = tmp_path / "site"
        info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
        info.mkdir(parents=True)
        requires = "".join(f"Requires-Dist: {r}\n" for r in project["dependencies"])
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\n"
                                       f"Version: {project['version']}\n{requires}")
        entries = project["entry-points"]["specmatch"]
        (info / "entry_points.txt").write_text("[specmatch]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))
        monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("SPECMATCH_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    clear_cache()   # plugins are discovered once per process
    yield
    clear_cache()


def cli(*args: str):
    from click.testing import CliRunner

    from specmatch.cli import main

    result = CliRunner().invoke(main, list(args), env={"SPECMATCH_PLUGINS": DIST})
    assert "Traceback" not in result.output, result.output
    return result


def _has_sampling_context() -> bool:
    try:
        from specmatch.engine.sampling import SamplingContext  # noqa: F401
    except ImportError:
        return False
    return True


def build(num_classes=0, latent=(4, 8, 8), **overrides):
    params = plugin.LatentUNetParams(**{"channels": 8, "norm_groups": 4, **overrides})
    ctx = SimpleNamespace(upstream={"latent_shape": latent, "num_classes": num_classes})
    return plugin.build_latent_unet(params, ctx)


def randomize(model: torch.nn.Module) -> torch.nn.Module:
    """A fresh U-Net outputs exactly zero (zero last conv); give every weight a value so outputs differ."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=generator))
    return model.eval()


# -- the denoiser contract --------------------------------------------------------------------------------

def test_fresh_network_predicts_zero_with_the_input_shape_and_dtype():
    model = build(latent=(4, 8, 6))   # any channel count, non-square latents
    x = torch.randn(3, 4, 8, 6)
    out = model(x, torch.rand(3))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out, torch.zeros_like(x))


def test_taps_are_feature_maps_of_the_declared_widths():
    model = randomize(build(latent=(4, 8, 6), channels=8, mult=3))
    x, t = torch.randn(2, 4, 8, 6), torch.rand(2)
    assert model.tap_widths == (8, 24, 8)
    expected_grid = [(8, 6), (4, 3), (8, 6)]
    plain = model(x, t)
    for k, (width, grid) in enumerate(zip(model.tap_widths, expected_grid), start=1):
        out, hidden = model(x, t, return_hidden_at=k)
        assert hidden.shape == (2, width, *grid)
        assert torch.equal(out, plain)   # asking for a tap does not change the prediction
    with pytest.raises(ValueError, match="return_hidden_at must be in 1..3"):
        model(x, t, return_hidden_at=4)
    # validate's depth fact is the number of taps the built network has
    assert plugin.latent_unet_facts(plugin.LatentUNetParams()).depth == len(build().tap_widths)


def test_null_class_is_the_last_row_and_y_none_means_it():
    model = randomize(build(num_classes=5))
    assert model.null_class == 5 and model.class_embed.num_embeddings == 6
    x, t = torch.randn(4, 4, 8, 8), torch.full((4,), 0.5)
    null = model(x, t, torch.full((4,), 5))
    assert torch.equal(model(x, t), null)
    assert not torch.allclose(model(x, t, torch.tensor([0, 1, 2, 3])), null)   # labels condition the output


def test_unconditional_network_refuses_labels_and_has_no_null_class():
    model = build(num_classes=0)
    assert model.null_class is None
    with pytest.raises(ValueError, match="unconditional"):
        model(torch.randn(2, 4, 8, 8), torch.rand(2), torch.tensor([0, 1]))


def test_time_enters_the_output_and_a_scalar_t_equals_a_batch_of_it():
    model = randomize(build())
    x = torch.randn(2, 4, 8, 8)
    assert torch.allclose(model(x, 0.25), model(x, torch.full((2,), 0.25)))
    assert not torch.allclose(model(x, torch.zeros(2)), model(x, torch.ones(2)))


def test_no_randomness_in_eval_mode_and_gradients_reach_the_input_layer():
    model = randomize(build(dropout=0.5))
    x, t = torch.randn(2, 4, 8, 8), torch.rand(2)
    assert torch.equal(model(x, t), model(x, t))   # dropout off in eval mode
    model.train()
    model(x, t).pow(2).mean().backward()
    assert model.conv_in.weight.grad.abs().sum() > 0


def test_facts_refuse_an_odd_latent_and_groups_that_do_not_divide():
    from specmatch import ParamError

    facts = plugin.latent_unet_facts(plugin.LatentUNetParams())
    facts.check_latent((4, 8, 6))
    with pytest.raises(ParamError, match="both latent sides must be even; got 9x9"):
        facts.check_latent((4, 9, 9))
    with pytest.raises(ParamError, match="norm_groups"):
        plugin.latent_unet_facts(plugin.LatentUNetParams(channels=12, norm_groups=8))


# -- metric and diagnostic -----------------------------------------------------------------------------------

def test_pixel_mse_by_hand():
    real = torch.zeros(2, 3, 2, 2)
    fake = torch.zeros(2, 3, 2, 2)
    fake[0, 0, 0, 0] = 1.0          # one of 12 values off by 1: 1/12
    fake[1] = 0.5                   # every value off by 0.5: 0.25
    assert PixelMSE().per_image(real, fake).tolist() == pytest.approx([1 / 12, 0.25])


def test_channel_variance_by_hand_and_in_chunks():
    # channel 0 alternates +-1 (mean 0, variance 1), channel 1 is 3 +- 2 (mean 3, variance 4)
    sign = torch.tensor([1.0, -1.0]).repeat(8).view(1, 4, 4).repeat(5, 1, 1)
    latents = torch.stack([sign, 3 + 2 * sign], dim=1)              # (5, 2, 4, 4)
    autoencoder = SimpleNamespace(encode=lambda images: SimpleNamespace(mean=latents[images[:, 0, 0, 0].long()]))
    images = torch.arange(5.0).view(5, 1, 1, 1).expand(5, 3, 8, 8)  # image i encodes to latents[i]
    diagnostic = ChannelVariance(batch_size=2)
    report = diagnostic.run(autoencoder, images)
    assert report["n_images"] == 5 and report["latent_shape"] == [2, 4, 4]
    assert report["mean"] == pytest.approx([0.0, 3.0]) and report["variance"] == pytest.approx([1.0, 4.0])
    assert diagnostic.scalars(report) == pytest.approx({"channel_var_min": 1.0, "channel_var_max": 4.0,
                                                        "channel_var_ratio": 4.0})
    json.dumps(report)   # the engine writes it to channel_variance.json


# -- the plugin module ----------------------------------------------------------------------------------------

def test_entry_module_does_not_import_torch():
    code = "import sys, specmatch_latent_unet.plugin; assert 'torch' not in sys.modules, 'torch imported'"
    package_parent = str(Path(plugin.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_parent, os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_every_parameter_is_documented():
    for cls in (plugin.LatentUNetParams, plugin.MidpointParams, plugin.ChannelVarianceParams):
        for field in cls.__attrs_attrs__:
            assert field.metadata.get("doc"), f"{cls.__name__}.{field.name} has no doc"


# -- through specmatch -----------------------------------------------------------------------------------------

def test_components_are_listed_with_this_distribution(entry_point):
    result = cli("components", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {(r["kind"], r["name"]): r for r in json.loads(result.stdout)}
    for key in [("denoiser", "latent-unet"), ("sampler", "latent-midpoint"), ("metric", "pixel-mse"),
                ("diagnostic", "latent-channel-variance")]:
        assert rows[key]["provider"] == f"{DIST} 0.1.0", key
    info = json.loads(cli("components", "info", "denoiser", "latent-unet", "--json").stdout)
    assert info["plugin"] == f"{DIST}:latent-unet" and info["facts"] == {"alignable": True}
    info = json.loads(cli("components", "info", "metric", "pixel-mse", "--json").stdout)
    assert info["facts"] == {"per_image": True, "needs_features": False}


def test_demo_recipe_validates(entry_point):
    result = cli("validate", str(RECIPE))
    assert result.exit_code == 0, result.output


def test_validate_refuses_an_odd_latent_through_the_facts(entry_point):
    # 18 px through the f2 micro autoencoder: a 9x9 latent, which the U-Net cannot halve
    result = cli("validate", str(RECIPE), "-o", "data.params.resolution=18")
    assert result.exit_code == 2
    assert "denoiser.params: latent-unet halves the latent once, so both latent sides must be even; got 9x9" \
        in result.stderr


def test_validate_refuses_a_tap_the_unet_does_not_have_and_bad_groups(entry_point):
    result = cli("validate", str(RECIPE), "-o", "denoiser_regularizers[0].params.depth=4")
    assert result.exit_code == 2 and "denoiser_regularizers[0].params.depth" in result.stderr
    result = cli("validate", str(RECIPE), "-o", "denoiser.params.norm_groups=3")
    assert result.exit_code == 2
    assert "denoiser.params.norm_groups: expected a divisor of the level width 16" in result.stderr


@pytest.mark.slow
def test_demo_recipe_runs_end_to_end_with_repa_metric_and_diagnostic(entry_point, tmp_path):
    out = tmp_path / "run"
    shrink = ["-o", "train.autoencoder.steps=6", "-o", "train.autoencoder.checkpoint_every=6",
              "-o", "train.denoiser.steps=6", "-o", "train.denoiser.checkpoint_every=6"]
    # with a specmatch whose samplers run in a sampling context, sample with this package's sampler too
    midpoint = _has_sampling_context()
    if midpoint:
        shrink += ["-o", 'sampler.name="latent-midpoint"', "-o", "sampler.params.steps=4"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny models: one thread avoids oversubscription on a shared machine
    try:
        result = cli("run", str(RECIPE), "--output-dir", str(out), *shrink)
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    mse, psnr, l1 = metrics["recon_pixel_mse"], metrics["recon_psnr"], metrics["recon_l1"]
    # Cross-checks with the built-in metrics on the same pairs (Jensen): the mean of 10 log10(4 / mse_i) is at
    # least 10 log10(4 / mean mse), and the mean of mse_i is at least the square of the mean absolute error.
    assert 0 < mse < 4
    assert psnr >= 10 * math.log10(4 / mse) - 1e-6
    assert mse >= l1 ** 2 - 1e-9
    report = json.loads((out / "channel_variance.json").read_text())
    assert report["latent_shape"] == [4, 8, 8] and report["n_images"] == 32
    assert metrics["channel_var_max"] == pytest.approx(max(report["variance"]))
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    repa = [row["loss/repa"] for row in logged if row.get("stage") == "denoiser" and "loss/repa" in row]
    assert repa and all(math.isfinite(v) for v in repa)   # REPA read the U-Net's decoder feature map
    assert metrics["gen_samples"] == 16 and (out / "samples.png").exists()
    if midpoint:
        assert 'name = "latent-midpoint"' in (out / "recipe.toml").read_text()
