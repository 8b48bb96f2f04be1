"""Spec records: what a plugin registers, before anything is built.

A spec names a component, points at its factory and its typed parameters (both may be lazy
``"package.module:attribute"`` strings, so listing and validating never import model code) and states
static facts the recipe checker uses. Nothing here imports torch.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import attrs

from .errors import ParamError, PluginError

#: Plugin API version of this specmatch. A spec declaring a newer ``api`` is refused with a clear message.
PLUGIN_API = 1

_NAME_RE = re.compile(r"^[a-z0-9]+(?:[-.][a-z0-9]+)*$")


def normalise_name(name: str) -> str:
    """Registry names are lower-case kebab-case: ``"Scale_Equivariance"`` -> ``"scale-equivariance"``."""
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def _check_name(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not _NAME_RE.match(value):
        raise ValueError(f"component name {value!r} must be lower-case kebab-case, e.g. 'my-regularizer'")


@attrs.frozen(kw_only=True)
class Provider:
    """Where a component or plugin comes from: a distribution (or a local file) and the module."""

    distribution: str
    version: str
    plugin: str  # registration name, e.g. "specmatch-wavelet:wavelet" or "specmatch.plugins.autoencoders"
    builtin: bool = False
    location: str = ""  # the plugin's module file (an entry module, or the local plugin file)
    editable: bool = False  # an editable install (pip install -e): its source may change without a new version

    def __str__(self) -> str:
        return f"{self.distribution} {self.version}" + (" (builtin)" if self.builtin else "")


def resolve_reference(ref: Any, *, what: str) -> Any:
    """Turn a lazy ``"pkg.module:attr"`` reference into the object; other values pass through."""
    if not isinstance(ref, str):
        return ref
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise PluginError(f"{what}: {ref!r} is not a 'package.module:attribute' reference")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the plugin's own import failed: say whose and why
        raise PluginError(f"{what}: cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(f"{what}: module {module_name!r} has no attribute {attr!r}") from None
    return obj


@attrs.frozen(kw_only=True)
class FileNeed:
    """A file or folder a component will read, so ``validate`` can check that it exists before training.

    ``param`` is the key in the component's ``params`` table that names it (where the problem is reported);
    ``path`` is the value as written: ``~`` and paths relative to the recipe that set it are resolved by core.
    """

    param: str
    path: str
    what: str  # e.g. "DINOv2 weights file", "image folder"
    folder: bool = False  # a folder, not a file


#: Reference layers an adaptive weight may use (``[regularizers.adaptive] layer``).
ADAPTIVE_LAYERS = ("encoder.last", "decoder.last")


def default_adaptive_layer(needs: frozenset[str]) -> str:
    """The reference layer of ``adaptive = {}`` (``layer = ""``): the encoder for terms on teacher features."""
    return "encoder.last" if "features" in needs else "decoder.last"


@attrs.frozen(kw_only=True)
class Facts:
    """Static facts about a component, computed from its params without torch (``spec.facts(params)``).

    Every field is optional: ``None`` (or empty) means "not declared", and the cross-check that needs it is
    skipped. Which fields apply depends on the kind:

    - autoencoder: ``latent_channels`` and ``downsample_factor`` (image side / latent side);
    - dataset: ``resolution`` (image side in pixels, a multiple of the downsampling factor) and ``labelled``
      (``True``: items carry class labels, ``False``: every label is 0 and ``num_classes`` is 0, so a
      class-conditional denoiser is refused);
    - denoiser: ``depth``, the number of alignment taps (``tap_widths``) a denoiser regularizer may pick;
    - alignment: ``feature_dim`` and ``token_grid`` of the teacher (informational);
    - sampler: ``needs_labels``, the params key whose value needs a class-conditional denoiser (e.g.
      ``"cfg_scale"`` when it is not 1), or ``""``;
    - any kind: ``check_latent(shape)``, called with the latent shape ``(C, H, W)`` when it is known, which
      raises :class:`ParamError` when the component cannot work on that latent (a DiT patch size that does
      not divide H, a DCT block size that does not divide it); and ``files``, the files it will read.
    """

    latent_channels: int | None = None
    downsample_factor: int | None = None
    resolution: int | None = None
    labelled: bool | None = None
    depth: int | None = None
    feature_dim: int | None = None
    token_grid: tuple[int, int] | None = None
    needs_labels: str = ""
    check_latent: Callable[[tuple[int, int, int]], None] | None = attrs.field(default=None, eq=False)
    files: tuple[FileNeed, ...] = attrs.field(default=(), converter=tuple)


def _positional_arity(fn: Callable) -> int:
    """How many positional arguments ``fn`` takes (a ``*args`` counts as many)."""
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 99
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


@attrs.frozen(kw_only=True)
class ComponentSpec:
    """Base of all spec records.

    ``factory(params, ctx: BuildContext)`` builds the component; ``params`` is an attrs class whose fields
    (with ``metadata={"doc": ...}``) are the recipe's ``params`` table. Both may be lazy references.
    ``default_for_kind=True`` makes it the component used when a recipe omits its kind's table (only for
    kinds whose table may be omitted, e.g. ``[objective]``; one per kind). ``version`` is the component's own
    version: change it when its behaviour changes, and the stages that use it run again instead of being
    reused (see :mod:`specmatch.core.fingerprint`). ``facts(params) -> Facts`` (optional, may be lazy too, must not import torch) states what ``validate``
    cross-checks; it raises :class:`ParamError` for a value the factory would refuse. ``facts(params, ctx)``
    also gets a :class:`BuildContext` whose ``resolve_path`` finds files relative to the recipe.
    """

    kind: ClassVar[str] = ""

    name: str = attrs.field(converter=normalise_name, validator=_check_name)
    factory: Any
    params: Any = None
    summary: str = ""
    aliases: tuple[str, ...] = attrs.field(default=(), converter=lambda xs: tuple(normalise_name(x) for x in xs))
    api: int = PLUGIN_API
    provider: Provider | None = attrs.field(default=None, eq=False)
    facts: Any = None
    default_for_kind: bool = False
    version: str = ""

    def params_class(self) -> type | None:
        cls = resolve_reference(self.params, what=f"{self.kind} {self.name!r} params")
        if cls is not None and not attrs.has(cls):
            raise PluginError(f"{self.kind} {self.name!r}: params must be an attrs class, got {cls!r}")
        return cls

    def factory_callable(self) -> Callable[..., Any]:
        fn = resolve_reference(self.factory, what=f"{self.kind} {self.name!r} factory (from {self.provider})")
        if not callable(fn):
            raise PluginError(f"{self.kind} {self.name!r}: factory {self.factory!r} is not callable")
        return fn

    def facts_for(self, params: Any, ctx: "BuildContext | None" = None) -> Facts:
        """The component's :class:`Facts` for these params (empty when the spec declares no ``facts``).

        A facts function of two arguments also receives ``ctx`` (a :class:`BuildContext` with the recipe's
        folder, for facts read from a file a relative path names). A :class:`ParamError` passes through (a bad
        value); any other failure is the plugin's bug.
        """
        if self.facts is None:
            return Facts()
        fn = resolve_reference(self.facts, what=f"{self.kind} {self.name!r} facts (from {self.provider})")
        try:
            result = fn(params, ctx or BuildContext()) if _positional_arity(fn) >= 2 else fn(params)
        except ParamError:
            raise
        except Exception as exc:
            raise PluginError(f"{self.kind} {self.name!r} (from {self.provider}): its facts function failed: "
                              f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(result, Facts):
            raise PluginError(f"{self.kind} {self.name!r} (from {self.provider}): facts must return a "
                              f"specmatch.Facts, got {type(result).__name__}")
        return result

    def info(self) -> dict[str, Any]:
        """Static, kind-specific facts shown by ``components info``."""
        return {}


@attrs.frozen(kw_only=True)
class AutoencoderSpec(ComponentSpec):
    kind: ClassVar[str] = "autoencoder"
    pixel_range: tuple[float, float] = (-1.0, 1.0)

    def info(self) -> dict[str, Any]:
        return {"pixel_range": list(self.pixel_range)}


#: What a regularizer may read besides the latent. The engine computes only what active terms need.
REGULARIZER_NEEDS = frozenset({"posterior", "decoder", "encoder", "features"})


def _check_needs(instance: Any, attribute: attrs.Attribute, value: frozenset[str]) -> None:
    unknown = set(value) - REGULARIZER_NEEDS
    if unknown:
        raise ValueError(f"unknown needs {sorted(unknown)}; allowed: {sorted(REGULARIZER_NEEDS)}")


def _check_adaptive_layers(instance: Any, attribute: attrs.Attribute, value: frozenset[str] | None) -> None:
    unknown = set(value or ()) - set(ADAPTIVE_LAYERS)
    if unknown:
        raise ValueError(f"unknown adaptive_layers {sorted(unknown)}; allowed: {list(ADAPTIVE_LAYERS)}")


@attrs.frozen(kw_only=True)
class RegularizerSpec(ComponentSpec):
    """``adaptive_layers``: the reference layers whose weights the term's loss depends on (an adaptive weight
    differentiates the loss with respect to one of them). ``frozenset()``: no loss term (a pure pair
    transform), so no adaptive weight; ``None``: not declared, not checked."""

    kind: ClassVar[str] = "regularizer"
    needs: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset, validator=_check_needs)
    transforms_pair: bool = False
    adaptive_layers: frozenset[str] | None = attrs.field(
        default=None, converter=attrs.converters.optional(frozenset), validator=_check_adaptive_layers)

    def info(self) -> dict[str, Any]:
        layers = None if self.adaptive_layers is None else sorted(self.adaptive_layers)
        return {"needs": sorted(self.needs), "transforms_pair": self.transforms_pair, "adaptive_layers": layers}


@attrs.frozen(kw_only=True)
class DenoiserSpec(ComponentSpec):
    kind: ClassVar[str] = "denoiser"
    alignable: bool = False  # offers hidden states at its taps (``return_hidden_at``, ``tap_widths``)

    def info(self) -> dict[str, Any]:
        return {"alignable": self.alignable}


#: What a denoiser regularizer may read besides the denoiser's prediction.
DENOISER_REGULARIZER_NEEDS = ("hidden", "features", "images")


def _check_denoiser_needs(instance: Any, attribute: attrs.Attribute, value: frozenset[str]) -> None:
    unknown = set(value) - set(DENOISER_REGULARIZER_NEEDS)
    if unknown:
        raise ValueError(f"unknown needs {sorted(unknown)}; allowed: {list(DENOISER_REGULARIZER_NEEDS)}")


@attrs.frozen(kw_only=True)
class DenoiserRegularizerSpec(ComponentSpec):
    """A loss term of denoiser training (REPA). ``needs``: ``"hidden"`` (the denoiser's hidden states at one
    tap), ``"features"`` (the ``[alignment]`` teacher's features of the clean images), ``"images"`` (the clean
    images). ``tap_param`` names the params key holding the 1-based tap index (``validate`` checks it against
    the denoiser's ``depth`` fact); required when ``needs`` has ``"hidden"``."""

    kind: ClassVar[str] = "denoiser_regularizer"
    needs: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset, validator=_check_denoiser_needs)
    tap_param: str | None = None

    def __attrs_post_init__(self) -> None:
        if "hidden" in self.needs and not self.tap_param:
            raise ValueError("needs 'hidden' but names no tap_param (the params key of the tap index)")

    def info(self) -> dict[str, Any]:
        return {"needs": sorted(self.needs), "tap_param": self.tap_param}


