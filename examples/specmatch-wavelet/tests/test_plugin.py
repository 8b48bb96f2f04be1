"""Tests of specmatch-wavelet: the Haar math against hand computations, the dataset, and the plugin as
specmatch sees it once installed (``pip install -e .`` or ``pip install --target``)."""

import importlib.metadata as md
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from specmatch_wavelet import plugin
from specmatch_wavelet.checkerboards import CheckerboardsDataset, squares_per_side
from specmatch_wavelet.regularizer import WaveletEnergyRegularizer, haar_dwt2, high_band_energy_ratio

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "wavelet_demo.toml"


def _installed() -> bool:
    return any(ep.value == "specmatch_wavelet.plugin" for ep in md.entry_points(group="specmatch"))


needs_install = pytest.mark.skipif(not _installed(), reason="specmatch-wavelet is not installed "
                                                            "(pip install -e . first)")


# -- Haar math ---------------------------------------------------------------------------------------------

def test_haar_of_one_block_by_hand():
    # [[a, b], [c, d]] = [[1, 2], [3, 4]]:  ll = 10/2, lh = (1+2-3-4)/2, hl = (1-2+3-4)/2, hh = (1-2-3+4)/2
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    ll, bands = haar_dwt2(x)
    assert ll.item() == 5.0
    assert bands["lh"].item() == -2.0
    assert bands["hl"].item() == -1.0
    assert bands["hh"].item() == 0.0


def test_energy_ratio_of_one_block_by_hand():
    # energy 1+4+9+16 = 30; lh^2 = 4, hl^2 = 1, hh^2 = 0
    z = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    ratio, shares = high_band_energy_ratio(z, levels=1)
    assert ratio.item() == pytest.approx(5 / 30)
    assert shares["lh"].item() == pytest.approx(4 / 30)
    assert shares["hl"].item() == pytest.approx(1 / 30)
    assert shares["hh"].item() == pytest.approx(0.0)
    only_lh, _ = high_band_energy_ratio(z, levels=1, bands=("lh",))
    assert only_lh.item() == pytest.approx(4 / 30)


def test_two_levels_by_hand():
    # Each 2x2 block constant: level 1 has no detail. Its ll = 2 * [[1, 2], [3, 4]] = [[2, 4], [6, 8]],
    # so level 2 gives lh = (2+4-6-8)/2 = -4 and hl = (2-4+6-8)/2 = -2: 16 + 4 = 20 of 4 * 30 = 120.
    z = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).repeat_interleave(2, 0).repeat_interleave(2, 1).view(1, 1, 4, 4)
    one, _ = high_band_energy_ratio(z, levels=1)
    two, shares = high_band_energy_ratio(z, levels=2)
    assert one.item() == pytest.approx(0.0)
    assert two.item() == pytest.approx(20 / 120)
    assert shares["lh"].item() == pytest.approx(16 / 120)


def test_pixel_checkerboard_is_all_diagonal_detail():
    sign = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(4, 4)  # (8, 8) alternating +-1
    z = torch.stack([sign, 3 * sign]).unsqueeze(0)  # (1, 2, 8, 8)
    ratio, shares = high_band_energy_ratio(z, levels=1)
    assert ratio.item() == pytest.approx(1.0)
    assert shares["hh"].item() == pytest.approx(1.0)
    assert high_band_energy_ratio(z, bands=("lh", "hl"))[0].item() == pytest.approx(0.0)


def test_bands_preserve_energy_and_ratio_is_per_sample():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 4, 8, 8, generator=g)
    ll, bands = haar_dwt2(z)
    energy = z.pow(2).sum()
    assert (ll.pow(2).sum() + sum(b.pow(2).sum() for b in bands.values())).item() == pytest.approx(energy.item(),
                                                                                                  rel=1e-5)
    ratio, _ = high_band_energy_ratio(z, levels=1)
    single, _ = high_band_energy_ratio(z[1:2], levels=1)
    assert ratio.shape == (3,)
    assert ratio[1].item() == pytest.approx(single.item(), rel=1e-6)
    scaled, _ = high_band_energy_ratio(5 * z, levels=1)  # scale-invariant
    assert torch.allclose(scaled, ratio, rtol=1e-5)


def test_indivisible_latent_is_refused_with_the_sides():
    with pytest.raises(ValueError, match=r"divisible by 4; got 6x6"):
        high_band_energy_ratio(torch.zeros(1, 1, 6, 6), levels=2)


