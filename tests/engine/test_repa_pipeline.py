"""The ``repa`` denoiser regularizer in a whole run: validation, stage keys, training with the projection loss, a plain denoiser saved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specmatch.core.plan import make_plan
from specmatch.core.recipe import load_recipe
from specmatch.testing import invoke_cli, write_recipe

ROOT = Path(__file__).resolve().parents[2]
SMOKE = (ROOT / "recipes" / "smoke.toml").as_posix()
TEACHER = '[alignment]\nname = "stlpips-alex"\nparams = { layer = 1 }\n'
REPA = '[[denoiser_regularizers]]\nname = "repa"\nweight = 0.5\nparams = { depth = 1, projector_width = 64 }\n'
TERM = "denoiser_regularizers.0.params"


def repa_recipe(tmp_path: Path, extra: str = "", name: str = "repa.toml") -> Path:
    return write_recipe(tmp_path, f'extends = "{SMOKE}"\n{TEACHER}{REPA}{extra}', name)


def test_repa_needs_a_teacher_and_a_denoiser(tmp_path):
    no_teacher = write_recipe(tmp_path, f'extends = "{SMOKE}"\n{REPA}', "a.toml")
    result = invoke_cli("validate", str(no_teacher))
    assert result.exit_code == 2
    assert "a.toml" in result.output and "repa" in result.output and "[alignment]" in result.output
    even = repa_recipe(tmp_path, "", "b.toml")
    result = invoke_cli("validate", str(even), "-o", f"{TERM}.target_filter='dog'", "-o", f"{TERM}.dog_kernel_low=4")
    assert result.exit_code == 2 and "denoiser_regularizers[0].params.dog_kernel_low" in result.output
    assert "odd" in result.output


def test_block_index_beyond_the_denoiser_is_a_clean_error(tmp_path):
    recipe = repa_recipe(tmp_path)
    result = invoke_cli("run", str(recipe), "--output-dir", str(tmp_path / "out"), "-o", f"{TERM}.depth=7",
                        "-o", "evaluation.frechet=false", "-o", "train.autoencoder.steps=2",
                        "-o", "train.denoiser.steps=2")
    assert result.exit_code != 0
    assert "denoiser_regularizers[0].params.depth" in result.output and "1..2" in result.output


def test_stage_keys_teacher_for_repa_only_leaves_the_autoencoder_alone(tmp_path):
    plain = load_recipe(write_recipe(tmp_path, f'extends = "{SMOKE}"\n', "plain.toml"))
    repa = load_recipe(repa_recipe(tmp_path))
    dog = load_recipe(repa_recipe(tmp_path, "", "dog.toml"), [f"{TERM}.target_filter='dog'"])
    keys = {name: {s.name: s.key for s in make_plan(r, tmp_path / "o").stages}
            for name, r in (("plain", plain), ("repa", repa), ("dog", dog))}
    assert keys["plain"]["autoencoder"] == keys["repa"]["autoencoder"] == keys["dog"]["autoencoder"]
    assert len({keys[n]["denoiser"] for n in keys}) == 3


def test_a_repa_run_trains_the_projection_and_saves_a_plain_denoiser(tmp_path):
    import torch
    from safetensors.torch import load_file

    from specmatch.diffusion.dit import build_dit

    out = tmp_path / "run"
    result = invoke_cli("run", str(repa_recipe(tmp_path)), "--output-dir", str(out),
                        "-o", "evaluation.frechet=false", "-o", "train.denoiser.steps=40",
                        "-o", "run.log_every=1", "-o", "evaluation.num_samples=4")
    assert result.exit_code == 0, result.output
    curves = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    repa = [c["loss/repa"] for c in curves if c["stage"] == "denoiser"]
    assert len(repa) == 40 and all(-1.0 <= v <= 1.0 for v in repa)
    # the projector learns to point the tokens at the teacher's features
    assert sum(repa[-5:]) / 5 < sum(repa[:5]) / 5 - 0.1
    state = load_file(str(out / "denoiser" / "model.safetensors"))
    assert not any("projector" in key for key in state)
    dit = build_dit("dit-micro", input_size=8, in_channels=4, patch_size=2)
    dit.load_state_dict(state)  # strict: exactly the plain denoiser
    assert torch.isfinite(torch.stack([v.float().sum() for v in state.values()])).all()
    assert (out / "samples.png").is_file()


@pytest.mark.parametrize("cache", [True, False])
def test_repa_with_and_without_cached_latents(tmp_path, cache):
    out = tmp_path / f"cache-{cache}"
    result = invoke_cli("run", str(repa_recipe(tmp_path, name=f"r{cache}.toml")), "--output-dir", str(out),
                        "-o", "evaluation.frechet=false", "-o", "train.autoencoder.steps=4",
                        "-o", "train.denoiser.steps=3", "-o", f"train.denoiser.cache_latents={str(cache).lower()}",
                        "-o", "train.denoiser.grad_accumulation=2", "-o", f"{TERM}.target_filter='dog'",
                        "-o", f"{TERM}.projector='conv'", "-o", "evaluation.num_samples=2")
    assert result.exit_code == 0, result.output
    curves = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("loss/repa" in c for c in curves if c["stage"] == "denoiser")


@pytest.mark.parametrize("with_repa", [True, False])
def test_an_interrupted_denoiser_resumes_to_the_same_weights(tmp_path, monkeypatch, with_repa):
    """The denoiser stage resumes after a finished autoencoder stage (its checkpoint holds only its own state)."""
    from tests.engine.test_pipeline import assert_same_weights

    plugin = Path(__file__).with_name("crash_plugin.py")
    recipe = repa_recipe(tmp_path) if with_repa else write_recipe(tmp_path, f'extends = "{SMOKE}"\n', "p.toml")
    common = ["--plugin-file", str(plugin), "run", str(recipe), "-o", "evaluation.frechet=false",
              "-o", "train.autoencoder.steps=4", "-o", "train.denoiser.steps=12",
              "-o", "train.denoiser.checkpoint_every=4", "-o", "evaluation.num_samples=2",
              "-o", "objective={ name = 'crash-once-flow-matching', params = { at_step = 6 } }"]
    monkeypatch.delenv("SPECMATCH_TEST_CRASH_FLAG", raising=False)
    assert invoke_cli(*common, "--output-dir", str(tmp_path / "ref")).exit_code == 0
    flag = tmp_path / "crashed.flag"
    monkeypatch.setenv("SPECMATCH_TEST_CRASH_FLAG", str(flag))
    cut = tmp_path / "cut"
    from click.testing import CliRunner

    from specmatch.cli import main

    assert CliRunner().invoke(main, [*common, "--output-dir", str(cut)]).exit_code != 0 and flag.exists()
    assert not (cut / "denoiser" / "model.safetensors").exists()
    result = invoke_cli(*common, "--output-dir", str(cut))
    assert result.exit_code == 0 and "resumed from" in result.output
    # projector, optimizer and EMA state came back: the resumed denoiser is the uninterrupted one
    for name in ("model.safetensors", "ema.safetensors"):
        assert_same_weights(tmp_path / "ref" / "denoiser" / name, cut / "denoiser" / name)


@pytest.mark.slow
def test_repa_aligns_a_unet_feature_map_tap(tmp_path):
    """A U-Net's taps are maps of different widths: the term sizes its projector from tap_widths and trains."""
    out = tmp_path / "unet"
    result = invoke_cli("run", str(repa_recipe(tmp_path, name="unet.toml")), "--output-dir", str(out),
                        "-o", "denoiser={ name = 'adm-unet' }", "-o", f"{TERM}.depth=2",
                        "-o", "evaluation.frechet=false", "-o", "train.autoencoder.steps=2",
                        "-o", "train.denoiser.steps=6", "-o", "run.log_every=1", "-o", "evaluation.num_samples=2")
    assert result.exit_code == 0, result.output
    curves = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    repa = [c["loss/repa"] for c in curves if c["stage"] == "denoiser"]
    assert len(repa) == 6 and all(-1.0 <= v <= 1.0 for v in repa)