@attrs.frozen(kw_only=True)
class AlignmentSpec(ComponentSpec):
    kind: ClassVar[str] = "alignment"
    stand_in: bool = False  # a labelled substitute for a foundation model (no real weights offline)

    def info(self) -> dict[str, Any]:
        return {"stand_in": self.stand_in}


@attrs.frozen(kw_only=True)
class DatasetSpec(ComponentSpec):
    kind: ClassVar[str] = "dataset"


@attrs.frozen(kw_only=True)
class ObjectiveSpec(ComponentSpec):
    kind: ClassVar[str] = "objective"


@attrs.frozen(kw_only=True)
class SamplerSpec(ComponentSpec):
    kind: ClassVar[str] = "sampler"


@attrs.frozen(kw_only=True)
class PerceptualSpec(ComponentSpec):
    kind: ClassVar[str] = "perceptual"


@attrs.frozen(kw_only=True)
class DiscriminatorSpec(ComponentSpec):
    kind: ClassVar[str] = "discriminator"


@attrs.frozen(kw_only=True)
class MetricSpec(ComponentSpec):
    """An evaluation metric. ``per_image=True``: the built object maps a pair of image batches to one value per
    image (``per_image(real, fake) -> (B,)``), averaged over the pairs (reconstruction only). Otherwise it maps
    two feature-set summaries to named numbers (``compute(real, fake) -> {name: float}``); ``needs_features``
    says it reads the kept feature subset, not only the moments (KID, precision and recall)."""

    kind: ClassVar[str] = "metric"
    per_image: bool = False
    needs_features: bool = False

    def info(self) -> dict[str, Any]:
        return {"per_image": self.per_image, "needs_features": self.needs_features}


