"""The comparison scripts run end to end on tiny settings: autoencoders, then denoisers on their latents."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY_DATA = ["-o", "data.params.resolution=16", "-o", "data.params.num_images=64",
             "-o", "data.params.num_test_images=16", "-o", "evaluation.frechet=false",
             "-o", "evaluation.reconstruction_images=8", "-o", "evaluation.spectrum_images=8",
             "-o", "latent_stats.images=16"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_cpu_comparison_then_diffusability(tmp_path):
    specmatch = Path(sys.executable).with_name("specmatch")
    if not specmatch.exists():
        pytest.skip(f"no specmatch executable next to {sys.executable}")
    # the scripts write under ROOT/runs; work on a copy of the scripts and recipes instead
    for folder in ("scripts", "recipes"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    ae = subprocess.run(
        ["bash", "scripts/cpu_comparison.sh", "--specmatch", str(specmatch), "--only", "ae esm", "--tag", "t",
         "-o", "autoencoder.params.preset='micro-f2d4'", "-o", "train.autoencoder.steps=3",
         "-o", "train.autoencoder.analyze_every=0", *TINY_DATA],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert ae.returncode == 0, ae.stderr[-2000:]
    assert "cpu-t-ae" in ae.stdout and "cpu-t-esm" in ae.stdout and "analysis/latent-spectrum/spectrum_kl_delta1 " in ae.stdout
    assert "analysis/latent-spectrum/spectrum_kl_delta1_dc_removed" in ae.stdout  # ESM's training setting too
    assert "analysis/lowpass-rfid/lowpass_psnr_k8 " in ae.stdout
    den = subprocess.run(
        ["bash", "scripts/diffusability.sh", "--specmatch", str(specmatch), "-o", "train.denoiser.steps=3",
         "-o", "evaluation.num_samples=4", "-o", "denoiser.params.preset='dit-micro'", *TINY_DATA,
         "runs/cpu-t-ae", "runs/cpu-t-esm"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert den.returncode == 0, den.stderr[-2000:]
    assert "diffuse-cpu-t-ae" in den.stdout and "gen_samples" in den.stdout
    # the denoiser runs reused the autoencoders instead of training new ones
    for name in ("ae", "esm"):
        assert not (tmp_path / "runs" / f"diffuse-cpu-t-{name}" / "autoencoder" / "model.safetensors").exists()
    bad = subprocess.run(["bash", "scripts/diffusability.sh"], cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr
