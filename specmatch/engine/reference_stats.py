"""``specmatch stats``: the feature statistics of a dataset (a recipe's data table or an image folder), written
as an ADM-layout ``.npz`` that ``[evaluation] reference`` reads.

The images stream through the same accumulators as evaluation (float64 moments and a seeded feature subset),
so N is limited by time, not memory. Without ``--images`` every image of the split is used; with it, a seeded
random subset (the reference the evaluation stage would draw itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from specmatch.core.components import FeatureSet
from specmatch.core.errors import DataError


def dataset_from_source(source: Path, split: str, resolution: int, registry_load: Any) -> Any:
    """The images of a recipe's ``[data]`` table (``source`` is a .toml file) or of an image folder."""
    if source.is_dir():
        from specmatch.data.image_folder import ImageFolderDataset

        return ImageFolderDataset(source, split="train", resolution=resolution, crop="center", hflip_p=0.0,
                                  test_fraction=0.0, seed=0)
    from . import build as B

    resolved = registry_load(source)
    data = B.build(resolved.component("data"), B.context(resolved, Path("."), {}))
    return data[split]


def dataset_statistics(dataset, *, images: int | None, batch_size: int, network, seed: int, subset: int,
                       quantize_uint8: bool, jpeg_quality: int) -> FeatureSet:
    """Mean, covariance and a seeded feature subset of ``images`` items of ``dataset`` (all when None)."""
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
                                                                jpeg_quality=jpeg_quality))

    def batches(start: int, stop: int):
        for s in range(start, stop, batch_size):
            items = list(range(s, min(stop, s + batch_size)))
            yield items, {"real": torch.stack([dataset[picks[i]][0] for i in items]).to(accelerator.device)}

    stream.run_pass("reference", batches, chunk=max(batch_size, 1000), save=lambda: None)
    moments = stream.moments("reference", "real")
    mean, cov = moments.mean_cov()
    return FeatureSet(n=moments.n, mean=mean, cov=cov, features=stream.subset("reference", "real").features(),
                      network=network.describe()["name"])
