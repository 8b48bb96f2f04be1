"""What built components look like to the engine (``typing.Protocol``s; no implementations here).

The engine depends only on these shapes, so a third-party autoencoder or regularizer works if it has them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import Tensor


@runtime_checkable
class Posterior(Protocol):
    """A latent distribution: ``sample(generator)``, ``mode()``, and ``kl()`` per sample (B,)."""

    mean: "Tensor"

    def sample(self, generator: Optional["torch.Generator"] = None) -> "Tensor": ...
    def mode(self) -> "Tensor": ...
    def kl(self) -> "Tensor": ...


@runtime_checkable
class Autoencoder(Protocol):
    """An ``nn.Module`` mapping images in its pixel range to a posterior over (C, H/f, W/f) latents.

    Optional: ``adapt_state_dict(state) -> state`` renames weights of another naming to the module's own
    before ``autoencoder.init`` loads them; ``to_diffusers()`` returns a diffusers ``AutoencoderKL`` with the
    same weights (``specmatch export --format diffusers``).
    """

    latent_channels: int
    downsample_factor: int

    def encode(self, x: "Tensor") -> Posterior: ...
    def decode(self, z: "Tensor") -> "Tensor": ...

    @property
    def encoder_last_layer(self) -> "Tensor": ...   # reference weight for adaptive weights on encoder terms
    @property
    def decoder_last_layer(self) -> "Tensor": ...   # ... and on reconstruction / adversarial terms


@attrs.frozen(kw_only=True)
class PairContext:
    """What a pair transform may use: the step, a per-step generator, and whether we are training."""

    step: int
    generator: Any  # torch.Generator
    training: bool
    downsample_factor: int
    encode: Optional[Callable[["Tensor"], Posterior]] = None  # for transforms that re-encode (EQ-VAE)


@attrs.frozen(kw_only=True)
class RegularizerInputs:
    """The read-only record every active regularizer receives once per autoencoder step.

    ``z`` is the sampled latent before pair transforms; ``z_dec``/``target`` are after them, and ``x_hat`` is
    the decoder output for ``z_dec``. ``decode``/``encode`` run with gradients. ``reconstruction_loss``
    is the engine's full reconstruction loss (pixel + perceptual), for terms that re-decode transformed
    latents (EQ-VAE, scale equivariance). ``features`` are the alignment target's teacher features (computed
    once per step, only when a term needs them).
    """

    x: "Tensor"
    posterior: Posterior
    z: "Tensor"
    z_dec: "Tensor"
    target: "Tensor"
    x_hat: "Tensor"
    step: int
    generator: Any
    decode: Callable[["Tensor"], "Tensor"]
    encode: Callable[["Tensor"], Posterior]
    reconstruction_loss: Callable[["Tensor", "Tensor"], "Tensor"]
    downsample_factor: int
    features: Optional["Tensor"] = None


@runtime_checkable
class LatentRegularizer(Protocol):
    """A latent regularizer. ``loss`` returns a scalar tensor, or ``(scalar, {"name": float-like})`` logs.

    A regularizer whose spec says ``transforms_pair=True`` also has
    ``transform_pair(z, target, ctx: PairContext) -> (z, target)``, called before decoding, in recipe order;
    the transformed target then feeds every reconstruction term (pixel, perceptual, adversarial).
    Regularizers that are ``nn.Module``s with parameters are optimised with the autoencoder.
    """

    def loss(self, inputs: RegularizerInputs) -> Any: ...


@runtime_checkable
class AlignmentTarget(Protocol):
    """A frozen teacher: images in [-1, 1] (B, 3, H, W) -> features (B, D, gh, gw)."""

    feature_dim: int
    is_stand_in: bool

    def __call__(self, images: "Tensor") -> "Tensor": ...
    def describe(self) -> Mapping[str, Any]: ...


@runtime_checkable
class Denoiser(Protocol):
    """``forward(x_t, t, y=None) -> prediction`` on normalised latents of the autoencoder's shape.

    ``x_t`` is (B, C, h, w); ``t`` is (B,) in [0, 1] with 1 = noise (every objective maps its own time to
    this); the prediction has ``x_t``'s shape and means what the objective says (velocity, noise, ...).
    ``y`` holds labels 0..num_classes-1, and index ``num_classes`` is the null class (``null_class``); the
    engine drops labels for guidance, never the network.

    An *alignable* denoiser (``DenoiserSpec(alignable=True)``) has ``tap_widths`` (the feature width of tap
    k = 1..len) and, given ``return_hidden_at=k``, returns ``(prediction, hidden)``: tokens (B, N, D) in
    row-major order of a square grid, or a feature map (B, D, gh, gw).
    """

    def forward(self, x: "Tensor", t: "Tensor", y: Optional["Tensor"] = None) -> "Tensor": ...


@attrs.frozen(kw_only=True)
class DenoiserRegularizerInputs:
    """What a denoiser regularizer receives once per micro-batch; fields it did not declare in ``needs`` are
    None. ``hidden`` is the denoiser's output at the term's tap (tokens (B, N, D) or a map (B, D, gh, gw));
    ``features`` the teacher's features (B, D_t, gh, gw) of ``images``, the clean images (B, 3, H, W) in
    [-1, 1] the latents ``x0`` came from (the same flip); ``t`` the times (B,) the denoiser saw."""

    x0: "Tensor"
    t: Optional["Tensor"]
    step: int
    hidden: Optional["Tensor"] = None
    features: Optional["Tensor"] = None
    images: Optional["Tensor"] = None


@runtime_checkable
class DenoiserRegularizer(Protocol):
    """An ``nn.Module`` whose parameters (e.g. a projector) train with the denoiser and are dropped after.

    ``loss`` returns a scalar tensor, or ``(scalar, {"name": float-like})`` with extra logs.
    """

    def loss(self, inputs: DenoiserRegularizerInputs) -> Any: ...


@attrs.frozen(kw_only=True)
class FeatureSet:
    """What a set metric sees of one image set: N, the feature mean (d,) and covariance (d, d) in float64
    (numpy arrays), and ``features`` (n, d), a seeded random subset of at most ``subset_capacity`` rows,
    or ``None`` when only the moments are known (a reference file without features). ``mean`` and ``cov``
    are ``None`` when the evaluation has no pool-feature network (only feature streams ran).

    ``streams``: stream name -> the summary of each ``FeatureStream`` the metrics declared (what the stream's
    accumulator returns from ``summary()``, e.g. a ``FeatureSet`` of the stream's moments). A reference file
    holds the streams it was written with (ADM's ``mu_s``/``sigma_s`` are the ``inception-spatial`` stream)."""

    n: int
    mean: Any
    cov: Any
    features: Any = None
    network: str = ""
    streams: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class FeatureStream:
    """A feature stream a set metric asks the engine to accumulate over every image set it evaluates.

    A set metric lists them in its ``feature_streams`` attribute (a tuple; absent = none). Per batch (after the
    protocol's quantisation) the engine calls each distinct ``network`` once (``network(images) -> {output:
    (B, d) tensor}``, images (B, 3, H, W) in [-1, 1] on the evaluation device) and feeds ``outputs[output]``
    with the batch's item indices to this stream's accumulator. The accumulator is made per pass and image set
    by ``accumulator(size, seed)`` (``size``: items in the pass) and has ``update(features, items)``,
    ``state() -> {name: tensor}``, ``load(state)`` and ``summary()``; its tensors must be sums over items, so
    the engine adds the per-process states with one all-reduce and saves and resumes them (see
    ``specmatch.metrics.streaming`` for ``StreamMoments`` and ``SplitSoftmaxKL``). ``compute(real, fake)``
    then reads ``real.streams[name]``, the ``summary()`` of the totals.

    Metrics that declare the same ``name`` share one accumulator (so sFID and IS, or two metrics on one
    DINOv2 stream, compute the network once); they must mean the same network, output and accumulator.
    ``sets``: the image sets the metric reads the stream of ("fake" alone for the Inception Score: the real
    images and a reference file need not have it). ``network_name`` is recorded with the metric's provenance.
    """

    name: str
    network: Any = attrs.field(eq=False)
    output: str
    accumulator: Callable[[int, int], Any] = attrs.field(eq=False)
    network_name: str = ""
    sets: tuple[str, ...] = ("real", "fake")


@runtime_checkable
class Metric(Protocol):
    """An evaluation metric (kind ``metric``). Which method the engine calls depends on the spec:

    * ``MetricSpec(per_image=True)``: ``per_image(real, fake) -> (B,)`` tensor, one value per image pair
      (images in [-1, 1], after the protocol's quantisation); the engine reports the mean over all pairs.
    * otherwise ``compute(real: FeatureSet, fake: FeatureSet) -> {name: float}``, called once at the end; with
      ``needs_features=True`` both sets carry ``features`` (the engine skips the metric, with a note, when a
      reference has none). A set metric may declare ``feature_streams`` (a tuple of ``FeatureStream``): its
      inputs then come from ``real.streams``/``fake.streams`` (the engine skips it, with a note, when a
      reference lacks one of them), and it runs without the pool-feature network too.
    """


@runtime_checkable
class Diagnostic(Protocol):
    """A latent diagnostic (kind ``diagnostic``): ``run(autoencoder, images)`` with images (N, 3, H, W) in
    [-1, 1] on the autoencoder's device returns a JSON-able report (with its ``settings`` and ``n``);
    ``scalars(report)`` returns the flat numbers written to ``metrics.json``. A spec with ``figures`` also
    needs ``write_figures(report, folder)`` (not part of this protocol: older diagnostics have none)."""

    def run(self, autoencoder: Any, images: "Tensor") -> Mapping[str, Any]: ...
    def scalars(self, report: Mapping[str, Any]) -> Mapping[str, float]: ...
