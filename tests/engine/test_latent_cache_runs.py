"""The latent cache in whole runs: a denoiser trained from the disk cache is the one trained from memory, a second
run on the same autoencoder (``from_run``) reuses the cache without encoding, and the setting is validated but
is not part of the stage key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specmatch.core.plan import make_plan
from specmatch.core.recipe import load_recipe
from specmatch.testing import invoke_cli, write_recipe

ROOT = Path(__file__).resolve().parents[2]
SMOKE = (ROOT / "recipes" / "smoke.toml").as_posix()
TINY = ["-o", "data.params={ resolution = 16, num_images = 40, num_test_images = 8 }",
        "-o", "train.autoencoder.steps=1", "-o", "latent_stats.images=8", "-o", "train.denoiser.steps=4",
        "-o", "train.denoiser.batch_size=8", "-o", "run.log_every=1", "-o", "evaluation.frechet=false",
        "-o", "evaluation.batch_size=8", "-o", "evaluation.reconstruction_images=2",
        "-o", "evaluation.num_samples=2", "-o", "evaluation.spectrum_images=2", "-o", "evaluation.sample_grid=2"]


def losses(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k.startswith("loss/")} for r in rows if r["stage"] == "denoiser"]


@pytest.fixture
def one_thread():
    """Tiny models: one thread, as OpenMP's spin-waits on a busy 2-core machine make two 100x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_disk_cache_trains_the_memory_denoiser_and_is_reused_from_another_run(tmp_path, monkeypatch, one_thread):
    from specmatch.engine import latent_cache as LC
    from tests.engine.test_pipeline import assert_same_weights

    monkeypatch.setattr(LC, "SHARD_BYTES", 8 * LC.cache_bytes(1, (4, 8, 8)))  # 8 images a shard: 5 shards
    recipe = write_recipe(tmp_path, f'extends = "{SMOKE}"\n')
    for mode in ("memory", "disk"):
        result = invoke_cli("run", str(recipe), "--output-dir", str(tmp_path / mode), *TINY,
                            "-o", f"train.denoiser.latent_cache='{mode}'")
        assert result.exit_code == 0, result.output
    cache = tmp_path / "disk" / "autoencoder" / "latent_cache"
    assert len(list(cache.glob("moments_*.npy"))) == 5
    assert not (tmp_path / "memory" / "autoencoder" / "latent_cache").exists()
    assert len(losses(tmp_path / "disk")) == 4 and losses(tmp_path / "disk") == losses(tmp_path / "memory")
    for name in ("model.safetensors", "ema.safetensors"):
        assert_same_weights(tmp_path / "memory" / "denoiser" / name, tmp_path / "disk" / "denoiser" / name)

    # another denoiser on the disk run's autoencoder: the cache there is used as it is
    def written():  # the shards and the index (not .lock, which every check takes)
        return {p.name: p.stat().st_mtime_ns for p in [*cache.glob("*.npy"), cache / "index.json"]}

    before = written()
    other = write_recipe(tmp_path, f'extends = "{SMOKE}"\n[autoencoder]\nfrom_run = "disk"\n', "other.toml")
    result = invoke_cli("run", str(other), "--output-dir", str(tmp_path / "other"), *TINY,
                        "-o", "train.denoiser.latent_cache='disk'", "-o", "train.denoiser.lr=3e-4")
    assert result.exit_code == 0, result.output
    assert f"latent cache in {cache} reused" in (tmp_path / "other" / "run.log").read_text()
    assert written() == before
    assert not (tmp_path / "other" / "autoencoder" / "latent_cache").exists()


def test_latent_cache_is_validated_and_not_in_the_stage_key(tmp_path):
    recipe = write_recipe(tmp_path, f'extends = "{SMOKE}"\n', "r.toml")
    result = invoke_cli("validate", str(recipe), "-o", "train.denoiser.latent_cache='ram'")
    assert result.exit_code == 2
    assert "train.denoiser.latent_cache" in result.output and "disk" in result.output
    result = invoke_cli("validate", str(recipe), "-o", "train.denoiser.latent_cache_ram_fraction=0")
    assert result.exit_code == 2 and "latent_cache_ram_fraction" in result.output
    keys = [{s.name: s.key for s in make_plan(load_recipe(recipe, [f"train.denoiser.latent_cache='{m}'"]),
                                               tmp_path / "o").stages} for m in ("memory", "disk", "auto")]
    assert keys[0] == keys[1] == keys[2]
    lr = {s.name: s.key for s in make_plan(load_recipe(recipe, ["train.denoiser.lr=1e-5"]), tmp_path / "o").stages}
    assert lr["denoiser"] != keys[0]["denoiser"]