def test_regularizer_loss_is_the_batch_mean_and_has_gradients():
    z = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2).repeat(2, 1, 1, 1)
    z[1] = 1.0  # constant: no detail
    z.requires_grad_(True)
    reg = WaveletEnergyRegularizer(levels=1, bands=("lh", "hl", "hh"))
    loss, logs = reg.loss(SimpleNamespace(z=z))
    assert loss.item() == pytest.approx((5 / 30 + 0.0) / 2)
    assert logs["energy_lh"].item() == pytest.approx((4 / 30) / 2)
    loss.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="bands"):
        WaveletEnergyRegularizer(bands=("lh", "lh"))


# -- checkerboards ------------------------------------------------------------------------------------------

def test_checkerboard_items_shapes_labels_and_determinism():
    ds = CheckerboardsDataset(split="train", num_images=12, resolution=16, seed=3)
    assert squares_per_side(16) == (2, 4, 8) and ds.num_classes == 3
    assert len(ds) == 12
    for i in range(len(ds)):
        image, label = ds[i]
        assert image.shape == (3, 16, 16) and image.dtype == torch.float32
        assert image.min() >= -1 and image.max() <= 1
        assert isinstance(label, int) and 0 <= label < 3
        # exactly two colours, and the colour changes along a row as often as the label's frequency says
        assert torch.unique(image.reshape(3, -1), dim=1).shape[1] == 2
        row = image[:, 5, :]
        changes = int((row[:, 1:] != row[:, :-1]).any(dim=0).sum())
        assert changes in (ds.squares[label] - 1, ds.squares[label])
    again = CheckerboardsDataset(split="train", num_images=12, resolution=16, seed=3)
    assert torch.equal(again[7][0], ds[7][0])
    other = CheckerboardsDataset(split="test", num_images=12, resolution=16, seed=3)
    assert not torch.equal(other[7][0], ds[7][0])
    with pytest.raises(IndexError):
        ds[12]


def test_labels_cover_every_frequency():
    ds = CheckerboardsDataset(split="train", num_images=60, resolution=32, seed=0)
    assert {ds[i][1] for i in range(len(ds))} == set(range(ds.num_classes)) == set(range(4))


def test_factory_returns_train_and_test_splits():
    params = plugin.CheckerboardsParams(resolution=8, num_images=5, num_test_images=2)
    splits = plugin.build_checkerboards(params, ctx=None)
    assert set(splits) == {"train", "test"}
    assert (len(splits["train"]), len(splits["test"])) == (5, 2)
    assert splits["test"][0][0].shape == (3, 8, 8)


# -- the plugin module ----------------------------------------------------------------------------------------

def test_entry_module_does_not_import_torch():
    code = "import sys, specmatch_wavelet.plugin; assert 'torch' not in sys.modules, 'torch imported'"
    package_parent = str(Path(plugin.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_parent, os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_every_parameter_is_documented():
    for cls in (plugin.WaveletEnergyParams, plugin.CheckerboardsParams):
        for field in cls.__attrs_attrs__:
            assert field.metadata.get("doc"), f"{cls.__name__}.{field.name} has no doc"


@needs_install
def test_specmatch_lists_the_components_with_this_distribution():
    from click.testing import CliRunner

    from specmatch.cli import main
    from specmatch.core.session import clear_cache

    clear_cache()
    result = CliRunner().invoke(main, ["components", "list", "--json"],
                                env={"SPECMATCH_PLUGINS": "specmatch-wavelet"})
    assert result.exit_code == 0, result.output
    rows = {(r["kind"], r["name"]): r for r in json.loads(result.stdout)}
    assert rows[("regularizer", "wavelet-energy")]["provider"] == "specmatch-wavelet 0.1.0"
    assert rows[("dataset", "checkerboards")]["provider"] == "specmatch-wavelet 0.1.0"


@needs_install
def test_demo_recipe_validates_and_bad_bands_are_reported():
    from click.testing import CliRunner

    from specmatch.cli import main
    from specmatch.core.session import clear_cache

    clear_cache()
    runner = CliRunner()
    ok = runner.invoke(main, ["validate", str(RECIPE)])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(main, ["validate", str(RECIPE), "-o", 'regularizers[1].params.bands=["lh", "lh", "xy"]'])
    assert bad.exit_code == 2
    assert "regularizers[1].params.bands: unknown sub-band(s) 'xy'" in bad.stderr
    assert "regularizers[1].params.bands: expected each sub-band once" in bad.stderr

