"""``specmatch stats``: the feature statistics of a dataset (a recipe's data table or an image folder), written
as an ADM-layout ``.npz`` that ``[evaluation] reference`` reads.

The images stream through the same accumulators as evaluation (float64 moments and a seeded feature subset),
so N is limited by time, not memory. Without ``--images`` every image of the split is used; with it, a seeded
random subset (the reference the evaluation stage would draw itself).

``specmatch stats --check-weights FILE`` runs pytorch-fid's full Inception network (``metrics/inception_full.py``)
on the same prepared images in the same pass (``NetworkCheck``): it reports the FID between the bundled
network's pool features and pytorch-fid's, and the largest relative difference of one image's features, and
adds the spatial moments (``mu_s``/``sigma_s``, for sFID) to the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import attrs
import torch

from specmatch.core.components import FeatureSet
from specmatch.core.errors import DataError


@attrs.frozen(kw_only=True)
class Preprocessing:
    """How ``specmatch stats`` prepares images and which feature network it uses."""

    protocol: str
    quantize_uint8: bool
    jpeg_quality: int
    feature_network: str  # '' = the bundled network
    network_dir: Path  # what a relative feature_network is relative to
    network_sha256: str | None


def recipe_preprocessing(resolved: Any | None, protocol: str | None, feature_network: str | None) -> Preprocessing:
    """A recipe's effective ``[evaluation]`` preprocessing (its protocol's pinned values applied), so the file
    holds what the recipe's own evaluation would compute; ``protocol`` / ``feature_network`` (the command's
    options, None when not given) replace the recipe's. Without a recipe: the protocol's values (custom: none)."""
    from specmatch.metrics.protocols import PROTOCOLS, effective

    if resolved is not None and protocol is None:  # the recipe's own evaluation settings
        ev = effective(resolved.recipe.evaluation)
        name, quantize, jpeg = ev.protocol, ev.quantize_uint8, ev.jpeg_quality
        own_network = feature_network is None
        network = ev.feature_network if own_network else feature_network
        network_dir = Path(resolved.recipe_dir) if own_network else Path.cwd()
    else:
        pinned = PROTOCOLS[protocol or "custom"]
        name, quantize, jpeg = pinned.name, pinned.quantize_uint8, pinned.jpeg_quality
        network, network_dir = feature_network, Path.cwd()
    return Preprocessing(protocol=name, quantize_uint8=bool(quantize), jpeg_quality=int(jpeg or 0),
                         feature_network=network or "", network_dir=network_dir,
                         network_sha256=PROTOCOLS[name].feature_network_sha256)


def dataset_from_source(source: Path, split: str, resolution: int, recipe: Any = None) -> Any:
    """The images of a recipe's ``[data]`` table (``source`` is a .toml file, ``recipe`` its resolved recipe), of
    an image folder, or of an ADM batch (``arr_0`` of an ``.npz``)."""
    if source.suffix == ".npz" and source.is_file():
        from specmatch.data.npz_images import NpzImages

        return NpzImages(source)
    if source.is_dir():
        from specmatch.data.image_folder import ImageFolderDataset

        return ImageFolderDataset(source, split="train", resolution=resolution, crop="center", hflip_p=0.0,
                                  test_fraction=0.0, seed=0)
    from . import build as B

    data = B.build(recipe.component("data"), B.context(recipe, Path("."), {}))
    return data[split]


def dataset_statistics(dataset, *, images: int | None, batch_size: int, network, seed: int, subset: int,
                       quantize_uint8: bool, jpeg_quality: int, streams: Sequence[Any] = ()) -> FeatureSet:
    """Mean, covariance and a seeded feature subset of ``images`` items of ``dataset`` (all when None), and the
    summaries of the given feature ``streams`` (``specmatch.FeatureStream``)."""
    from accelerate import Accelerator

    from specmatch.metrics.quantize import protocol_images

    from .evaluation import reference_indices
    from .evaluation_stream import EvaluationStream

    if len(dataset) < 2:
        raise DataError(f"the dataset has {len(dataset)} image(s); statistics need at least 2")
    n = len(dataset) if images is None else min(images, len(dataset))
    picks = list(range(n)) if n == len(dataset) else reference_indices(len(dataset), n, seed)
    accelerator = Accelerator()
    stream = EvaluationStream(passes={"reference": (n, ("real",))}, per_image={}, features=network,
                              feature_dim=network.feature_dim, subset=subset, seed=seed,
                              image_shape=tuple(dataset[0][0].shape), grid=0,
                              prepare=lambda x: protocol_images(x, quantize=quantize_uint8,
                                                                jpeg_quality=jpeg_quality), streams=streams)

    def batches(start: int, stop: int):
        for s in range(start, stop, batch_size):
            items = list(range(s, min(stop, s + batch_size)))
            yield items, {"real": torch.stack([dataset[picks[i]][0] for i in items]).to(accelerator.device)}

    stream.run_pass("reference", batches, chunk=max(batch_size, 1000), save=lambda: None)
    moments = stream.moments("reference", "real")
    mean, cov = moments.mean_cov()
    return FeatureSet(n=moments.n, mean=mean, cov=cov, features=stream.subset("reference", "real").features(),
                      network=network.describe()["name"], streams=stream.stream_summaries("reference", "real"))


def keep_batch_moments(result: FeatureSet, batch, source: Path) -> FeatureSet:
    """``result`` (computed from an ADM batch's images) with the moments the batch file already holds.

    ADM's published reference batches hold 10 000 images but ``mu``/``sigma`` (and ``mu_s``/``sigma_s``) of the
    whole training set: FID keeps comparing with those, while the feature subset of the images makes KID and
    precision/recall possible. A file without moments keeps the ones of its images."""
    import attrs
    import numpy as np

    from specmatch.metrics.reference import ADM_SPATIAL_STREAM

    moments = batch.moments()
    if "mu" not in moments or "sigma" not in moments:
        return result
    mu, sigma = moments["mu"].astype(np.float64), moments["sigma"].astype(np.float64)
    if mu.shape != np.shape(result.mean) or sigma.shape != np.shape(result.cov):
        raise DataError(f"{source}: mu {mu.shape} and sigma {sigma.shape} do not match the feature network's "
                        f"{np.shape(result.mean)}; the file was made with another network (use "
                        f"--recompute-moments to write the moments of its images)")
    streams = dict(result.streams)
    if "mu_s" in moments and "sigma_s" in moments:
        streams[ADM_SPATIAL_STREAM] = FeatureSet(n=0, mean=moments["mu_s"].astype(np.float64),
                                                 cov=moments["sigma_s"].astype(np.float64),
                                                 network="from the batch file")
    return attrs.evolve(result, n=0, mean=mu, cov=sigma, streams=streams,
                        network=f"{result.network}; mu/sigma from {source.name}")


CHECK_POOL_STREAM = "pytorch-fid-pool"


class NetworkCheck:
    """The bundled pool-feature network paired with pytorch-fid's full network on the same images.

    It stands in for the bundled network (``__call__``: its pool features, remembered for the batch) and is
    the network of two feature streams (``compare``): pytorch-fid's pool features and the sFID spatial
    features. While comparing it keeps the largest relative difference ``|f_bundled - f_full| / |f_full|`` (L2
    norms per image) it has seen. ``specmatch stats`` runs in one process, so a running maximum is enough.
    """

    def __init__(self, bundled, full):
        self.bundled, self.full = bundled, full
        self.feature_dim = bundled.feature_dim
        self.sha256 = bundled.sha256
        self.max_relative_difference = 0.0
        self._last: tuple[Any, Any] | None = None
        self.compare_network = self.compare  # one object for both streams, so the engine calls it once per batch

    def describe(self) -> dict:
        return self.bundled.describe()

    def __call__(self, images):
        features = self.bundled(images)
        self._last = (images, features)
        return features

    def compare(self, images) -> dict:
        import torch

        bundled = self._last[1] if self._last is not None and self._last[0] is images else self.bundled(images)
        out = self.full(images)
        full = out["pool"].detach().to("cpu", torch.float64)
        difference = (bundled.to("cpu", torch.float64) - full).norm(dim=1) / full.norm(dim=1).clamp_min(1e-12)
        if len(difference):
            self.max_relative_difference = max(self.max_relative_difference, float(difference.max()))
        return out

    def streams(self) -> list:
        """The pytorch-fid pool stream (for the check) and the sFID spatial stream (for the file)."""
        from specmatch.core.components import FeatureStream
        from specmatch.metrics.inception_full import NAME, SPATIAL_DIM
        from specmatch.metrics.reference import ADM_SPATIAL_STREAM
        from specmatch.metrics.streaming import StreamMoments

        net = self.compare_network
        return [FeatureStream(name=CHECK_POOL_STREAM, network=net, output="pool", network_name=NAME,
                              accumulator=StreamMoments.factory(self.feature_dim, NAME)),
                FeatureStream(name=ADM_SPATIAL_STREAM, network=net, output="spatial", network_name=NAME,
                              accumulator=StreamMoments.factory(SPATIAL_DIM, NAME))]

    def report(self, result: FeatureSet) -> dict[str, float]:
        """FID between the two networks' pool features of the same images, and the largest relative difference."""
        from specmatch.metrics.frechet import frechet_distance

        other = result.streams[CHECK_POOL_STREAM]
        return {"fid_between_networks": frechet_distance(result.mean, result.cov, other.mean, other.cov,
                                                         method="eigh"),
                "max_relative_difference": self.max_relative_difference, "n": result.n}

