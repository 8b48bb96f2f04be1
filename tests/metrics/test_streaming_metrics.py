"""Streaming accumulators, precision/recall, reference files and the cross-check against torchmetrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from specmatch.core.components import FeatureSet
from specmatch.core.errors import DataError
from specmatch.metrics.builtin import Frechet, KernelDistance
from specmatch.metrics.frechet import frechet_distance
from specmatch.metrics.precision_recall import knn_radii, precision_recall
from specmatch.metrics.quantize import jpeg_round_trip, quantize_uint8
from specmatch.metrics.reference import read_reference, write_reference
from specmatch.metrics.streaming import FeatureMoments, FeatureSubset, MeanOfValues


def _features(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mixing = torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ mixing + shift


def test_moments_over_batches_equal_numpy_mean_and_cov():
    f = _features(300, 16, 0, shift=3.0)
    moments = FeatureMoments(16)
    for batch in f.split(37):
        moments.update(batch)
    mu, cov = moments.mean_cov()
    assert moments.n == 300
    np.testing.assert_allclose(mu, f.numpy().mean(0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(cov, np.cov(f.numpy(), rowvar=False), rtol=0, atol=1e-10)


def test_moments_of_two_halves_add_up_like_a_reduction():
    f = _features(100, 8, 1)
    whole, a, b = FeatureMoments(8), FeatureMoments(8), FeatureMoments(8)
    whole.update(f)
    a.update(f[:40])
    b.update(f[40:])
    summed = FeatureMoments(8)
    summed.load({k: a.state()[k] + b.state()[k] for k in a.state()})
    for x, y in zip(summed.mean_cov(), whole.mean_cov()):
        np.testing.assert_allclose(x, y, atol=1e-12)


def test_feature_subset_keeps_the_same_items_whatever_the_batching():
    f = _features(50, 4, 2)
    one, other = FeatureSubset(50, 4, 10, seed=7), FeatureSubset(50, 4, 10, seed=7)
    one.update(f, list(range(50)))
    order = torch.randperm(50, generator=torch.Generator().manual_seed(3)).tolist()
    for s in range(0, 50, 6):
        rows = order[s:s + 6]
        other.update(f[rows], rows)
    assert one.features().shape == (10, 4)
    np.testing.assert_array_equal(one.features(), other.features())
    kept = one.indices.tolist()
    np.testing.assert_allclose(one.features(), f[kept].float().double().numpy())
    assert FeatureSubset(50, 4, 10, seed=8).indices.tolist() != kept  # the seed chooses the subset


def test_mean_of_values():
    m = MeanOfValues()
    m.update(torch.tensor([1.0, 2.0]))
    m.update(torch.tensor([6.0]))
    assert m.mean() == pytest.approx(3.0)


def test_precision_recall_by_hand_in_one_dimension():
    real = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    # k = 1: every real ball has radius 1; fakes at 4.5 (inside the ball of 4) and 10 (outside)
    fake = np.array([[4.5], [10.0], [10.5], [11.0]])
    np.testing.assert_allclose(knn_radii(real, k=1), [1, 1, 1, 1, 1])
    precision, recall = precision_recall(real, fake, k=1)
    assert precision == pytest.approx(0.25)  # 1 of 4 fakes
    # fake radii (k=1): 4.5 -> 5.5 (to 10), 10 -> 0.5, 10.5 -> 0.5, 11 -> 0.5; real 0..4 inside the ball of
    # 4.5 (radius 5.5): all five
    assert recall == pytest.approx(1.0)


def test_precision_recall_identical_and_disjoint_sets():
    f = _features(60, 8, 4).numpy()
    assert precision_recall(f, f, k=3) == (1.0, 1.0)
    assert precision_recall(f, f + 100.0, k=3) == (0.0, 0.0)


def test_reference_file_round_trip_and_errors(tmp_path):
    f = _features(40, 6, 5)
    moments = FeatureMoments(6)
    moments.update(f)
    mu, cov = moments.mean_cov()
    path = tmp_path / "ref.npz"
    write_reference(path, FeatureSet(n=40, mean=mu, cov=cov, features=f.numpy(), network="tiny"), protocol="custom")
    with np.load(path) as data:  # the ADM layout: what its evaluator reads
        assert {"mu", "sigma"} <= set(data.files) and data["sigma"].shape == (6, 6)
    back = read_reference(path, feature_dim=6)
    assert back.n == 40 and back.network == "tiny" and back.features.shape == (40, 6)
    np.testing.assert_array_equal(back.cov, cov)
    with pytest.raises(DataError, match="another feature network"):
        read_reference(path, feature_dim=2048)
    np.savez(tmp_path / "bad.npz", arr_0=np.zeros((2, 4, 4, 3), dtype=np.uint8))
    with pytest.raises(DataError, match=r"bad\.npz.*no mu or sigma"):
        read_reference(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(DataError, match="junk.npz"):
        read_reference(tmp_path / "junk.npz")


def test_quantisation_and_jpeg_round_trip():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    q = quantize_uint8(x)
    levels = (q + 1) * 127.5
    assert torch.allclose(levels, levels.round(), atol=1e-4) and (q - x).abs().max() <= 1 / 255 + 1e-6
    j = jpeg_round_trip(x, quality=50)
    assert j.shape == x.shape and 0 < (j - q).abs().mean() < 0.5  # lossy, but the same image


class _Identity(torch.nn.Module):
    """torchmetrics' custom feature extractor: the 'images' are the features themselves."""

    def __init__(self, d: int):
        super().__init__()
        self.num_features = d

    def forward(self, x):
        return x


def test_fid_and_kid_agree_with_torchmetrics_on_the_same_features():
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    d, n = 32, 120
    real, fake = _features(n, d, 10), _features(n, d, 11, shift=0.3)
    ours = {}
    sets = {}
    for name, f in (("real", real), ("fake", fake)):
        m = FeatureMoments(d)
        for batch in f.split(25):
            m.update(batch)
        mu, cov = m.mean_cov()
        sets[name] = FeatureSet(n=n, mean=mu, cov=cov, features=f.numpy())
    ours.update(Frechet().compute(sets["real"], sets["fake"]))
    # subset = the whole set: every subset is the same, so the random subset draws cannot differ
    ours.update(KernelDistance(subset_size=n, num_subsets=3).compute(sets["real"], sets["fake"]))

    fid = FrechetInceptionDistance(feature=_Identity(d))
    kid = KernelInceptionDistance(feature=_Identity(d), subsets=3, subset_size=n)
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    theirs_fid = float(fid.compute())
    theirs_kid = float(kid.compute()[0])
    assert ours["fid"] > 0.1 and ours["kid"] > 1e-4  # the sets differ: a meaningful comparison
    assert ours["fid"] == pytest.approx(theirs_fid, rel=1e-3)
    assert ours["kid"] == pytest.approx(theirs_kid, rel=1e-3)
    # and the pytorch-fid (sqrtm) path of our Frechet distance agrees too
    assert frechet_distance(sets["real"].mean, sets["real"].cov, sets["fake"].mean, sets["fake"].cov) == \
        pytest.approx(theirs_fid, rel=1e-3)
