"""The evaluation stage at small N through the same code path as 50k: chunked, resumable, protocol-stamped.

Untrained tiny models and a tiny TorchScript stand-in for the feature network keep it fast; what is tested is
the streaming, the resume and the bookkeeping, not the quality of the numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from specmatch.core.plan import make_plan
from specmatch.core.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "recipes" / "smoke.toml"


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors gain nothing from intra-op threads; on a busy 2-core machine OpenMP's spin-waits slow them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TinyFeatures:
    """A 16-d stand-in for the Inception network (the evaluation's bookkeeping is tested, not Inception)."""

    feature_dim = 16
    sha256 = "0" * 64

    def __init__(self):
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.AdaptiveAvgPool2d(1))

    def describe(self) -> dict:
        return {"name": "tiny stand-in"}

    @torch.no_grad()
    def __call__(self, images):
        return self.net(images.float().cpu()).flatten(1).double()


@pytest.fixture
def feature_net(monkeypatch, tmp_path) -> Path:
    from specmatch.engine import evaluation

    net = TinyFeatures()
    monkeypatch.setattr(evaluation, "load_feature_network", lambda *args, **kwargs: (net, ""))
    path = tmp_path / "tiny.pt"  # validate checks that the named file exists; the stand-in replaces it
    path.write_bytes(b"stand-in")
    return path


