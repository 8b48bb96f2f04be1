"""Stage 4: reconstruction, generation and latent-spectrum metrics of the trained autoencoder and denoiser.

Reconstructions decode a posterior sample by default (the authors' protocol); generation metrics compare N
samples with reference statistics from a file (``[evaluation] reference``) or with a seeded random subset of N
training images. Everything streams in chunks (``engine/evaluation_stream.py``): memory does not grow with N,
and a killed evaluation continues from its last saved chunk. The metrics are ``metric`` plugins chosen by
``[evaluation] metrics``; the protocol (``metrics/protocols.py``), feature network and N are written next to
every number.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterator

import attrs
import torch
from torch import nn

from specmatch.core.components import FeatureSet
from specmatch.metrics.protocols import PROTOCOLS, effective

from .. import evaluation as E
from ..data import shard_indices
from ..evaluation_stream import EvaluationStream
from ..contracts import check_objective
from ..run_context import RunContext
from .denoiser import DenoiserResult
from .latent_stats import LatentStatsResult


log = logging.getLogger(__name__)

RECONSTRUCTION, REFERENCE, GENERATION = "reconstruction", "reference", "generation"


@attrs.frozen
class EvaluationResult:
    metrics: dict[str, Any]  # flat: metric -> number or label (feature network, protocol choices)
    originals: torch.Tensor  # the first held-out images and their reconstructions, for the grid
    reconstructions: torch.Tensor
    samples: torch.Tensor | None  # the first decoded samples in [-1, 1], None without a denoiser
    reports: dict[str, dict]  # run-folder JSON file name -> full report of a diagnostic that declares one
    provenance: dict[str, dict[str, Any]] = attrs.Factory(dict)  # metric -> protocol, network, n


def evaluation_stage(run: RunContext, autoencoder: nn.Module, stats: LatentStatsResult,
                     denoiser: DenoiserResult | None, train_set, test_set,
                     on_chunk: Callable[[str, int], None] | None = None) -> EvaluationResult:
    """``on_chunk(pass, items_done)`` runs after each saved chunk (tests interrupt there)."""
    with run.timed("evaluation"):
        return _evaluate(run, autoencoder, stats, denoiser, train_set, test_set, on_chunk)


def _metric_objects(run: RunContext, ev) -> tuple[dict[str, Any], dict[str, tuple[Any, Any]]]:
    """(per-image metrics by name, set metrics by name -> (spec, object)) of ``[evaluation] metrics``."""
    run.upstream["evaluation"] = ev
    per_image, per_set = {}, {}
    for i in range(len(ev.metrics)):
        comp = run.resolved.component(f"evaluation.metrics[{i}]")
        obj = run.build_component(comp)
        if comp.spec.per_image:
            per_image[comp.spec.name] = obj
        else:
            per_set[comp.spec.name] = (comp.spec, obj)
    return per_image, per_set


def _evaluate(run: RunContext, autoencoder, stats, denoiser, train_set, test_set, on_chunk) -> EvaluationResult:
    acc = run.accelerator
    ev = effective(run.recipe.evaluation)
    protocol = PROTOCOLS[ev.protocol]
    per_image, per_set = _metric_objects(run, ev)
    metrics: dict[str, Any] = {"protocol": ev.protocol, "recon_latent": ev.reconstruction_latent}
    if not ev.frechet:
        per_set = {}
    streams = [st for _, obj in per_set.values() for st in getattr(obj, "feature_streams", ())]
    for st in streams:  # the engine owns devices: a module network moves to the evaluation device
        if isinstance(st.network, nn.Module):
            st.network.to(acc.device)
    pool_metrics = any(not getattr(obj, "feature_streams", ()) for _, obj in per_set.values())
    network, why_not = (E.load_feature_network(ev.feature_network, run.resolved.recipe_dir, acc.device,
                                               protocol.feature_network_sha256)
                        if pool_metrics else (None, "evaluation.frechet = false or no pool-feature metrics"))
    network_name = network.describe()["name"] if network is not None else "none"
    network_sha = _network_sha256(network) if network is not None else ""
    metrics["feature_network"] = network_name
    if network is not None:
        metrics["feature_network_sha256"] = network.sha256
    else:
        log.info(f"[evaluation] no feature-set metrics: {why_not}")

    image_shape = tuple((test_set if len(test_set) else train_set)[0][0].shape)
    n_rec = min(ev.reconstruction_images, len(test_set))
    generating = denoiser is not None and ev.num_samples > 0
    passes = {RECONSTRUCTION: (n_rec, ("real", "fake"))}
    reference_file = None
    featured = network is not None or bool(streams)
    reads_real = network is not None or any("real" in st.sets for st in streams)  # else no reference is needed
    if generating:
        passes[GENERATION] = (ev.num_samples, ("fake",))
        if reads_real and ev.reference:
            from specmatch.metrics.reference import read_reference

            reference_file = read_reference(run.resolved.recipe_dir / ev.reference,
                                            network.feature_dim if network is not None else None)
        elif reads_real:
            passes[REFERENCE] = (min(ev.num_samples, len(train_set)), ("real",))
    stream = EvaluationStream(
        passes=passes, per_image=per_image, features=network, feature_dim=getattr(network, "feature_dim", 0),
        subset=ev.feature_subset, seed=run.seed("feature_subset"), image_shape=image_shape,
        grid=ev.sample_grid,
        prepare=lambda x: _protocol_images(x, ev), streams=streams)
    path = run.layout.evaluation_statistics
    key = run.plan.stage("evaluation").key
    if run.resume and stream.load(path, key, acc):
        log.info(f"[evaluation] continuing from the statistics saved in {path}")
    run.carried["evaluation"] = stream.seconds_before
    since = time.perf_counter()

    def save() -> None:
        before = stream.seconds_before
        stream.save(path, key, acc, seconds=None if before is None else before + time.perf_counter() - since)

    bs = ev.batch_size
    rank, world = acc.process_index, acc.num_processes
    shown = {"progress": acc.is_local_main_process, "world": world}  # one bar per machine, of all items
    rec_seed = run.seed("reconstruction")

    def reconstructions(start: int, stop: int) -> Iterator:
        mine = [start + i for i in shard_indices(stop - start, rank, world)]
        for s in range(0, len(mine), bs):
            items = mine[s:s + bs]
            x = torch.stack([test_set[i][0] for i in items]).to(acc.device)
            y = E.reconstruct_batch(autoencoder, x, items, latent=ev.reconstruction_latent, seed=rec_seed)
            yield items, {"real": x.float(), "fake": y.float()}

    stream.run_pass(RECONSTRUCTION, reconstructions, chunk=ev.checkpoint_every, save=save, on_chunk=on_chunk, **shown)

    if REFERENCE in passes:
        picks = E.reference_indices(len(train_set), passes[REFERENCE][0], run.seed("fid_reference"))

        def reference(start: int, stop: int) -> Iterator:
            mine = [start + i for i in shard_indices(stop - start, rank, world)]
            for s in range(0, len(mine), bs):
                items = mine[s:s + bs]
                yield items, {"real": torch.stack([train_set[picks[i]][0] for i in items]).to(acc.device)}

        stream.run_pass(REFERENCE, reference, chunk=ev.checkpoint_every, save=save, on_chunk=on_chunk, **shown)

    if generating:
        sampler = run.build("sampler")
        num_classes = run.upstream.get("num_classes", 0) if denoiser.conditional else 0

        objective = run.build("objective")
        check_objective(objective, run.resolved.component("objective").spec)

        def _generate_chunk(start: int, stop: int) -> torch.Tensor:
            """Samples start .. stop - 1, decoded, in [-1, 1], on every process. Each sample's noise and label
            come from (run seed, its index) alone, so a resumed chunk repeats exactly, whatever the batch
            size or the number of processes."""
            from ..sampling import generate

            return generate(acc, sampler, denoiser.model, objective, stats.normalizer, indices=range(start, stop),
                            latent_shape=stats.latent_shape, seed=run.seed("samples"), batch_size=bs,
                            num_classes=num_classes)

        def samples(start: int, stop: int) -> Iterator:
            # one batch per process at a time: memory stays at a batch of decoded images, whatever the chunk
            for first in range(start, stop, bs * world):
                last = min(stop, first + bs * world)
                images = _generate_chunk(first, last)
                rows = shard_indices(last - first, rank, world)
                if rows:
                    yield [first + i for i in rows], {"fake": images[rows]}

        stream.run_pass(GENERATION, samples, chunk=ev.checkpoint_every, save=save, on_chunk=on_chunk, **shown)

    total = stream.totals(acc)
    provenance: dict[str, dict[str, Any]] = {}

    def stamp(name: str, n: int, network: str, sha256: str = "") -> None:
        provenance[name] = {"protocol": ev.protocol, "network": network, "n": n}
        if sha256:  # the weights file the number came from, so two numbers can be checked for the same network
            provenance[name]["network_sha256"] = sha256

    for name in per_image:
        key_name = f"recon_{name.replace('-', '_')}"
        if n_rec:
            metrics[key_name] = total.mean(RECONSTRUCTION, name)
            stamp(key_name, n_rec, "none")
    metrics["recon_images"] = float(n_rec)
    if featured and n_rec >= 2:
        metrics["rn"] = float(n_rec)
        real, fake = _feature_set(total, RECONSTRUCTION, "real", network_name), \
            _feature_set(total, RECONSTRUCTION, "fake", network_name)
        for key_name, (value, net, sha) in _set_metrics(per_set, real, fake, "r", network_name, network_sha).items():
            metrics[key_name] = value
            stamp(key_name, n_rec, net, sha)

    samples_grid = None
    if generating:
        metrics["gen_samples"] = float(ev.num_samples)
        samples_grid = total.grid(GENERATION, "fake")
        if featured and ev.num_samples >= 2:
            fake = _feature_set(total, GENERATION, "fake", network_name)
            if reference_file is not None:
                real = reference_file
                metrics["gen_reference"] = f"{ev.reference} ({real.n or 'unknown'} images, {real.network})"
            elif REFERENCE not in passes:  # the metrics read the samples only (the Inception Score)
                real = FeatureSet(n=0, mean=None, cov=None, network="none")
            else:
                real = _feature_set(total, REFERENCE, "real", network_name)
                metrics["gen_reference"] = f"{real.n} random training images"
            metrics["gen_n"] = float(ev.num_samples)
            for key_name, (value, net, sha) in _set_metrics(per_set, real, fake, "gen_", network_name,
                                                            network_sha).items():
                metrics[key_name] = value
                stamp(key_name, ev.num_samples, net, sha)

    reports = _diagnostics(run, autoencoder, test_set, ev, metrics)
    originals = total.grid(RECONSTRUCTION, "real")
    reconstructions = total.grid(RECONSTRUCTION, "fake")
    empty = torch.zeros(0, *image_shape)
    return EvaluationResult(metrics=metrics, originals=originals if originals is not None else empty,
                            reconstructions=reconstructions if reconstructions is not None else empty,
                            samples=samples_grid, reports=reports, provenance=provenance)


def _diagnostics(run: RunContext, autoencoder, test_set, ev, metrics: dict[str, Any]) -> dict[str, dict]:
    """Run every ``[evaluation] diagnostics`` plugin on the first ``spectrum_images`` test images; their
    scalars go to ``metrics``, their full reports to the file each spec declares, their figures (main process)
    to the run folder."""
    n = min(ev.spectrum_images, len(test_set))
    comps = [run.resolved.component(f"evaluation.diagnostics[{i}]") for i in range(len(ev.diagnostics))]
    if not n or not comps:
        return {}
    images = torch.stack([test_set[i][0] for i in range(n)]).to(run.accelerator.device)
    reports = {}
    for comp in comps:
        diagnostic = run.build_component(comp)
        with torch.no_grad():
            report = dict(diagnostic.run(autoencoder, images))
        metrics.update({k: float(v) for k, v in diagnostic.scalars(report).items()})
        if comp.spec.output and report:
            reports[comp.spec.output] = report
        if comp.spec.figures and report and run.accelerator.is_main_process:
            diagnostic.write_figures(report, run.layout.root)  # e.g. spectrum.png, latent_pca.png
    return reports


def _protocol_images(images: torch.Tensor, ev) -> torch.Tensor:
    from specmatch.metrics.quantize import protocol_images

    return protocol_images(images, quantize=ev.quantize_uint8, jpeg_quality=ev.jpeg_quality)


def _feature_set(total: EvaluationStream, name: str, s: str, network: str) -> FeatureSet:
    streams = total.stream_summaries(name, s)
    if f"{name}.{s}.moments" not in total.acc:  # no pool-feature network: the declared streams only
        n = total.passes[name][0]
        return FeatureSet(n=n, mean=None, cov=None, network="none", streams=streams)
    moments = total.moments(name, s)
    mean, cov = moments.mean_cov()
    return FeatureSet(n=moments.n, mean=mean, cov=cov, features=total.subset(name, s).features(), network=network,
                      streams=streams)


def _network_sha256(network: Any) -> str:
    """The sha256 of the weights file a feature network was loaded from ('' when it does not say)."""
    sha = getattr(network, "sha256", None)
    if not sha and callable(getattr(network, "describe", None)):
        try:
            sha = network.describe().get("sha256")
        except Exception:  # noqa: BLE001 - a third-party network's describe() only adds a record
            sha = None
    return str(sha) if sha else ""


def _set_metrics(per_set: dict[str, tuple[Any, Any]], real: FeatureSet, fake: FeatureSet,
                 prefix: str, network: str, network_sha: str = "") -> dict[str, tuple[float, str, str]]:
    """Output key -> (value, feature network, its file's sha256) of every set metric that has its inputs."""
    out: dict[str, tuple[float, str, str]] = {}
    for name, (spec, obj) in per_set.items():
        streams = getattr(obj, "feature_streams", ())
        if streams:
            missing = [st.name for st in streams for s, fs in (("real", real), ("fake", fake))
                       if s in st.sets and st.name not in fs.streams]
            if missing:
                log.info(f"[evaluation] {name}: skipped, the reference has no {', '.join(missing)} statistics")
                continue
            used = ", ".join(dict.fromkeys(st.network_name or st.name for st in streams))
            sha = ", ".join(dict.fromkeys(h for st in streams if (h := _network_sha256(st.network))))
        elif real.mean is None or fake.mean is None:
            log.info(f"[evaluation] {name}: skipped, no pool-feature network")
            continue
        else:
            used, sha = network, network_sha
        if spec.needs_features and (real.features is None or fake.features is None):
            log.info(f"[evaluation] {name}: skipped, the reference has no features (only mu and sigma)")
            continue
        for key, value in obj.compute(real, fake).items():
            out[f"{prefix}{key}"] = (float(value), used, sha)
    return out
