"""Feature teachers (timm from local weights, the offline ST-LPIPS stand-in) and the DoG band-pass on feature maps."""

import hashlib
import importlib.util
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from specmatch.alignment.dog import dog_filter, gaussian_blur  # noqa: E402
from specmatch.alignment.teachers import STLPIPSStandInTeacher, TimmTeacher  # noqa: E402
from specmatch.core.errors import WeightsError  # noqa: E402

timm = pytest.importorskip("timm")

TINY_VIT = "vit_tiny_patch16_224"
TINY_KWARGS = dict(img_size=32, patch_size=8, depth=1, embed_dim=32, num_heads=2)


@pytest.fixture(scope="module")
def tiny_vit_file(tmp_path_factory):
    """A tiny random ViT saved with safetensors; returns (model, path)."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model(TINY_VIT, pretrained=False, num_classes=0, **TINY_KWARGS).eval()
    path = tmp_path_factory.mktemp("weights") / "tiny_vit.safetensors"
    save_file(model.state_dict(), str(path))
    return model, path


def images(batch=2, size=32, seed=0):
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# --------------------------------------------------------------------------------------------------------------
# TimmTeacher
# --------------------------------------------------------------------------------------------------------------


def test_timm_teacher_matches_model_forward(tiny_vit_file):
    model, path = tiny_vit_file
    teacher = TimmTeacher(TINY_VIT, path, model_kwargs=TINY_KWARGS)
    x = images()
    features = teacher(x)
    assert features.shape == (2, 32, 4, 4) and features.dtype == torch.float32
    # by hand: [-1, 1] -> [0, 1] -> (x - 0.5) / 0.5 (this ViT's mean/std), drop the class token, tokens to a grid
    with torch.no_grad():
        tokens = model.forward_features(((x + 1) / 2 - 0.5) / 0.5)[:, 1:]
    expected = tokens.reshape(2, 4, 4, 32).permute(0, 3, 1, 2)
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-5)
    assert teacher.feature_dim == 32 and teacher.grid == (4, 4)
    assert not features.requires_grad


def test_timm_teacher_resizes_to_its_input_size(tiny_vit_file):
    _, path = tiny_vit_file
    teacher = TimmTeacher(TINY_VIT, path, model_kwargs=TINY_KWARGS, input_size=48)
    assert teacher.grid == (6, 6)
    big = images(size=64)
    direct = teacher(F.interpolate(big, size=(48, 48), mode="bicubic", align_corners=False))
    torch.testing.assert_close(teacher(big), direct)
    assert teacher(big).shape == (2, 32, 6, 6)


def test_timm_teacher_intermediate_layer(tiny_vit_file):
    """layer=-1 is the last block's raw output; the default output is that after the final LayerNorm."""
    model, path = tiny_vit_file
    raw = TimmTeacher(TINY_VIT, path, model_kwargs=TINY_KWARGS, layer=-1)
    final = TimmTeacher(TINY_VIT, path, model_kwargs=TINY_KWARGS)
    x = images()
    block_tokens = raw(x)
    normed = model.norm(block_tokens.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(final(x), normed, rtol=1e-5, atol=1e-5)
    assert "block -1" in raw.name


def test_timm_teacher_describe_records_hash(tiny_vit_file):
    _, path = tiny_vit_file
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    teacher = TimmTeacher(TINY_VIT, path, sha256=digest.upper(), model_kwargs=TINY_KWARGS)
    record = teacher.describe()
    assert record["sha256"] == digest
    assert record["source"] == str(path)
    assert record["is_stand_in"] is False and teacher.is_stand_in is False
    assert record["name"] == TINY_VIT and record["feature_dim"] == 32 and record["grid"] == [4, 4]


def test_timm_teacher_missing_file(tmp_path):
    missing = tmp_path / "dinov2.safetensors"
    with pytest.raises(WeightsError) as info:
        TimmTeacher("vit_large_patch14_dinov2.lvd142m", missing)
    message = str(info.value)
    assert str(missing) in message and "vit_large_patch14_dinov2.lvd142m" in message
    assert "never downloads" in message


def test_timm_teacher_hash_mismatch(tiny_vit_file):
    _, path = tiny_vit_file
    with pytest.raises(WeightsError, match="sha256 mismatch") as info:
        TimmTeacher(TINY_VIT, path, sha256="0" * 64, model_kwargs=TINY_KWARGS)
    assert hashlib.sha256(path.read_bytes()).hexdigest() in str(info.value)


def test_timm_teacher_wrong_weights(tiny_vit_file):
    _, path = tiny_vit_file
    wider = dict(TINY_KWARGS, embed_dim=48, num_heads=2)
    with pytest.raises(WeightsError, match="do not fit"):
        TimmTeacher(TINY_VIT, path, model_kwargs=wider)


def test_timm_teacher_drops_prefix_and_register_tokens(tmp_path):
    kwargs = dict(depth=1, embed_dim=32, num_heads=2, img_size=28)
    model = timm.create_model("vit_small_patch14_reg4_dinov2.lvd142m", pretrained=False, num_classes=0,
                              **kwargs).eval()
    assert model.num_prefix_tokens == 5  # class + 4 registers
    path = tmp_path / "reg.pth"
    torch.save({"state_dict": model.state_dict()}, path)  # wrapped, as many .pth files are
    teacher = TimmTeacher("vit_small_patch14_reg4_dinov2.lvd142m", path, model_kwargs=kwargs)
    x = images(size=28)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        tokens = model.forward_features(((x + 1) / 2 - mean) / std)[:, 5:]
    torch.testing.assert_close(teacher(x), tokens.reshape(2, 2, 2, 32).permute(0, 3, 1, 2), rtol=1e-5, atol=1e-5)


def test_teacher_is_frozen(tiny_vit_file):
    _, path = tiny_vit_file
    teacher = TimmTeacher(TINY_VIT, path, model_kwargs=TINY_KWARGS)
    teacher.train()
    assert not teacher.training and not any(m.training for m in teacher.modules())
    assert not any(p.requires_grad for p in teacher.parameters())
    x = images().requires_grad_(True)
    assert not teacher(x).requires_grad


# --------------------------------------------------------------------------------------------------------------
# Stand-ins
# --------------------------------------------------------------------------------------------------------------

needs_stlpips = pytest.mark.skipif(importlib.util.find_spec("stlpips_pytorch") is None,
                                   reason="stlpips-pytorch is not installed")


@needs_stlpips
def test_stlpips_stand_in_features():
    teacher = STLPIPSStandInTeacher(net="alex", layer=2)
    assert teacher.is_stand_in is True
    assert "stand-in" in teacher.name and teacher.name.startswith("stlpips-alex-conv2")
    record = teacher.describe()
    assert record["is_stand_in"] is True and record["sha256"] and record["source"].endswith(".pth")
    x = images(batch=3)
    features = teacher(x)
    assert features.shape == (3, 192, 7, 7) and features.dtype == torch.float32
    assert teacher.feature_dim == 192 and teacher.grid == (7, 7) and teacher.grid_for(64) == (15, 15)
    # independently: the package's full ST-LPIPS network, second stage of its feature tuple
    from specmatch.losses.perceptual import load_stlpips

    full = load_stlpips("alex")
    with torch.no_grad():
        expected = full.net(full.scaling_layer(x)).relu2
    torch.testing.assert_close(features, expected)
    assert (features >= 0).all()  # ReLU output


@needs_stlpips
def test_stlpips_stand_in_other_layers_and_size():
    layer1 = STLPIPSStandInTeacher(layer=1, input_size=64)
    assert layer1.feature_dim == 64 and layer1.grid == (30, 30)
    assert layer1(images()).shape == (2, 64, 30, 30)
    with pytest.raises(Exception, match="layer"):
        STLPIPSStandInTeacher(layer=6)


# --------------------------------------------------------------------------------------------------------------
# DoG filter
# --------------------------------------------------------------------------------------------------------------


def test_dog_removes_constants_exactly():
    constant = torch.ones(2, 4, 9, 11) * torch.tensor([0.5, -2.0, 3.0, 7.0]).view(1, 4, 1, 1)
    out = dog_filter(constant)
    assert out.shape == constant.shape
    assert out.abs().max().item() < 1e-6  # reflect padding: zero everywhere, borders included
    tiny = torch.full((1, 2, 2, 2), 4.0)  # too small to reflect a 5x5 kernel: falls back to replicate
    assert dog_filter(tiny).abs().max().item() < 1e-6
    # zero padding would not: the frame lights up
    assert dog_filter(constant, padding_mode="zeros").abs().max().item() > 0.1


def _expected_gain(cycles_per_sample):
    """Analytic DoG response to cos(2 pi f x) (constant along the other axis), from the sampled kernels."""
    def response(sigma, size):
        taps = np.arange(size) - size // 2
        g = np.exp(-taps**2 / (2 * sigma**2))
        g /= g.sum()
        return float(np.sum(g * np.cos(2 * np.pi * cycles_per_sample * taps)))
    return response(0.6, 3) - response(2.0, 5)


def test_dog_is_a_band_pass():
    n = 64
    xs = torch.arange(n, dtype=torch.float64)
    gains = {}
    for f in (1 / 16, 1 / 4, 1 / 2):
        wave = torch.cos(2 * torch.pi * f * xs).expand(1, 1, n, n).clone()
        out = dog_filter(wave)
        interior = out[..., 4:-4, 4:-4] / wave[..., 4:-4, 4:-4]
        mask = wave[..., 4:-4, 4:-4].abs() > 0.5
        measured = interior[mask].mean().item()
        assert measured == pytest.approx(_expected_gain(f), abs=1e-6)
        gains[f] = measured
    assert gains[1 / 4] > 2 * gains[1 / 16] and gains[1 / 4] > 2 * gains[1 / 2]
    assert gains[1 / 4] == pytest.approx(0.7208, abs=1e-3)


def test_dog_matches_scipy_mirror_gaussians():
    """torch 'reflect' padding is scipy's 'mirror' mode; radii 1 and 2 via scipy's truncate."""
    from scipy.ndimage import gaussian_filter

    g = np.random.default_rng(0)
    features = g.standard_normal((2, 3, 12, 10))
    low = gaussian_filter(features, sigma=(0, 0, 0.6, 0.6), mode="mirror", truncate=1 / 0.6)
    high = gaussian_filter(features, sigma=(0, 0, 2.0, 2.0), mode="mirror", truncate=1.0)
    out = dog_filter(torch.from_numpy(features))
    np.testing.assert_allclose(out.numpy(), low - high, rtol=1e-10, atol=1e-12)
    blurred = gaussian_blur(torch.from_numpy(features).float(), 2.0, 5)
    assert blurred.dtype == torch.float32
    np.testing.assert_allclose(blurred.numpy(), high, rtol=1e-5, atol=1e-5)


def test_dog_rejects_bad_arguments():
    with pytest.raises(ValueError):
        dog_filter(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="odd"):
        dog_filter(torch.zeros(1, 1, 8, 8), kernel_low=4)
    with pytest.raises(ValueError, match="padding_mode"):
        dog_filter(torch.zeros(1, 1, 8, 8), padding_mode="mirror")
