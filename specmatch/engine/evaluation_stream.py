"""Chunked, resumable accumulation of evaluation statistics: memory does not grow with N.

An evaluation is a list of *passes* over numbered items (reconstruction pairs, reference images, samples).
Each pass runs in chunks of ``checkpoint_every`` item indices; inside a chunk process r takes the indices
``start + r, start + r + world, ...``. Every batch updates accumulators (``metrics.streaming``): feature
moments in float64, a bounded seeded subset of features, per-image metric sums, and the few images of the
grids. After each chunk the per-process partial statistics are summed over processes (one all-reduce per
tensor) and the main process writes them atomically, with the cursor and the stage key, to
``<run>/evaluation/statistics.safetensors``. A restarted evaluation whose key matches loads them into the main
process's accumulators (the others start at zero, so sums stay right) and continues after the last saved
chunk; the numbers equal those of an uninterrupted run because every item is processed once and its noise
depends on its index only.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor

from specmatch.metrics.streaming import FeatureMoments, FeatureSubset, MeanOfValues

from .checkpoint import atomic_write, safetensors_problem

log = logging.getLogger(__name__)

#: a batch of one pass: the global item indices this process handled and named image sets ("real", "fake")
Batch = tuple[list[int], dict[str, Tensor]]
#: (start, stop) -> this process's batches of the items start..stop-1
Producer = Callable[[int, int], Iterable[Batch]]


class EvaluationStream:
    """Every accumulator of an evaluation, by name, and their saving, loading and reduction.

    ``passes``: pass name -> (number of items, image set names). ``per_image``: metric name -> object with
    ``per_image(real, fake)``, for passes with both a "real" and a "fake" set. ``features``: images -> (B, d)
    features (``None``: no feature statistics). ``prepare``: the protocol's image preprocessing (quantisation,
    JPEG round trip), applied before the features and the per-image metrics. ``streams``: the
    ``FeatureStream``s the set metrics declared (one accumulator per stream name, pass and image set; each
    distinct network runs once per batch).
    """

    def __init__(self, *, passes: dict[str, tuple[int, tuple[str, ...]]], per_image: dict[str, Any],
                 features: Callable[[Tensor], Tensor] | None, feature_dim: int, subset: int, seed: int,
                 image_shape: tuple[int, ...], grid: int, prepare: Callable[[Tensor], Tensor] = lambda x: x,
                 streams: Sequence[Any] = ()):
        self.passes, self.per_image, self.features, self.prepare = passes, per_image, features, prepare
        self.streams, self.stream_sets = _distinct_streams(streams)
        self.acc: dict[str, Any] = {}
        self.cursor: dict[str, int] = {name: 0 for name in passes}
        #: seconds spent before the statistics it continued from (None: a file that does not record them)
        self.seconds_before: float | None = 0.0
        pixels = int(torch.tensor(image_shape).prod())
        self.image_shape = tuple(image_shape)
        for name, (size, sets) in passes.items():
            for s in sets:
                if features is not None:
                    self.acc[f"{name}.{s}.moments"] = FeatureMoments(feature_dim)
                    self.acc[f"{name}.{s}.subset"] = FeatureSubset(size, feature_dim, subset, seed)
                for stream in self.streams:
                    if s in self.stream_sets[stream.name]:
                        self.acc[f"{name}.{s}.stream.{stream.name}"] = stream.accumulator(size, seed)
                if grid:
                    self.acc[f"{name}.{s}.grid"] = FeatureSubset(size, pixels, grid, seed, first=True)
            if {"real", "fake"} <= set(sets):
                for metric in per_image:
                    self.acc[f"{name}.{metric}"] = MeanOfValues()

    # -- accumulating ----------------------------------------------------------------------------------------

    @torch.no_grad()
    def consume(self, name: str, items: list[int], images: dict[str, Tensor]) -> None:
        prepared = {s: self.prepare(x) for s, x in images.items()}
        for s, x in prepared.items():
            grid = self.acc.get(f"{name}.{s}.grid")
            if grid is not None:
                grid.update(x.detach().float().cpu().flatten(1), items)
            if self.features is not None:
                f = self.features(x)
                self.acc[f"{name}.{s}.moments"].update(f)
                self.acc[f"{name}.{s}.subset"].update(f, items)
            outputs: dict[int, dict[str, Tensor]] = {}
            for stream in self.streams:  # each network once per batch, whatever number of streams read it
                if s not in self.stream_sets[stream.name]:
                    continue
                if id(stream.network) not in outputs:
                    outputs[id(stream.network)] = stream.network(x)
                self.acc[f"{name}.{s}.stream.{stream.name}"].update(outputs[id(stream.network)][stream.output],
                                                                      items)
        if "real" in prepared and "fake" in prepared:
            for metric, obj in self.per_image.items():
                self.acc[f"{name}.{metric}"].update(obj.per_image(prepared["real"], prepared["fake"]))

    def run_pass(self, name: str, produce: Producer, *, chunk: int, save: Callable[[], None],
                 on_chunk: Callable[[str, int], None] | None = None, progress: bool = False,
                 world: int = 1) -> None:
        """Items ``cursor[name] .. size - 1`` in chunks of ``chunk``; ``save()`` after each chunk. ``progress``
        shows a bar of the items done over all ``world`` processes (on the process that should print)."""
        from tqdm.auto import tqdm

        size = self.passes[name][0]
        start = self.cursor[name]
        if start:
            log.info(f"[evaluation] {name}: resuming after {start} of {size} items")
        with tqdm(total=size, initial=start, desc=f"evaluation {name}", disable=not progress or start >= size,
                  dynamic_ncols=True) as bar:
            while start < size:
                stop = min(size, start + chunk)
                for items, images in produce(start, stop):
                    self.consume(name, items, images)
                    bar.update(min(len(items) * world, stop - bar.n))  # the others' batches are as large
                self.cursor[name] = stop
                save()
                bar.n = stop
                bar.refresh()
                if on_chunk is not None:
                    on_chunk(name, stop)
                start = stop

    # -- totals, saving and loading -------------------------------------------------------------------------

    def _tensors(self) -> dict[str, Tensor]:
        return {f"{name}/{k}": v for name, a in sorted(self.acc.items()) for k, v in a.state().items()}

    def reduced(self, accelerator) -> dict[str, Tensor]:
        """The accumulators' tensors summed over processes (every process gets the totals)."""
        tensors = self._tensors()
        if accelerator.num_processes == 1:
            return tensors
        return {k: accelerator.reduce(v.to(accelerator.device), reduction="sum").cpu() for k, v in tensors.items()}

    def totals(self, accelerator) -> "EvaluationStream":
        """A copy of this stream holding the totals over processes (for the final metrics)."""
        total = object.__new__(EvaluationStream)
        total.__dict__.update(self.__dict__)
        total.acc = {name: _clone_empty(a) for name, a in self.acc.items()}
        total._load_tensors(self.reduced(accelerator))
        return total

    def _load_tensors(self, tensors: dict[str, Tensor]) -> None:
        for name, a in self.acc.items():
            a.load({k.split("/", 1)[1]: v for k, v in tensors.items() if k.split("/", 1)[0] == name})

    def save(self, path: Path, key: str, accelerator, seconds: float | None = None) -> None:
        """Write the totals so far with the cursor, the pass sizes, the key and (when known) the seconds spent."""
        from safetensors.torch import save_file

        tensors = self.reduced(accelerator)
        if accelerator.is_main_process:
            sizes = {name: size for name, (size, _) in self.passes.items()}
            meta = {"key": key, "cursor": json.dumps(self.cursor), "sizes": json.dumps(sizes)}
            if seconds is not None:
                meta["seconds"] = f"{seconds:.3f}"
            with atomic_write(path) as tmp:
                save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
        accelerator.wait_for_everyone()

    def load(self, path: Path, key: str, accelerator) -> bool:
        """Continue from saved statistics of the same key (the main process holds them); False if none fit."""
        from safetensors.torch import load_file

        meta = saved_metadata(path)
        if meta is None:
            return False
        if meta.get("key") != key:
            log.info(f"[evaluation] {path} belongs to other settings or models; starting over")
            return False
        tensors = load_file(str(path))
        if set(tensors) != set(self._tensors()) or any(tensors[k].shape != v.shape
                                                       for k, v in self._tensors().items()):
            log.info(f"[evaluation] {path} holds other statistics; starting over")
            return False
        self.cursor.update(json.loads(meta["cursor"]))
        self.seconds_before = float(meta["seconds"]) if "seconds" in meta else None
        if accelerator.is_main_process:
            self._load_tensors(tensors)
        return True

    # -- results ---------------------------------------------------------------------------------------------

    def grid(self, name: str, s: str) -> Tensor | None:
        keep = self.acc.get(f"{name}.{s}.grid")
        if keep is None:
            return None
        rows = keep.rows[keep.filled > 0]
        return rows.reshape(len(rows), *self.image_shape)

    def mean(self, name: str, metric: str) -> float:
        return self.acc[f"{name}.{metric}"].mean()

    def moments(self, name: str, s: str) -> FeatureMoments:
        return self.acc[f"{name}.{s}.moments"]

    def subset(self, name: str, s: str) -> FeatureSubset:
        return self.acc[f"{name}.{s}.subset"]

    def stream_summaries(self, name: str, s: str) -> dict[str, Any]:
        """Stream name -> its accumulator's ``summary()`` for pass ``name``, image set ``s``."""
        return {stream.name: self.acc[f"{name}.{s}.stream.{stream.name}"].summary() for stream in self.streams
                if f"{name}.{s}.stream.{stream.name}" in self.acc}


