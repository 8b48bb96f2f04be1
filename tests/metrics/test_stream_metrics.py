"""Metrics on declared feature streams: the Inception Score's split sums, sFID/FD-DINOv2 (Frechet on a stream),
the streams inside EvaluationStream, and reference files carrying stream moments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from specmatch import FeatureStream
from specmatch.core.components import FeatureSet
from specmatch.metrics.builtin import InceptionScore, StreamFrechet
from specmatch.metrics.reference import read_reference, write_reference
from specmatch.metrics.streaming import SplitSoftmaxKL, StreamMoments, inception_score


def _adm_inception_score(logits: np.ndarray, splits: int) -> float:
    """ADM's evaluator's formula on an array of probabilities, consecutive blocks of len / splits rows."""
    e = np.exp(logits - logits.max(1, keepdims=True))
    preds = e / e.sum(1, keepdims=True)
    size = len(preds) // splits
    scores = []
    for i in range(0, len(preds), size):
        part = preds[i:i + size]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return float(np.mean(scores))


def _score(logits: torch.Tensor, splits: int, batch: int = 7, order=None) -> float:
    acc = SplitSoftmaxKL(len(logits), splits, logits.shape[1])
    order = list(range(len(logits))) if order is None else order
    for s in range(0, len(order), batch):
        items = order[s:s + batch]
        acc.update(logits[items], items)
    return inception_score(*acc.summary())[0]


def test_inception_score_of_uniform_predictions_is_one():
    assert _score(torch.zeros(40, 1008), splits=4) == pytest.approx(1.0, abs=1e-12)


def test_inception_score_of_confident_distinct_classes_is_their_number():
    # each image sure of its own class: p(y|x) one-hot, p(y) uniform over the n classes, KL = log n, IS = n
    n = 25
    logits = torch.full((n, 1008), -1e4, dtype=torch.float64)
    logits[torch.arange(n), torch.arange(n) * 7] = 0.0
    assert _score(logits, splits=1) == pytest.approx(n, rel=1e-9)
    # five splits of five images with five distinct classes each: IS = 5 in every split
    mean, std = inception_score(*_accumulate(logits, splits=5))
    assert mean == pytest.approx(5.0, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)


def _accumulate(logits, splits):
    acc = SplitSoftmaxKL(len(logits), splits, logits.shape[1])
    acc.update(logits, list(range(len(logits))))
    return acc.summary()


def test_inception_score_matches_adm_formula_whatever_the_batching():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(60, 1008, generator=g, dtype=torch.float64) * 3
    expected = _adm_inception_score(logits.numpy(), splits=10)
    assert expected > 1.5
    shuffled = torch.randperm(60, generator=g).tolist()
    assert _score(logits, 10) == pytest.approx(expected, rel=1e-10)
    assert _score(logits, 10, batch=4, order=shuffled) == pytest.approx(expected, rel=1e-10)
    # two processes' states add up to the whole (the all-reduce of the engine)
    a, b, whole = (SplitSoftmaxKL(60, 10, 1008) for _ in range(3))
    a.update(logits[shuffled[:25]], shuffled[:25])
    b.update(logits[shuffled[25:]], shuffled[25:])
    whole.load({k: a.state()[k] + b.state()[k] for k in a.state()})
    assert inception_score(*whole.summary())[0] == pytest.approx(expected, rel=1e-10)


def _stream(name="toy", dim=6, sets=("real", "fake")):
    return FeatureStream(name=name, network=None, output="x", accumulator=StreamMoments.factory(dim), sets=sets)


def test_stream_frechet_is_zero_for_identical_sets_and_the_mean_shift_otherwise():
    g = torch.Generator().manual_seed(1)
    f = torch.randn(200, 6, generator=g, dtype=torch.float64)
    metric = StreamFrechet("sfid", (_stream(),))
    a, b = StreamMoments(6), StreamMoments(6)
    a.update(f, list(range(200)))
    b.update(f, list(range(200)))
    same = metric.compute(FeatureSet(n=200, mean=None, cov=None, streams={"toy": a.summary()}),
                          FeatureSet(n=200, mean=None, cov=None, streams={"toy": b.summary()}))
    assert same == {"sfid": pytest.approx(0.0, abs=1e-9)}
    shifted = StreamMoments(6)
    shifted.update(f + 0.5, list(range(200)))  # same covariance: FD = |shift|^2 = 6 * 0.25
    value = metric.compute(FeatureSet(n=200, mean=None, cov=None, streams={"toy": a.summary()}),
                           FeatureSet(n=200, mean=None, cov=None, streams={"toy": shifted.summary()}))["sfid"]
    assert value == pytest.approx(1.5, rel=1e-6)


class ToyNetwork:
    """Two outputs from one pass; counts its calls (the engine must run it once per batch)."""

    def __init__(self):
        self.calls = 0
        torch.manual_seed(0)
        self.w = torch.randn(3, 5)

    def __call__(self, images):
        self.calls += 1
        pooled = images.float().mean((2, 3))
        return {"feat": pooled @ self.w, "logits": torch.cat([pooled, -pooled], 1) * 4}


def test_evaluation_stream_accumulates_declared_streams_once_per_network():
    from specmatch.engine.evaluation_stream import EvaluationStream

    net = ToyNetwork()
    feat = FeatureStream(name="toy-feat", network=net, output="feat", accumulator=StreamMoments.factory(5))
    logits = FeatureStream(name="toy-logits", network=net, output="logits",
                           accumulator=SplitSoftmaxKL.factory(2, 6), sets=("fake",))
    metrics = [StreamFrechet("fd_toy", (feat,)), InceptionScore((logits,)), StreamFrechet("again", (feat,))]
    stream = EvaluationStream(passes={"p": (12, ("real", "fake"))}, per_image={}, features=None, feature_dim=0,
                              subset=0, seed=0, image_shape=(3, 4, 4), grid=0,
                              streams=[st for m in metrics for st in m.feature_streams])
    g = torch.Generator().manual_seed(2)
    real, fake = torch.rand(12, 3, 4, 4, generator=g) * 2 - 1, torch.rand(12, 3, 4, 4, generator=g) * 2 - 1
    for s in range(0, 12, 5):
        items = list(range(s, min(12, s + 5)))
        stream.consume("p", items, {"real": real[items], "fake": fake[items]})
    assert net.calls == 6  # 3 batches x 2 sets: one call per set and batch for both streams
    real_set = stream.stream_summaries("p", "real")
    fake_set = stream.stream_summaries("p", "fake")
    assert set(real_set) == {"toy-feat"} and set(fake_set) == {"toy-feat", "toy-logits"}  # IS: fake only
    direct = net(real)["feat"].double().numpy()
    np.testing.assert_allclose(real_set["toy-feat"].mean, direct.mean(0), atol=1e-6)
    np.testing.assert_allclose(real_set["toy-feat"].cov, np.cov(direct, rowvar=False), atol=1e-6)
    expected = _adm_inception_score(net(fake)["logits"].double().numpy(), splits=2)
    assert inception_score(*fake_set["toy-logits"])[0] == pytest.approx(expected, rel=1e-6)


def test_reference_files_carry_stream_moments_and_read_adm_spatial_statistics(tmp_path):
    rng = np.random.default_rng(0)
    f, s = rng.normal(size=(30, 4)), rng.normal(size=(30, 3))
    spatial = FeatureSet(n=30, mean=s.mean(0), cov=np.cov(s, rowvar=False))
    write_reference(tmp_path / "ref.npz", FeatureSet(n=30, mean=f.mean(0), cov=np.cov(f, rowvar=False),
                                                      streams={"inception-spatial": spatial, "other": spatial}))
    ref = read_reference(tmp_path / "ref.npz", feature_dim=4)
    assert set(ref.streams) == {"inception-spatial", "other"}
    np.testing.assert_allclose(ref.streams["inception-spatial"].cov, spatial.cov)
    with np.load(tmp_path / "ref.npz") as data:  # ADM's evaluator reads these two keys for sFID
        np.testing.assert_allclose(data["mu_s"], spatial.mean)
    # an ADM reference batch: mu, sigma, mu_s, sigma_s and images; no n
    np.savez(tmp_path / "adm.npz", mu=f.mean(0), sigma=np.cov(f, rowvar=False), mu_s=s.mean(0),
             sigma_s=np.cov(s, rowvar=False), arr_0=np.zeros((2, 4, 4, 3), np.uint8))
    adm = read_reference(tmp_path / "adm.npz")
    assert list(adm.streams) == ["inception-spatial"]
    np.testing.assert_allclose(adm.streams["inception-spatial"].mean, s.mean(0))


class OneProcess:
    num_processes, is_main_process = 1, True

    def wait_for_everyone(self):
        pass


def test_stream_accumulators_are_saved_and_resumed_exactly(tmp_path):
    """An evaluation cut after its first chunk and continued from the saved file gives the same summaries."""
    from specmatch.engine.evaluation_stream import EvaluationStream

    net = ToyNetwork()
    streams = [FeatureStream(name="toy-feat", network=net, output="feat", accumulator=StreamMoments.factory(5)),
               FeatureStream(name="toy-logits", network=net, output="logits", accumulator=SplitSoftmaxKL.factory(3, 6),
                             sets=("fake",))]
    g = torch.Generator().manual_seed(4)
    real, fake = torch.rand(10, 3, 4, 4, generator=g) * 2 - 1, torch.rand(10, 3, 4, 4, generator=g) * 2 - 1

    def produce(start, stop):
        for s in range(start, stop, 3):
            items = list(range(s, min(stop, s + 3)))
            yield items, {"real": real[items], "fake": fake[items]}

    def new():
        return EvaluationStream(passes={"p": (10, ("real", "fake"))}, per_image={}, features=None, feature_dim=0,
                                subset=0, seed=0, image_shape=(3, 4, 4), grid=0, streams=streams)

    whole = new()
    whole.run_pass("p", produce, chunk=4, save=lambda: None)
    path, acc = tmp_path / "statistics.safetensors", OneProcess()
    cut = new()

    class Stop(Exception):
        pass

    def stop(name, done):
        raise Stop

    with pytest.raises(Stop):
        cut.run_pass("p", produce, chunk=4, save=lambda: cut.save(path, "key", acc), on_chunk=stop)
    resumed = new()
    assert resumed.load(path, "key", acc) and resumed.cursor["p"] == 4
    resumed.run_pass("p", produce, chunk=4, save=lambda: None)
    for s in ("real", "fake"):
        a, b = whole.stream_summaries("p", s), resumed.stream_summaries("p", s)
        assert set(a) == set(b)
        np.testing.assert_allclose(a["toy-feat"].cov, b["toy-feat"].cov, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(inception_score(*whole.stream_summaries("p", "fake")["toy-logits"]),
                               inception_score(*resumed.stream_summaries("p", "fake")["toy-logits"]), rtol=1e-12)


def test_inception_score_agrees_with_torchmetrics_on_the_same_logits():
    """torchmetrics' InceptionScore fed the logits themselves (an identity "network"); one split, because
    torchmetrics shuffles the images before splitting and specmatch splits by item index (as ADM)."""
    from torchmetrics.image.inception import InceptionScore as TorchmetricsIS

    g = torch.Generator().manual_seed(5)
    logits = torch.randn(80, 1008, generator=g, dtype=torch.float64) * 2
    reference = TorchmetricsIS(feature=torch.nn.Identity(), splits=1, normalize=False)
    reference.update(logits)
    expected = float(reference.compute()[0])
    assert _score(logits, splits=1) == pytest.approx(expected, rel=1e-9)
