"""Every registered component of every kind builds on the CPU and answers one call on a tiny input.

Each component goes through the registry, its params class (structured from a small table exactly as a
recipe's ``params`` would be, defaults for the rest) and its real factory, with a ``BuildContext`` giving
what upstream components would give the engine (the autoencoder, the teacher, the latent shape, the number
of classes). Then the kind's call contract is checked once: a dataset's item, an autoencoder's encode and
decode, a regularizer's loss and pair transform, a teacher's features, a denoiser's forward (and its hidden
tap when alignable), the objective's loss, a sampler driving a tiny denoiser, a perceptual distance and a
discriminator's logits.

Weights: the ST-LPIPS networks ship in the stlpips-pytorch wheel and are used; LPIPS needs a torchvision
backbone no wheel ships, so it is skipped naming the file it looked for; the timm teacher gets a tiny
randomly initialised ViT (timm's ``test_vit``) saved to a local file (its factory never downloads), and so does
the fd-dinov2 metric; sFID and the Inception Score need pytorch-fid's file and are skipped (their own slow tests
build it with random weights).
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import struct
from pathlib import Path
from typing import Any, Callable

import attrs
import numpy as np
import pytest
import torch

from specmatch.core.components import PairContext, Posterior, RegularizerInputs
from specmatch.core.errors import WeightsError
from specmatch.core.plugins import load_plugins
from specmatch.core.registry import Registry
from specmatch.core.kinds import KINDS
from specmatch.core.specs import BuildContext, ComponentSpec
from specmatch.core.structure import structure

REGISTRY = Registry.build(load_plugins(autoload=False))
SPECS = REGISTRY.specs

SIDE = 32  # image side of every call: divisible by the micro autoencoder's factor and big enough for AlexNet
BATCH = 2
LATENT = (4, SIDE // 2, SIDE // 2)  # micro-f2d4
NUM_CLASSES = 3

#: (kind, name) -> a small params table; anything not named keeps its default. Callables get the fixture
#: folder (``files``) and return the table.
TINY: dict[tuple[str, str], Any] = {
    ("dataset", "demo-photos"): {"resolution": SIDE, "num_images": 3, "num_test_images": 2},
    ("dataset", "image-folder"): lambda files: {"root": str(files["image_folder"]), "resolution": SIDE,
                                                "test_fraction": 0.5},
    ("dataset", "fashion-mnist"): lambda files: {"root": str(files["fashion_mnist"]), "resolution": SIDE},
    ("autoencoder", "sdvae"): {"preset": "micro-f2d4"},
    ("autoencoder", "diffusers-vae"): lambda files: {"path": str(files["diffusers_vae"])} if "diffusers_vae" in files
    else pytest.skip("diffusers-vae needs the diffusers package (specmatch[diffusers])"),
    ("alignment", "timm"): lambda files: {"model": "test_vit", "weights": str(files["timm_weights"]),
                                          "input_size": 32},
    ("denoiser", "dit"): {"preset": "dit-micro", "patch_size": 2},
    ("denoiser_regularizer", "repa"): {"depth": 2, "projector_width": 16},
    ("sampler", "euler"): {"steps": 2},
    # the Inception passes (about 10 s each here) are covered by tests/engine/test_analyze_compare.py (slow)
    ("diagnostic", "lowpass-rfid"): {"levels": [4], "frechet": False},
    ("diagnostic", "noised-reconstruction"): {"sigmas": [0.0, 1.0], "frechet": False},
    ("sampler", "heun"): {"steps": 2},
    ("sampler", "euler-maruyama"): {"steps": 3, "cfg_scale": 2.0, "guidance_high": 0.7},
    ("sampler", "ddim"): {"steps": 2, "eta": 0.5},
    ("sampler", "dpmpp-2m"): {"steps": 3},
    ("discriminator", "patchgan"): {"base_channels": 8, "n_layers": 2},
    ("metric", "lpips"): {"variant": "shift-tolerant", "net": "alex"},
    ("metric", "fd-dinov2"): lambda files: {"model": "test_vit", "weights": str(files["timm_weights"]),
                                            "input_size": 32},
}


# -- fixtures: small files some factories read --------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a busy 2-core machine OpenMP's spin-waits make
    them 10 to 50 times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    from PIL import Image

    root = tmp_path_factory.mktemp("component_files")
    rng = np.random.default_rng(0)
    folder = root / "images"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    fashion = root / "fashion"
    fashion.mkdir()
    for prefix, n in (("train", 3), ("t10k", 2)):
        _write_idx(fashion / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(fashion / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n))
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    vit = timm.create_model("test_vit", pretrained=False, num_classes=0)  # timm's 0.3M-parameter test ViT
    save_file(vit.state_dict(), str(root / "test_vit.safetensors"))
    found = {"image_folder": folder, "fashion_mnist": fashion, "timm_weights": root / "test_vit.safetensors"}
    if importlib.util.find_spec("diffusers") is not None:  # the optional extra specmatch[diffusers]
        from diffusers import AutoencoderKL

        torch.manual_seed(0)  # a tiny random f2 AutoencoderKL in diffusers' save_pretrained layout
        AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                      up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4,
                      layers_per_block=1).save_pretrained(str(root / "diffusers_vae"))
        found["diffusers_vae"] = root / "diffusers_vae"
    return found


def tiny_params(spec: ComponentSpec, files: dict[str, Path]) -> Any:
    cls = spec.params_class()
    table = TINY.get((spec.kind, spec.name), {})
    table = table(files) if callable(table) else table
    if cls is None:
        assert not table, f"{spec.kind} {spec.name!r} takes no params"
        return None
    params, problems = structure(dict(table), cls, f"{spec.kind}.params")
    assert not problems, [p.render() for p in problems]
    return params


def build(spec: ComponentSpec, files, upstream: dict[str, Any] | None = None) -> tuple[Any, Any]:
    params = tiny_params(spec, files)
    ctx = BuildContext(recipe_dir=Path("."), upstream=upstream or {}, seed=0)
    torch.manual_seed(0)
    return spec.factory_callable()(params, ctx), params


def one(kind: str) -> ComponentSpec:
    """The first registered component of a kind (a collaborator for other kinds' calls)."""
    return REGISTRY.of_kind(kind)[0]


def images(seed: int = 0, side: int = SIDE) -> torch.Tensor:
    return torch.rand(BATCH, 3, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def skip_without_shipped_weights(spec: ComponentSpec, params: Any) -> None:
    """Skip (naming the file) a component whose weights no installed wheel provides."""
    if spec.name in ("stlpips", "stlpips-alex"):
        from specmatch.losses.perceptual import stlpips_weights_path

        try:
            stlpips_weights_path(params.net)
        except WeightsError as exc:
            pytest.skip(f"ST-LPIPS weights are not installed: {exc}")
    if spec.kind == "metric" and spec.name in ("sfid", "inception-score"):
        pytest.skip(f"{spec.name} needs pytorch-fid's Inception weights file, which no wheel ships; "
                    "tests/metrics/test_inception_full.py builds it with random weights (marked slow)")
    if spec.kind == "perceptual" and spec.name == "lpips":
        import importlib.util

        from specmatch.losses.perceptual import _TORCHVISION_BACKBONE_FILES, _default_backbone_path

        path = Path(params.weights) if params.weights else _default_backbone_path(params.net)
        if not path.is_file():
            pytest.skip(f"LPIPS needs the torchvision backbone {_TORCHVISION_BACKBONE_FILES[params.net]} at {path}; "
                        "no installed wheel ships it")
        if importlib.util.find_spec("lpips") is None:
            pytest.skip("LPIPS needs the 'lpips' package")


# -- the call contract of each kind ---------------------------------------------------------------------------

def check_dataset(spec, files):
    splits, params = build(spec, files)
    assert set(splits) == {"train", "test"}
    side = spec.facts_for(params).resolution
    for name, dataset in splits.items():
        assert len(dataset) > 0, name
        image, label = dataset[0]
        assert image.shape == (3, side, side) and image.dtype == torch.float32, name
        assert -1.0 <= image.min().item() <= image.max().item() <= 1.0 and image.std() > 0, name
        assert isinstance(label, int)
        assert 0 <= label < max(getattr(dataset, "num_classes", 0), 1)


def check_autoencoder(spec, files):
    ae, params = build(spec, files)
    facts = spec.facts_for(params)
    assert (ae.latent_channels, ae.downsample_factor) == (facts.latent_channels, facts.downsample_factor)
    x = images()
    posterior = ae.encode(x)
    assert isinstance(posterior, Posterior)
    latent = (BATCH, facts.latent_channels, SIDE // facts.downsample_factor, SIDE // facts.downsample_factor)
    z = posterior.sample(torch.Generator().manual_seed(0))
    assert z.shape == posterior.mode().shape == latent
    assert posterior.kl().shape == (BATCH,)
    x_hat = ae.decode(z)
    assert x_hat.shape == x.shape and torch.isfinite(x_hat).all()
    (x_hat - x).abs().mean().backward()
    for layer in (ae.encoder_last_layer, ae.decoder_last_layer):
        assert layer.grad is not None and layer.grad.abs().sum() > 0


def _adaptive_layer(ae, name: str) -> torch.Tensor:
    return {"encoder.last": ae.encoder_last_layer, "decoder.last": ae.decoder_last_layer}[name]


def check_regularizer(spec, files):
    ae, _ = build(one("autoencoder"), files, {})
    upstream: dict[str, Any] = {"autoencoder": ae}
    teacher = None
    if "features" in spec.needs:
        teacher_spec = REGISTRY.get("alignment", "stlpips-alex")
        skip_without_shipped_weights(teacher_spec, tiny_params(teacher_spec, files))
        teacher, _ = build(teacher_spec, files)
        upstream["alignment"] = teacher
    reg, _ = build(spec, files, upstream)
    assert hasattr(reg, "transform_pair") == spec.transforms_pair
    has_loss = hasattr(reg, "loss")
    assert has_loss or spec.transforms_pair, f"{spec.name} neither adds a loss nor transforms the pair"
    if spec.adaptive_layers == frozenset():
        assert not has_loss, f"{spec.name} declares no adaptive layer but has a loss"

    x = images()
    generator = torch.Generator().manual_seed(0)
    posterior = ae.encode(x)
    z = posterior.sample(generator)
    z_dec, target = z, x
    if spec.transforms_pair:
        ctx = PairContext(step=0, generator=generator, training=True, downsample_factor=ae.downsample_factor,
                          encode=ae.encode)
        z_dec, target = reg.transform_pair(z, x, ctx)
        assert z_dec.shape[:2] == z.shape[:2] and target.shape[:2] == x.shape[:2]
        assert ae.decode(z_dec).shape == target.shape  # the pair still fits the decoder
    if not has_loss:
        return
    inputs = RegularizerInputs(
        x=x, posterior=posterior, z=z, z_dec=z_dec, target=target, x_hat=ae.decode(z_dec), step=0,
        generator=generator, decode=ae.decode, encode=ae.encode,
        reconstruction_loss=lambda a, b: (a - b).abs().mean(), downsample_factor=ae.downsample_factor,
        features=teacher(x) if teacher is not None else None)
    out = reg.loss(inputs)
    loss, logs = out if isinstance(out, tuple) else (out, {})
    assert loss.dim() == 0 and torch.isfinite(loss), loss
    assert all(math.isfinite(float(torch.as_tensor(v).detach())) for v in logs.values()), logs
    # every declared reference layer is one the loss depends on (an adaptive weight divides by that gradient)
    for name in sorted(spec.adaptive_layers or ()):
        (grad,) = torch.autograd.grad(loss, [_adaptive_layer(ae, name)], retain_graph=True, allow_unused=True)
        assert grad is not None and grad.abs().sum() > 0, f"{spec.name}: the loss does not depend on {name}"


def check_alignment(spec, files):
    params = tiny_params(spec, files)
    skip_without_shipped_weights(spec, params)
    teacher, _ = build(spec, files)
    assert teacher.is_stand_in == spec.stand_in
    features = teacher(images())
    assert features.dim() == 4 and features.shape[:2] == (BATCH, teacher.feature_dim)
    assert features.dtype == torch.float32 and not features.requires_grad
    declared = spec.facts_for(params).feature_dim
    assert declared in (None, teacher.feature_dim)
    assert teacher.describe()["feature_dim"] == teacher.feature_dim


def _denoiser(files):
    return build(one("denoiser"), files, {"latent_shape": LATENT, "num_classes": NUM_CLASSES})


def check_denoiser(spec, files):
    model, params = build(spec, files, {"latent_shape": LATENT, "num_classes": NUM_CLASSES})
    model.eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, *LATENT, generator=g)
    t = torch.rand(BATCH, generator=g)
    y = torch.arange(BATCH) % NUM_CLASSES
    out = model(x, t, y=y)
    assert out.shape == x.shape and torch.isfinite(out).all()
    if spec.alignable:
        depth = spec.facts_for(params).depth
        assert len(model.tap_widths) == depth
        same, hidden = model(x, t, y=y, return_hidden_at=depth)
        torch.testing.assert_close(same, out)
        width = hidden.shape[2] if hidden.dim() == 3 else hidden.shape[1]  # tokens or a feature map
        assert hidden.dim() in (3, 4) and hidden.shape[0] == BATCH and width == model.tap_widths[depth - 1]


def check_denoiser_regularizer(spec, files):
    from specmatch.core.components import DenoiserRegularizerInputs

    denoiser, _ = _denoiser(files)
    teacher = type("Teacher", (), {"feature_dim": 6})()
    term, params = build(spec, files, {"denoiser": denoiser, "alignment": teacher})
    tap = getattr(params, spec.tap_param) if spec.tap_param else None
    g = torch.Generator().manual_seed(0)
    x0, t = torch.randn(BATCH, *LATENT, generator=g), torch.rand(BATCH, generator=g)
    _, hidden = denoiser(x0, t, return_hidden_at=tap) if tap else (None, None)
    inputs = DenoiserRegularizerInputs(
        x0=x0, t=t, step=0, hidden=hidden,
        features=torch.randn(BATCH, 6, 4, 4, generator=g) if "features" in spec.needs else None,
        images=images() if "images" in spec.needs else None)
    out = term.loss(inputs)
    value = out[0] if isinstance(out, tuple) else out
    assert value.dim() == 0 and torch.isfinite(value) and value.requires_grad
    value.backward()
    assert all(p.grad is not None for p in term.parameters())


def check_objective(spec, files):
    objective, _ = build(spec, files)
    denoiser, _ = _denoiser(files)
    x0 = torch.randn(BATCH, *LATENT, generator=torch.Generator().manual_seed(1))
    loss, logs = objective.loss(denoiser, x0, generator=torch.Generator().manual_seed(0),
                                y=torch.arange(BATCH) % NUM_CLASSES)
    assert loss.dim() == 0 and torch.isfinite(loss) and loss.requires_grad
    assert all(math.isfinite(float(torch.as_tensor(v).detach())) for v in logs.values())
    # the sampling half of the contract: the exact target converts back to the data and noise of the path
    assert objective.prediction in ("velocity", "noise", "x0", "v")
    assert 0.0 <= objective.t_min < objective.t_max <= 1.0
    x0, noise = x0.double(), torch.randn(x0.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    drawn = objective.draw(x0, noise=noise, generator=torch.Generator().manual_seed(3))
    x0_hat, noise_hat = objective.to_x0_noise(drawn.target, drawn.x_t, drawn.t)
    torch.testing.assert_close(x0_hat, x0)
    torch.testing.assert_close(noise_hat, noise)


def check_sampler(spec, files):
    from specmatch.engine.sampling import PerSampleNoise, SamplingContext

    sampler, _ = build(spec, files)
    denoiser, _ = _denoiser(files)
    denoiser.eval()
    objective, _ = build(one("objective"), files)
    calls = []

    def model_fn(x, t, **kwargs):
        calls.append(float(t[0]))
        return denoiser(x, t, **kwargs)

    shape = (BATCH, *LATENT)
    y = torch.arange(BATCH) % NUM_CLASSES

    def run():
        ctx = SamplingContext(denoiser=model_fn, objective=objective, shape=shape, device="cpu",
                              noise=PerSampleNoise(0, range(BATCH), LATENT, device="cpu", dtype=torch.float32),
                              labels=y, null_class=NUM_CLASSES, guidance=getattr(sampler, "guidance", None))
        return sampler(ctx)

    z = run()
    assert z.shape == shape and torch.isfinite(z).all()
    assert calls and calls[0] == pytest.approx(objective.t_max)  # integration starts from noise
    torch.testing.assert_close(run(), z)  # the context's noise is the only source of randomness


def check_perceptual(spec, files):
    params = tiny_params(spec, files)
    skip_without_shipped_weights(spec, params)
    distance, _ = build(spec, files)
    x, y = images(0), images(1)
    x.requires_grad_(True)
    d = distance(x, y)
    assert d.shape == (BATCH,) and (d > 0).all()
    assert distance(y, y).abs().max() < 1e-5
    d.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in distance.parameters())


def check_discriminator(spec, files):
    critic, _ = build(spec, files)
    logits = critic(images())
    assert logits.dim() == 4 and logits.shape[:2] == (BATCH, 1) and torch.isfinite(logits).all()
    logits.mean().backward()
    assert all(p.grad is not None for p in critic.parameters() if p.requires_grad)


def check_metric(spec, files):
    from specmatch.core.components import FeatureSet

    skip_without_shipped_weights(spec, tiny_params(spec, files))
    metric, _ = build(spec, files, {"evaluation": None})
    if spec.per_image:
        x, y = images(0), images(1)
        same, different = metric.per_image(x, x), metric.per_image(x, y)
        assert different.shape == (BATCH,) and torch.isfinite(different).all()
        assert not torch.equal(same, different)  # the value sees the difference between the images
        return
    streams = getattr(metric, "feature_streams", ())
    if streams:  # a network of its own: its streams accumulate over real images, then compute
        sets = []
        for seeds in ((0, 1), (2, 3)):
            x = torch.cat([images(s) for s in seeds])
            summaries = {}
            for stream in streams:
                acc = stream.accumulator(len(x), 0)
                acc.update(stream.network(x)[stream.output], list(range(len(x))))
                summaries[stream.name] = acc.summary()
            sets.append(FeatureSet(n=len(x), mean=None, cov=None, streams=summaries))
        values, same = metric.compute(sets[0], sets[1]), metric.compute(sets[0], sets[0])
        assert values and all(isinstance(k, str) and np.isfinite(v) for k, v in values.items())
        assert values != same  # the value sees the difference between the image sets
        return
    g = torch.Generator().manual_seed(0)
    sets = []
    for shift in (0.0, 2.0):
        f = (torch.randn(40, 8, generator=g, dtype=torch.float64) + shift).numpy()
        sets.append(FeatureSet(n=40, mean=f.mean(0), cov=np.cov(f, rowvar=False), features=f))
    values = metric.compute(sets[0], sets[1])
    assert values and all(isinstance(k, str) and np.isfinite(v) for k, v in values.items())


def check_diagnostic(spec, files):
    autoencoder, _ = build(one("autoencoder"), files)
    diagnostic, _ = build(spec, files, {"autoencoder": autoencoder})
    with torch.no_grad():
        report = diagnostic.run(autoencoder.eval(), images())
    assert report and isinstance(dict(report), dict)
    values = diagnostic.scalars(report)
    assert values and all(isinstance(k, str) and math.isfinite(v) for k, v in values.items())


CONTRACTS: dict[str, Callable[[ComponentSpec, dict], None]] = {
    "diagnostic": check_diagnostic,
    "metric": check_metric,
    "dataset": check_dataset,
    "autoencoder": check_autoencoder,
    "regularizer": check_regularizer,
    "alignment": check_alignment,
    "denoiser": check_denoiser,
    "denoiser_regularizer": check_denoiser_regularizer,
    "objective": check_objective,
    "sampler": check_sampler,
    "perceptual": check_perceptual,
    "discriminator": check_discriminator,
}


def test_every_kind_has_a_call_contract_and_every_tiny_table_names_a_component():
    assert set(CONTRACTS) == set(KINDS)
    assert {s.kind for s in SPECS} == set(KINDS)
    registered = {(s.kind, s.name) for s in SPECS}
    assert set(TINY) <= registered, sorted(set(TINY) - registered)


@pytest.mark.parametrize("spec", SPECS, ids=[f"{s.kind}:{s.name}" for s in SPECS])
def test_component_builds_and_answers_one_call(spec: ComponentSpec, files):
    with torch.random.fork_rng():
        CONTRACTS[spec.kind](spec, files)


def test_params_tables_are_real_params():
    """The tiny tables above go through the same structuring as a recipe: a stale key would be refused."""
    spec = REGISTRY.get("denoiser", "dit")
    _, problems = structure({"preset": "dit-micro", "patches": 2}, spec.params_class(), "denoiser.params")
    assert problems and "patches" in problems[0].render()
    assert attrs.has(spec.params_class())
