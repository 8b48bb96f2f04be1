"""The per-image ``lpips`` metric (rLPIPS): LPIPS v0.1 from two local files (random ones saved by the test), and
the ST-LPIPS VGG whose weights ship with stlpips-pytorch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from specmatch.core.errors import ParamError, WeightsError

pytestmark = pytest.mark.slow  # torchvision builds the whole VGG-16 (138 M parameters) before LPIPS slices it

# LPIPS v0.1's input scaling (Zhang et al.'s ScalingLayer) and the VGG-16 `features` indices after relu1_2,
# relu2_2, relu3_3, relu4_3, relu5_3
SHIFT, SCALE = (-0.030, -0.088, -0.188), (0.458, 0.448, 0.450)
CUTS = (4, 9, 16, 23, 30)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def lpips_files(tmp_path_factory):
    from torchvision.models import vgg16

    torch.manual_seed(0)
    features = vgg16(weights=None).features.eval()
    folder = tmp_path_factory.mktemp("lpips")
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, folder / "vgg16.pth")
    widths = (64, 128, 256, 512, 512)
    torch.save({f"lin{i}.model.1.weight": torch.ones(1, c, 1, 1) for i, c in enumerate(widths)}, folder / "vgg.pth")
    return features, folder / "vgg16.pth", folder / "vgg.pth"


def _images(seed):
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_lpips_from_files_is_the_lpips_formula(lpips_files):
    from specmatch.losses.perceptual import LPIPSMetric

    features, backbone, linear = lpips_files
    metric = LPIPSMetric.from_files(backbone=backbone, linear=linear)
    a, b = _images(1), _images(2)
    d = metric.per_image(a, b)
    assert d.shape == (2,)
    torch.testing.assert_close(metric.per_image(a, a), torch.zeros(2), atol=1e-7, rtol=0)
    torch.testing.assert_close(metric.per_image(b, a), d, rtol=1e-6, atol=1e-7)  # symmetric
    # by hand, with unit linear weights: sum over the five stages of the spatial mean of the squared difference
    # of channel-normalised features
    shift, scale = torch.tensor(SHIFT).view(1, 3, 1, 1), torch.tensor(SCALE).view(1, 3, 1, 1)
    expected = torch.zeros(2)
    with torch.no_grad():
        x, y, start = (a - shift) / scale, (b - shift) / scale, 0
        for cut in CUTS:
            x, y = features[start:cut](x), features[start:cut](y)
            start = cut
            diff = (F.normalize(x, dim=1, eps=1e-10) - F.normalize(y, dim=1, eps=1e-10)) ** 2
            expected += diff.sum(1).mean((1, 2))
    torch.testing.assert_close(d, expected, rtol=1e-4, atol=1e-6)


def test_lpips_files_are_checked(lpips_files, tmp_path):
    from specmatch.losses.perceptual import LPIPSFromFiles

    _, backbone, linear = lpips_files
    with pytest.raises(WeightsError, match="missing_vgg.pth"):
        LPIPSFromFiles(backbone=backbone, linear=tmp_path / "missing_vgg.pth")
    torch.save({"lin0.model.1.weight": torch.ones(1, 64, 1, 1)}, tmp_path / "partial.pth")
    with pytest.raises(WeightsError, match="linear-layer file"):
        LPIPSFromFiles(backbone=backbone, linear=tmp_path / "partial.pth")


def test_lpips_metric_params_and_the_bundled_shift_tolerant_variant(lpips_files, tmp_path):
    from specmatch.core.specs import BuildContext
    from specmatch.plugins.metrics import LPIPSParams, build_lpips, lpips_facts

    with pytest.raises(ParamError) as info:
        lpips_facts(LPIPSParams())
    assert info.value.param == "linear" and "shift-tolerant" in str(info.value)
    _, backbone, linear = lpips_files
    facts = lpips_facts(LPIPSParams(linear=str(linear), backbone=str(backbone)))
    assert [f.param for f in facts.files] == ["linear", "backbone"]
    st = build_lpips(LPIPSParams(variant="shift-tolerant"), BuildContext(recipe_dir=tmp_path))
    a, b = _images(3), _images(4)
    torch.testing.assert_close(st.per_image(a, a), torch.zeros(2), atol=1e-6, rtol=0)
    d = st.per_image(a, b)
    assert (d > 0.01).all()
    torch.testing.assert_close(st.per_image(b, a), d, rtol=1e-5, atol=1e-6)