def _check_output(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if value and (not value.endswith(".json") or "/" in value or "\\" in value or value.startswith(".")):
        raise ValueError(f"output must be a plain .json file name in the run folder, got {value!r}")


def _check_figures(instance: Any, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    for name in value:
        if not name.endswith(".png") or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"figures must be plain .png file names in the run folder, got {name!r}")


@attrs.frozen(kw_only=True)
class DiagnosticSpec(ComponentSpec):
    """A latent diagnostic of an autoencoder: the built object has ``run(autoencoder, images) -> report`` (a
    JSON-able dict) and ``scalars(report) -> {name: float}``; ``output`` names the JSON file of the run folder
    the full report is written to ("" = scalars only).

    ``figures`` names the PNG files the diagnostic draws; the built object then also has
    ``write_figures(report, folder)``, called after ``run`` on the main process, which may use what that
    ``run`` kept (e.g. the latents). ``during_training``: cheap enough for ``train.autoencoder.analyze_every``
    (its scalars are logged as ``diag/<name>/<scalar>``)."""

    kind: ClassVar[str] = "diagnostic"
    output: str = attrs.field(default="", validator=_check_output)
    figures: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_check_figures)
    during_training: bool = False

    def info(self) -> dict[str, Any]:
        return {"output": self.output, "figures": list(self.figures), "during_training": self.during_training}


