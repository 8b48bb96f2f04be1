"""pytorch-fid's full FID Inception network (sFID and IS) built with random weights saved by the test itself:
shapes, which tensors the outputs are, the FID block variants, the file checks, and sFID/IS through the
evaluation's streaming path. The real weights file is not needed (and never downloaded)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from specmatch.core.errors import WeightsError

pytestmark = pytest.mark.slow  # a 24 M-parameter network at 299 x 299 on the CPU


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """On a busy 2-core machine OpenMP's spin-waits slow small batches down."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    from specmatch.metrics.inception_full import build_fid_inception

    torch.manual_seed(0)
    net = build_fid_inception()
    for m in net.modules():  # activations of order 1 through the depth; batch-norm statistics that matter
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("inception") / "random_fid_inception.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def network(weights_file):
    from specmatch.metrics.inception_full import FullInception

    return FullInception(weights_file, sha256="")


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(3)
    return torch.rand(2, 3, 32, 32, generator=g) * 2 - 1


def test_outputs_are_pool_spatial_and_unbiased_logits(network, images):
    from specmatch.metrics.inception import InceptionFeatures

    net = network.module
    seen = {}
    hook = net.Mixed_6d.branch1x1.register_forward_hook(lambda m, i, o: seen.setdefault("b1x1", o.clone()))
    try:
        out = network(images)
    finally:
        hook.remove()
    assert out["pool"].shape == (2, 2048) and out["spatial"].shape == (2, 2023) and out["logits"].shape == (2, 1008)
    # ADM: mixed_6/conv (17x17x192), channels [:7], flattened NHWC
    expected_spatial = seen["b1x1"][:, :7].permute(0, 2, 3, 1).reshape(2, -1)
    torch.testing.assert_close(out["spatial"], expected_spatial)
    # logits without the bias (ADM's matmul, torch-fidelity's logits_unbiased)
    torch.testing.assert_close(out["logits"], net.fc(out["pool"]) - net.fc.bias, rtol=1e-5, atol=1e-5)
    # pool: the input of the classifier of torchvision's own forward (same trunk, dropout off in eval)
    logits_tv = net(InceptionFeatures.preprocess(images))
    torch.testing.assert_close(logits_tv, net.fc(out["pool"]), rtol=1e-4, atol=1e-4)


def test_fid_blocks_pool_like_tensorflow(weights_file, images):
    """The FID variants change the result: torchvision's stock blocks on the same weights give other features."""
    from torchvision.models.inception import Inception3

    from specmatch.metrics.inception import InceptionFeatures
    from specmatch.metrics.inception_full import build_fid_inception, inception_outputs

    state = torch.load(weights_file, weights_only=True)
    fid = build_fid_inception().eval()
    fid.load_state_dict(state)
    stock = Inception3(num_classes=1008, aux_logits=False, transform_input=False, init_weights=False).eval()
    stock.load_state_dict(state)
    x = InceptionFeatures.preprocess(images[:1])
    with torch.no_grad():
        a, b = inception_outputs(fid, x), inception_outputs(stock, x)
    # before Mixed_5b nothing differs ...
    assert type(fid.Mixed_5b).__name__ != type(stock.Mixed_5b).__name__
    # ... after it the padding-excluding average pools and Mixed_7c's max pool do
    assert not torch.allclose(a["spatial"], b["spatial"])
    assert not torch.allclose(a["pool"], b["pool"])


def test_file_checks_name_the_file(tmp_path, weights_file):
    from specmatch.metrics.inception_full import FullInception

    with pytest.raises(WeightsError) as info:
        FullInception(tmp_path / "missing.pth", what="evaluation.metric_params.sfid.weights")
    message = str(info.value)
    assert "pt_inception-2015-12-05-6726825d.pth" in message and "missing.pth" in message
    assert "evaluation.metric_params.sfid.weights" in message
    with pytest.raises(WeightsError, match="6726825d"):  # the default check: the hash the file name carries
        FullInception(weights_file)
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(WeightsError, match="not pytorch-fid's Inception state dict"):
        FullInception(wrong, sha256="")


def test_sfid_and_inception_score_through_the_streaming_path(tmp_path, weights_file, images):
    from specmatch.core.components import FeatureSet
    from specmatch.core.specs import BuildContext
    from specmatch.engine.evaluation_stream import EvaluationStream
    from specmatch.plugins.metrics import (FullInceptionParams, InceptionScoreParams, build_inception_score,
                                           build_sfid)

    ctx = BuildContext(recipe_dir=weights_file.parent)
    sfid = build_sfid(FullInceptionParams(weights=weights_file.name, sha256=""), ctx)
    score = build_inception_score(InceptionScoreParams(weights=str(weights_file), sha256="", splits=1), ctx)
    net = sfid.feature_streams[0].network
    assert score.feature_streams[0].network is net  # one network for both metrics
    seen = []  # Mixed_7c's output of each call, for an independent Inception Score
    hook = net.module.Mixed_7c.register_forward_hook(lambda m, i, o: seen.append(o.mean((2, 3))))
    stream = EvaluationStream(passes={"p": (3, ("real", "fake"))}, per_image={}, features=None, feature_dim=0,
                              subset=0, seed=0, image_shape=(3, 32, 32), grid=0,
                              streams=[*sfid.feature_streams, *score.feature_streams])
    x = torch.cat([images, images[:1].flip(-1)])
    try:
        stream.consume("p", [0, 1, 2], {"real": x, "fake": x})
    finally:
        hook.remove()
    assert len(seen) == 2  # one forward per image set, shared by sFID and IS
    real = FeatureSet(n=3, mean=None, cov=None, streams=stream.stream_summaries("p", "real"))
    fake = FeatureSet(n=3, mean=None, cov=None, streams=stream.stream_summaries("p", "fake"))
    spatial = real.streams["inception-spatial"]
    assert spatial.n == 3 and spatial.mean.shape == (2023,)
    assert "inception-logits-1" not in real.streams  # IS reads the generated images only
    # rank-2 covariances of 2023-d features: the square roots of ~2000 rounding-level eigenvalues add up to
    # about 1e-6 of the trace (a 2x shifted set gives a distance of the order of the trace itself)
    assert abs(sfid.compute(real, fake)["sfid"]) < 1e-5 * np.trace(spatial.cov)
    logits = (seen[1] @ net.module.fc.weight.T).double()
    q = torch.softmax(logits, 1).numpy()
    expected = np.exp(np.mean(np.sum(q * (np.log(q) - np.log(q.mean(0, keepdims=True))), 1)))
    assert expected > 1.0 + 1e-6
    assert score.compute(real, fake)["is"] == pytest.approx(expected, rel=1e-5)
