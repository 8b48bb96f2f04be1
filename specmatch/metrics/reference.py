"""Reference statistics files in the layout of ADM's evaluator (openai/guided-diffusion,
``evaluations/evaluator.py``): an ``.npz`` whose ``mu`` (d,) and ``sigma`` (d, d) are the mean and covariance
of the Inception pool features. ADM's reference batches also hold ``arr_0`` (the images, uint8 NHWC) and
``mu_s``/``sigma_s`` (the spatial features of sFID): ``arr_0`` is ignored, ``mu_s``/``sigma_s`` are read as the
``inception-spatial`` feature stream (and written under those names when a set has that stream).

specmatch adds two optional keys that ADM's evaluator ignores: ``n`` (how many images the statistics cover)
and ``features`` (a seeded random subset of the feature rows, so KID and precision/recall can use the file
too), plus ``network`` and ``protocol`` strings saying how the statistics were made, and the moments of any other
feature stream as ``stream.<name>.mu``/``.sigma``/``.n`` (e.g. ``stream.dinov2-cls.mu`` for FD-DINOv2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from specmatch.core.components import FeatureSet
from specmatch.core.errors import DataError

#: the stream ADM's ``mu_s``/``sigma_s`` hold (``metrics/inception_full.py``, sFID)
ADM_SPATIAL_STREAM = "inception-spatial"


def write_reference(path: str | Path, stats: FeatureSet, *, protocol: str = "") -> None:
    """Write ``stats`` as an ADM-layout ``.npz`` (plus specmatch's optional keys)."""
    arrays = {"mu": np.asarray(stats.mean, dtype=np.float64), "sigma": np.asarray(stats.cov, dtype=np.float64),
              "n": np.asarray(stats.n, dtype=np.int64), "network": np.asarray(stats.network),
              "protocol": np.asarray(protocol)}
    if stats.features is not None:
        arrays["features"] = np.asarray(stats.features, dtype=np.float32)
    for name, summary in stats.streams.items():
        if getattr(summary, "cov", None) is None:  # only moment streams fit a reference file
            continue
        mean, cov = np.asarray(summary.mean, dtype=np.float64), np.asarray(summary.cov, dtype=np.float64)
        if name == ADM_SPATIAL_STREAM:  # under ADM's names only, so its evaluator reads them too
            arrays["mu_s"], arrays["sigma_s"] = mean, cov
            continue
        arrays[f"stream.{name}.mu"], arrays[f"stream.{name}.sigma"] = mean, cov
        arrays[f"stream.{name}.n"] = np.asarray(summary.n, dtype=np.int64)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def read_reference(path: str | Path, feature_dim: int | None = None) -> FeatureSet:
    """The statistics of an ADM-layout ``.npz``; ``DataError`` naming the file and the key when unusable."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"reference statistics {path}: cannot read it as an .npz file ({exc})") from None
    with data:
        missing = [k for k in ("mu", "sigma") if k not in data.files]
        if missing:
            raise DataError(f"reference statistics {path}: no {' or '.join(missing)} array (expected the ADM "
                            f"layout: mu (d,) and sigma (d, d); found {', '.join(data.files) or 'nothing'}); "
                            f"make one with `specmatch stats`")
        mu, sigma = data["mu"].astype(np.float64), data["sigma"].astype(np.float64)
        d = mu.shape[0] if mu.ndim == 1 else -1
        if mu.ndim != 1 or sigma.shape != (d, d) or (feature_dim is not None and d != feature_dim):
            want = f"{feature_dim}" if feature_dim is not None else "d"
            raise DataError(f"reference statistics {path}: mu {mu.shape} and sigma {sigma.shape} are not ({want},) "
                            f"and ({want}, {want}); the file was made with another feature network")
        n = int(data["n"]) if "n" in data.files else 0
        features = data["features"].astype(np.float64) if "features" in data.files else None
        network = str(data["network"]) if "network" in data.files else "unrecorded (ADM reference file?)"
        streams = _streams(data, n, path)
    return FeatureSet(n=n, mean=mu, cov=sigma, features=features, network=network, streams=streams)


def _streams(data, n: int, path: Path) -> dict[str, FeatureSet]:
    """Feature-stream moments of a reference file: ``stream.<name>.mu/.sigma/.n`` and ADM's ``mu_s/sigma_s``."""
    names = {k[len("stream."):-len(".mu")] for k in data.files if k.startswith("stream.") and k.endswith(".mu")}
    keys = {name: (f"stream.{name}.mu", f"stream.{name}.sigma", f"stream.{name}.n") for name in names}
    if ADM_SPATIAL_STREAM not in keys and "mu_s" in data.files and "sigma_s" in data.files:
        keys[ADM_SPATIAL_STREAM] = ("mu_s", "sigma_s", "n")
    out = {}
    for name, (mu_key, sigma_key, n_key) in keys.items():
        if sigma_key not in data.files:
            raise DataError(f"reference statistics {path}: {mu_key} without {sigma_key}")
        mu, sigma = data[mu_key].astype(np.float64), data[sigma_key].astype(np.float64)
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise DataError(f"reference statistics {path}: {mu_key} {mu.shape} and {sigma_key} {sigma.shape} are "
                            f"not (d,) and (d, d)")
        count = int(data[n_key]) if n_key in data.files else n
        out[name] = FeatureSet(n=count, mean=mu, cov=sigma, network=f"{name} stream of {path.name}")
    return out