def param(default: Any = attrs.NOTHING, *, doc: str, ge: float | None = None, gt: float | None = None,
          le: float | None = None, lt: float | None = None, choices: tuple[Any, ...] | None = None,
          factory: Callable[[], Any] | None = None, path: bool = False, finite: bool = True) -> Any:
    """An attrs field for component parameters, with the doc and range that ``validate`` checks.

    Ranges and choices are checked by the recipe checker (every problem reported at once), not by attrs
    validators (which stop at the first failure). ``path=True`` marks a file or folder path: a relative
    value is resolved against the folder of the recipe file that set it (a base's own folder under
    ``extends``). Numbers must be finite (no nan/inf) unless ``finite=False``.
    """
    meta = {"doc": doc, "ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "path": path,
            "finite": finite}
    if factory is not None:
        return attrs.field(factory=factory, metadata=meta)
    return attrs.field(default=default, metadata=meta)


@attrs.frozen(kw_only=True)
class BuildContext:
    """What a factory may use: where the recipe lives, where outputs go, and what is already built.

    Device and dtype are owned by the engine: factories build on the CPU in float32 and the engine moves
    modules with accelerate. ``upstream`` holds already built components and facts, e.g.
    ``upstream["autoencoder"]``, ``upstream["latent_shape"]`` (C, h, w), ``upstream["num_classes"]``.
    """

    recipe_dir: Path = Path(".")
    output_dir: Path | None = None
    upstream: Mapping[str, Any] = attrs.field(factory=dict)
    seed: int = 0

    def resolve_path(self, path: str | Path) -> Path:
        """A user path from a recipe: absolute, ``~``, or relative to the recipe's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.recipe_dir / p)