def saved_metadata(path: Path) -> dict[str, str] | None:
    """The metadata ``EvaluationStream.save`` wrote with the statistics at ``path`` (key, cursor, pass sizes,
    seconds; JSON strings), or None when there is no intact file."""
    from safetensors import safe_open

    if not path.is_file() or safetensors_problem(path):
        return None
    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


def saved_progress(path: Path) -> tuple[dict[str, int], dict[str, int]] | None:
    """(items done, items in all) per pass of the statistics at ``path``; None when there is no intact file or
    it does not record the pass sizes (written by an older specmatch)."""
    meta = saved_metadata(path)
    if meta is None or "sizes" not in meta:
        return None
    return json.loads(meta["cursor"]), json.loads(meta["sizes"])


def _distinct_streams(streams: Sequence[Any]) -> tuple[list[Any], dict[str, set[str]]]:
    """One stream per name, and the image sets any metric reads it from; two metrics declaring one name must
    mean the same network output."""
    by_name: dict[str, Any] = {}
    sets: dict[str, set[str]] = {}
    for stream in streams:
        if "/" in stream.name:
            raise ValueError(f"feature stream names may not contain '/', got {stream.name!r}")
        first = by_name.setdefault(stream.name, stream)
        if first is not stream and (first.output != stream.output or first.network is not stream.network):
            raise ValueError(f"two metrics declare the feature stream {stream.name!r} with different networks "
                             f"or outputs; give one of them another name")
        sets.setdefault(stream.name, set()).update(stream.sets)
    return list(by_name.values()), sets


def _clone_empty(accumulator):
    """A fresh accumulator of the same type and shape (its tensors are then loaded)."""
    clone = object.__new__(type(accumulator))
    clone.__dict__.update(accumulator.__dict__)
    return clone