def _overrides(feature_net: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return [f'evaluation.feature_network="{feature_net}"', "evaluation.reconstruction_images=10",
            "evaluation.num_samples=10", "evaluation.checkpoint_every=4", "evaluation.batch_size=3",
            "evaluation.spectrum_images=0", "evaluation.sample_grid=4", "latent_stats.images=8",
            "sampler.params.steps=2", "evaluation.kid_subset_size=5", "data.params.resolution=8",
            "data.params.num_images=32", "data.params.num_test_images=16", *extra]


def _evaluate(out: Path, feature_net: Path, on_chunk=None, extra: tuple[str, ...] = ()):
    from specmatch.engine.pipeline import build_datasets, make_run_context
    from specmatch.engine.stages import evaluation_stage, latent_stats_stage
    from specmatch.engine.stages.denoiser import DenoiserResult

    resolved = load_recipe(SMOKE, _overrides(feature_net, extra))
    run = make_run_context(resolved, make_plan(resolved, out))
    train_set, test_set = build_datasets(run)
    autoencoder = run.build("autoencoder").eval()  # untrained: the evaluation is what is tested
    stats = latent_stats_stage(run, autoencoder, train_set, test_set)
    denoiser = DenoiserResult(model=run.build("denoiser").eval(), conditional=False)
    return evaluation_stage(run, autoencoder, stats, denoiser, train_set, test_set, on_chunk=on_chunk)


@pytest.mark.slow  # three evaluations of untrained tiny models (about 20 s on an idle 2-core machine)
def test_interrupted_evaluation_resumes_to_the_same_numbers(tmp_path, feature_net):
    whole = _evaluate(tmp_path / "whole", feature_net)
    calls = []

    def stop_after_second_chunk(name: str, done: int) -> None:
        calls.append((name, done))
        if len(calls) == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        _evaluate(tmp_path / "cut", feature_net, on_chunk=stop_after_second_chunk)
    assert calls == [("reconstruction", 4), ("reconstruction", 8)]
    done = []
    resumed = _evaluate(tmp_path / "cut", feature_net, on_chunk=lambda name, n: done.append((name, n)))
    assert done[0] == ("reconstruction", 10)  # the saved chunks were not repeated
    assert set(resumed.metrics) == set(whole.metrics)
    for key, value in whole.metrics.items():
        if isinstance(value, float):
            assert resumed.metrics[key] == pytest.approx(value, rel=1e-10, abs=1e-10), key
        else:
            assert resumed.metrics[key] == value, key
    for name in ("gen_fid", "gen_kid", "gen_precision", "gen_recall", "rfid", "rkid", "recon_psnr", "recon_ssim"):
        assert name in whole.metrics, name
    assert whole.metrics["gen_n"] == 10 and whole.metrics["rn"] == 10
    assert whole.provenance["gen_fid"] == {"protocol": "custom", "network": "tiny stand-in", "n": 10,
                                           "network_sha256": "0" * 64}
    assert torch.equal(resumed.samples, whole.samples) and resumed.samples.shape[0] == 4


def test_reference_file_replaces_the_training_subset(tmp_path, feature_net):
    import numpy as np

    from specmatch.core.components import FeatureSet
    from specmatch.metrics.reference import write_reference

    rng = np.random.default_rng(0)
    features = rng.normal(size=(50, 16))
    ref = tmp_path / "ref.npz"
    write_reference(ref, FeatureSet(n=50, mean=features.mean(0), cov=np.cov(features, rowvar=False)))
    result = _evaluate(tmp_path / "run", feature_net, extra=(f'evaluation.reference="{ref}"',
                                                              "evaluation.spectrum_images=4"))
    assert result.metrics["gen_reference"].startswith(str(ref))
    assert "gen_fid" in result.metrics
    assert "gen_kid" not in result.metrics  # the file has no features: KID and precision/recall are skipped
    # the default diagnostic plugin: its scalars in the metrics, its report for spectrum.json
    assert "spectrum_latent_slope" in result.metrics
    assert result.reports["spectrum.json"]["n_images"] == 4
    assert (tmp_path / "run" / "spectrum.png").stat().st_size > 1000  # the diagnostic's figure


def test_protocol_pins_and_contradictions_are_reported(tmp_path):
    from specmatch.core.errors import RecipeError

    with pytest.raises(RecipeError) as info:
        load_recipe(SMOKE, ['evaluation.protocol="adm-50k-v1"', "evaluation.num_samples=12"])
    text = str(info.value) + " ".join(f"{p.path}: {p.message}" for p in info.value.problems)
    assert "evaluation.num_samples" in text and "50000" in text and "evaluation.reference" in text
    # adm-50k-v1 pins sFID's network file to pytorch-fid's: a recipe may not skip or change that check
    ref = tmp_path / "ref.npz"
    import numpy as np

    np.savez(ref, mu=np.zeros(2048), sigma=np.eye(2048))
    adm = ['evaluation.protocol="adm-50k-v1"', "evaluation.num_samples=50000", f'evaluation.reference="{ref}"',
           'evaluation.metrics=["fid", "sfid"]']
    for sha, complaint in (("", "skips the check"), ("deadbeef", "'deadbeef' contradicts")):
        with pytest.raises(RecipeError) as info:
            load_recipe(SMOKE, [*adm, f'evaluation.metric_params={{sfid={{weights="x.pth", sha256="{sha}"}}}}'],
                        check_files=False)
        assert any(p.path == "evaluation.metric_params.sfid.sha256" and complaint in p.message
                   and "6726825d" in p.message for p in info.value.problems), info.value.problems
    full = "6726825d" + "0" * 56  # the pinned prefix written out in full is no contradiction
    load_recipe(SMOKE, [*adm, f'evaluation.metric_params={{sfid={{weights="x.pth", sha256="{full}"}}}}'],
                check_files=False)
    with pytest.raises(RecipeError) as info:
        load_recipe(SMOKE, ['evaluation.metrics=["fid", "kd"]'])
    assert any(p.path == "evaluation.metrics[1]" and "kid" in p.message for p in info.value.problems)
    from specmatch.metrics.protocols import effective

    from specmatch.testing import MINIMAL_RECIPE, write_recipe

    resolved = load_recipe(write_recipe(tmp_path, MINIMAL_RECIPE), ['evaluation.protocol="quick-1k-v1"'])
    ev = effective(resolved.recipe.evaluation)
    assert ev.num_samples == 1000 and ev.quantize_uint8 and ev.feature_subset == 1000


def test_stats_command_writes_the_dataset_statistics(tmp_path, feature_net):
    import numpy as np

    from specmatch.engine.evaluation import reference_indices
    from specmatch.metrics.reference import read_reference
    from specmatch.testing import invoke_cli

    out = tmp_path / "ref.npz"
    recipe = str(SMOKE)
    result = invoke_cli("stats", recipe, "-O", str(out), "--images", "12", "--batch-size", "5", "--features", "6",
                        "-o", "data.params.resolution=8", "-o", "data.params.num_images=32")
    assert result.exit_code == 0, result.output
    assert "N = 12 images" in result.output
    ref = read_reference(out, feature_dim=16)
    # the same images and network, computed here in one go
    from specmatch.core.recipe import load_recipe
    from specmatch.engine import build as B

    resolved = load_recipe(SMOKE, ["data.params.resolution=8", "data.params.num_images=32"])
    train = B.build(resolved.component("data"), B.context(resolved, tmp_path, {}))["train"]
    picks = reference_indices(len(train), 12, 0)
    features = TinyFeatures()(torch.stack([train[i][0] for i in picks])).numpy()
    assert ref.n == 12 and ref.features.shape == (6, 16)
    np.testing.assert_allclose(ref.mean, features.mean(0), atol=1e-10)
    np.testing.assert_allclose(ref.cov, np.cov(features, rowvar=False), atol=1e-10)
    bad = invoke_cli("stats", recipe, "-O", str(out), "--protocol", "adm-5k")
    assert bad.exit_code != 0 and "unknown evaluation protocol" in bad.output
    # a recipe whose evaluation round-trips images through JPEG gets the statistics of those images, as its
    # evaluation would compute them; --protocol replaces the recipe's settings
    from specmatch.metrics.quantize import protocol_images

    jpeg = protocol_images(torch.stack([train[i][0] for i in picks]), quantize=True, jpeg_quality=50)
    jpeg = TinyFeatures()(jpeg).numpy()
    assert np.abs(jpeg.mean(0) - features.mean(0)).max() > 1e-4  # the check below can tell them apart
    small = ["--images", "12", "--batch-size", "5", "--features", "6", "-o", "data.params.resolution=8",
             "-o", "data.params.num_images=32", "-o", "evaluation.quantize_uint8=true",
             "-o", "evaluation.jpeg_quality=50"]
    result = invoke_cli("stats", recipe, "-O", str(out), *small)
    assert result.exit_code == 0 and "quantised to 8 bits, JPEG 50" in result.output, result.output
    np.testing.assert_allclose(read_reference(out, feature_dim=16).mean, jpeg.mean(0), atol=1e-6)
    result = invoke_cli("stats", recipe, "-O", str(out), *small, "--protocol", "custom")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(read_reference(out, feature_dim=16).mean, features.mean(0), atol=1e-10)


def test_validate_checks_the_reference_file(tmp_path):
    import numpy as np

    from specmatch.core.errors import RecipeError

    np.savez(tmp_path / "images_only.npz", arr_0=np.zeros((2, 4, 4, 3), dtype=np.uint8))
    for name, expected in (("missing.npz", "does not exist"), ("images_only.npz", "no mu or sigma")):
        with pytest.raises(RecipeError) as info:
            load_recipe(SMOKE, [f'evaluation.reference="{tmp_path / name}"'])
        assert any(p.path == "evaluation.reference" and expected in p.message for p in info.value.problems), name


def test_metric_params_come_from_the_named_table():
    from specmatch.core.errors import RecipeError

    resolved = load_recipe(SMOKE, ["evaluation.metric_params={kid={num_subsets=7}}"])
    kid = next(c for c in resolved.components.values() if c.kind == "metric" and c.spec.name == "kid")
    assert kid.params.num_subsets == 7
    for override, path in (("evaluation.metric_params={kid={num_subsets=0}}", "evaluation.metric_params.kid"),
                           ("evaluation.metric_params={fidd={}}", "evaluation.metric_params.fidd")):
        with pytest.raises(RecipeError) as info:
            load_recipe(SMOKE, [override])
        assert any(p.path.startswith(path) for p in info.value.problems), override


@pytest.mark.slow  # two evaluations of untrained tiny models with a second feature network
def test_metrics_on_their_own_networks_run_through_the_stage(tmp_path, feature_net):
    """FD-DINOv2 (a tiny random timm ViT from a local file) through the same streaming path: rFD and gen FD next
    to FID, with their own network in the provenance; a reference file without the DINOv2 stream skips
    FD-DINOv2 and keeps the rest. (rLPIPS needs images of 32 px or more; tests/metrics covers it.)"""
    import numpy as np
    import timm
    from safetensors.torch import save_file

    from specmatch.core.components import FeatureSet
    from specmatch.metrics.reference import write_reference

    torch.manual_seed(0)
    vit = timm.create_model("test_vit", pretrained=False, num_classes=0)
    weights = tmp_path / "test_vit.safetensors"
    save_file(vit.state_dict(), str(weights))
    extra = ('evaluation.metrics=["psnr", "fid", "fd-dinov2"]',
             f'evaluation.metric_params={{fd-dinov2={{model="test_vit", weights="{weights}", input_size=32}}}}')
    result = _evaluate(tmp_path / "run", feature_net, extra=extra)
    for key in ("recon_psnr", "rfid", "gen_fid", "rfd_dinov2", "gen_fd_dinov2"):
        assert np.isfinite(result.metrics[key]), key
    assert result.metrics["gen_fd_dinov2"] > 0
    import hashlib

    assert result.provenance["gen_fd_dinov2"] == {"protocol": "custom", "network": "test_vit class token", "n": 10,
                                                  "network_sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    assert result.provenance["gen_fid"]["network"] == "tiny stand-in"
    rng = np.random.default_rng(0)
    features = rng.normal(size=(50, 16))
    ref = tmp_path / "ref.npz"
    write_reference(ref, FeatureSet(n=50, mean=features.mean(0), cov=np.cov(features, rowvar=False)))
    with_file = _evaluate(tmp_path / "run2", feature_net, extra=(*extra, f'evaluation.reference="{ref}"'))
    assert "gen_fid" in with_file.metrics and "gen_fd_dinov2" not in with_file.metrics
    assert "rfd_dinov2" in with_file.metrics  # reconstructions compare with their own originals


def test_stats_of_an_adm_batch_keeps_its_moments_and_adds_features_of_its_images(tmp_path, feature_net):
    """ADM's reference batches: 10 000 images in arr_0 beside mu/sigma of the whole training set. `stats`
    keeps the file's moments (FID compares with those) and adds the features of the images (KID, P&R)."""
    import numpy as np

    from specmatch.metrics.reference import ADM_SPATIAL_STREAM, read_reference
    from specmatch.testing import invoke_cli

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(10, 8, 8, 3), dtype=np.uint8)
    mu, sigma = rng.normal(size=16), np.eye(16) * 2.0
    mu_s, sigma_s = rng.normal(size=5), np.eye(5)
    batch = tmp_path / "VIRTUAL_batch.npz"
    np.savez(batch, arr_0=images, mu=mu, sigma=sigma, mu_s=mu_s, sigma_s=sigma_s)
    out = tmp_path / "ref.npz"
    result = invoke_cli("stats", str(batch), "-O", str(out), "--features", "10", "--batch-size", "4")
    assert result.exit_code == 0, result.output
    ref = read_reference(out, feature_dim=16)
    np.testing.assert_array_equal(ref.mean, mu)
    np.testing.assert_array_equal(ref.cov, sigma)
    np.testing.assert_array_equal(ref.streams[ADM_SPATIAL_STREAM].mean, mu_s)
    # the features are the stand-in network's on the images, as [-1, 1] floats
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    expected = TinyFeatures()(x).numpy()
    assert ref.features.shape == (10, 16)
    np.testing.assert_allclose(np.sort(ref.features, axis=0), np.sort(expected, axis=0), atol=1e-5)
    # --recompute-moments: the moments of the images instead
    again = invoke_cli("stats", str(batch), "-O", str(out), "--features", "10", "--recompute-moments")
    assert again.exit_code == 0, again.output
    np.testing.assert_allclose(read_reference(out, feature_dim=16).mean, expected.mean(0), atol=1e-6)
    # moments of another network, and a file without images: clear errors, no traceback
    np.savez(batch, arr_0=images, mu=np.zeros(2048), sigma=np.eye(2048))
    wrong = invoke_cli("stats", str(batch), "-O", str(out))
    assert wrong.exit_code != 0 and "another network" in wrong.output and "Traceback" not in wrong.output
    np.savez(batch, mu=mu, sigma=sigma)
    empty = invoke_cli("stats", str(batch), "-O", str(out))
    assert empty.exit_code != 0 and "no arr_0" in empty.output and "Traceback" not in empty.output
