"""Perceptual distances: ST-LPIPS (bundled weights) and LPIPS (local backbone only, never downloaded)."""

import importlib.util
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from specmatch.core.errors import WeightsError
from specmatch.losses.perceptual import LPIPS, STLPIPS

needs_stlpips = pytest.mark.skipif(
    importlib.util.find_spec("stlpips_pytorch") is None,
    reason="stlpips-pytorch is not installed (pip install --no-deps stlpips-pytorch==0.0.2)")


def photo(name: str, size: int = 32) -> torch.Tensor:
    """A bundled scikit-image photo, centre-cropped to a square, resized to `size`, in [-1, 1], (1, 3, s, s)."""
    import skimage.data

    image = getattr(skimage.data, name)()
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = torch.from_numpy(np.ascontiguousarray(image[top:top + side, left:left + side])).permute(2, 0, 1)
    x = crop[None].float() / 127.5 - 1
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


@pytest.fixture(scope="module")
def stlpips_alex():
    return STLPIPS(net="alex")


@needs_stlpips
def test_ordering_on_photos(stlpips_alex):
    # 64 px: at 32 px a 1 px shift moves 3% of the frame and already rivals sigma-0.1 noise
    x = torch.cat([photo("astronaut", 64), photo("coffee", 64)])
    noisy = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    shifted = torch.roll(x, shifts=1, dims=-1)
    other = torch.cat([photo("chelsea", 64), photo("astronaut", 64)])
    with torch.no_grad():
        same = stlpips_alex(x, x)
        d_shift = stlpips_alex(x, shifted)
        d_noise = stlpips_alex(x, noisy)
        d_other = stlpips_alex(x, other)
    assert same.shape == (2,)
    assert same.abs().max().item() < 1e-6
    assert (d_shift > 1e-4).all()
    assert (d_noise > d_shift).all()
    assert (d_other > d_noise).all()


@needs_stlpips
def test_gradient_flows_to_input_only(stlpips_alex):
    x = photo("astronaut", 32).requires_grad_(True)
    y = photo("coffee", 32)
    distance = stlpips_alex(x, y)
    distance.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in stlpips_alex.parameters())
    assert all(p.grad is None for p in stlpips_alex.parameters())


@needs_stlpips
def test_frozen_and_named(stlpips_alex):
    stlpips_alex.train()
    assert not stlpips_alex.training and not any(m.training for m in stlpips_alex.modules())
    assert stlpips_alex.name == "ST-LPIPS"
    assert "ST-LPIPS" == stlpips_alex.describe()["name"]
    # dropout would make repeated calls differ if eval mode were lost
    x, y = photo("astronaut", 32), photo("coffee", 32)
    with torch.no_grad():
        torch.testing.assert_close(stlpips_alex(x, y), stlpips_alex(x, y))


@needs_stlpips
def test_import_stubs_are_not_left_behind(stlpips_alex):
    for name in ("IPython", "torchsummary"):
        if importlib.util.find_spec(name) is None:
            assert name not in sys.modules


def test_lpips_bogus_path_is_a_clear_error(tmp_path):
    bogus = tmp_path / "no_such_vgg16.pth"
    with pytest.raises(WeightsError) as info:
        LPIPS(net="vgg", weights=str(bogus))
    message = str(info.value)
    assert str(bogus) in message
    assert "never downloads" in message


def test_lpips_without_package_says_how_to_install(tmp_path, monkeypatch):
    weights = tmp_path / "vgg16-397923af.pth"
    weights.write_bytes(b"")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "lpips" else real_find_spec(name, *a, **k))
    with pytest.raises(WeightsError, match="pip install lpips"):
        LPIPS(net="vgg", weights=str(weights))


def test_lpips_loads_local_backbone(tmp_path):
    pytest.importorskip("lpips", reason="the optional lpips package is not installed")
    import torchvision

    backbone = torchvision.models.alexnet()  # random weights stand in for the ImageNet file
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(backbone.state_dict(), path)
    metric = LPIPS(net="alex", weights=str(path))
    torch.testing.assert_close(getattr(metric.model.net.slice2, "3").weight, backbone.features[3].weight)
    x = photo("astronaut", 32)
    assert metric(x, x).abs().max().item() < 1e-6
    torch.save({"unrelated": torch.zeros(1)}, path)
    with pytest.raises(WeightsError, match="features.0.weight"):
        LPIPS(net="alex", weights=str(path))
