"""FD-DINOv2 with a tiny random DINOv2-architecture timm ViT saved by the test (the REPA teacher's loader reads
it): the class token with dgm-eval's preprocessing, and the Frechet distance through the streaming path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from specmatch.core.errors import ParamError

timm = pytest.importorskip("timm")

MODEL = "vit_small_patch14_dinov2.lvd142m"  # DINOv2's layer scale and timm's DINOv2 checkpoint converter
KWARGS = dict(img_size=28, patch_size=14, depth=1, embed_dim=32, num_heads=2)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def tiny_dinov2(tmp_path_factory):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model(MODEL, pretrained=False, num_classes=0, **KWARGS).eval()
    with torch.no_grad():  # DINOv2's layer scale starts at 1e-5: the class token would ignore the image
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.fill_(1.0)
    path = tmp_path_factory.mktemp("weights") / "tiny_dinov2.safetensors"
    save_file(model.state_dict(), str(path))
    return model, path


def _images(n, seed):
    return torch.rand(n, 3, 20, 20, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_class_token_with_dgm_eval_preprocessing(tiny_dinov2):
    from specmatch.metrics.dinov2 import DINOv2ClassToken

    model, path = tiny_dinov2
    net = DINOv2ClassToken(MODEL, path, input_size=28, model_kwargs=KWARGS)
    x = _images(3, 0)
    out = net(x)["cls"]
    assert out.shape == (3, 32) and net.feature_dim == 32
    # by hand: bicubic resize (antialiased and clipped, as PIL's), [0, 1], ImageNet normalisation; timm's pooled
    # output is the class token
    prepared = F.interpolate(x, size=(28, 28), mode="bicubic", align_corners=False, antialias=True).clamp(-1, 1)
    prepared = ((prepared + 1) / 2 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model(prepared)
        tokens = model.forward_features(prepared)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, tokens[:, 0], rtol=1e-5, atol=1e-5)


def test_resize_matches_pil_bicubic_of_the_8_bit_image():
    """dgm-eval resizes PIL images with torchvision's Resize(BICUBIC), i.e. PIL's antialiased bicubic."""
    import numpy as np
    from PIL import Image

    from specmatch.metrics.dinov2 import resize_like_pil

    rng = np.random.default_rng(0)
    for side in (256, 64):  # shrinking (antialiased) and enlarging
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        pixels[: side // 2] = 255 * ((np.arange(side) // 2) % 2)[None, :, None]  # stripes, where filters differ
        expected = np.asarray(Image.fromarray(pixels).resize((224, 224), Image.BICUBIC), dtype=np.float64)
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None].double() / 127.5 - 1
        got = ((resize_like_pil(x, (224, 224))[0].permute(1, 2, 0).double() + 1) * 127.5).numpy()
        # PIL rounds and clips to 8 bits between its horizontal and vertical passes, so single pixels next to
        # clipped overshoots differ by more; without antialiasing the mean error is 3 to 7 levels here
        error = np.abs(got - expected)
        assert error.mean() < 1.0 and np.percentile(error, 99) < 3.0, side

def test_fd_dinov2_through_the_streaming_path(tiny_dinov2, tmp_path):
    from specmatch.core.components import FeatureSet
    from specmatch.core.specs import BuildContext
    from specmatch.engine.evaluation_stream import EvaluationStream
    from specmatch.metrics.builtin import StreamFrechet
    from specmatch.metrics.dinov2 import DINOv2ClassToken
    from specmatch.metrics.streaming import StreamMoments
    from specmatch.plugins.metrics import FDDinov2Params, build_fd_dinov2, fd_dinov2_facts
    from specmatch import FeatureStream

    _, path = tiny_dinov2
    net = DINOv2ClassToken(MODEL, path, input_size=28, model_kwargs=KWARGS)
    stream = FeatureStream(name="dinov2-cls", network=net, output="cls", network_name=net.name,
                           accumulator=StreamMoments.factory(net.feature_dim, net.name))
    metric = StreamFrechet("fd_dinov2", (stream,))
    ev = EvaluationStream(passes={"p": (12, ("real", "fake"))}, per_image={}, features=None, feature_dim=0,
                          subset=0, seed=0, image_shape=(3, 20, 20), grid=0, streams=metric.feature_streams)
    real, other = _images(12, 1), _images(12, 2) * 0.3
    for items in (list(range(0, 5)), list(range(5, 12))):
        ev.consume("p", items, {"real": real[items], "fake": real[items]})
    sets = [FeatureSet(n=12, mean=None, cov=None, streams=ev.stream_summaries("p", s)) for s in ("real", "fake")]
    assert metric.compute(*sets)["fd_dinov2"] == pytest.approx(0.0, abs=1e-6)
    ev2 = EvaluationStream(passes={"p": (12, ("real", "fake"))}, per_image={}, features=None, feature_dim=0,
                           subset=0, seed=0, image_shape=(3, 20, 20), grid=0, streams=metric.feature_streams)
    ev2.consume("p", list(range(12)), {"real": real, "fake": other})
    different = [FeatureSet(n=12, mean=None, cov=None, streams=ev2.stream_summaries("p", s)) for s in ("real", "fake")]
    assert metric.compute(*different)["fd_dinov2"] > 1e-3
    # the registered factory refuses a recipe without the file, naming the key
    with pytest.raises(ParamError) as info:
        fd_dinov2_facts(FDDinov2Params())
    assert info.value.param == "weights" and "fd-dinov2" in str(info.value)
    with pytest.raises(Exception, match="not found"):
        build_fd_dinov2(FDDinov2Params(weights="missing.safetensors"), BuildContext(recipe_dir=tmp_path))
