"""Per-sample noise: sample i depends on (seed, i) only, not on the batch size, the range or the process count."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from specmatch.diffusion.dit import build_dit
from specmatch.diffusion.flow_matching import FlowMatching
from specmatch.diffusion.samplers import EulerMaruyamaSampler
from specmatch.engine.sampling import PerSampleNoise, generate, sample_labels

LATENT = (4, 4, 4)
NUM_CLASSES = 3
ROOT = Path(__file__).resolve().parents[2]


def single_process():
    return SimpleNamespace(process_index=0, num_processes=1, device=torch.device("cpu"))


def tiny_denoiser():
    torch.manual_seed(0)
    model = build_dit("dit-micro", input_size=LATENT[1], in_channels=LATENT[0], patch_size=2,
                      num_classes=NUM_CLASSES)
    for p in model.parameters():  # adaLN-Zero starts at zero output: give it a non-trivial function
        p.data.normal_(0, 0.05, generator=torch.Generator().manual_seed(p.numel()))
    return model.eval()


def generate_range(accelerator, indices: range, batch_size: int) -> torch.Tensor:
    """Stochastic sampler (fresh noise every step) with guidance on part of the path: every source of
    randomness and the doubled batch are exercised."""
    sampler = EulerMaruyamaSampler(steps=6, cfg_scale=2.0, guidance_low=0.0, guidance_high=0.6)
    return generate(accelerator, sampler, tiny_denoiser(), FlowMatching(), None, indices=indices,
                    latent_shape=LATENT, seed=1234, batch_size=batch_size, num_classes=NUM_CLASSES, decode=False)


def test_samples_do_not_depend_on_the_batch_size_or_the_range():
    small = generate_range(single_process(), range(0, 20), batch_size=7)
    large = generate_range(single_process(), range(0, 20), batch_size=50)
    assert small.shape == (20, *LATENT)
    torch.testing.assert_close(small, large, rtol=1e-5, atol=1e-6)
    middle = generate_range(single_process(), range(5, 12), batch_size=3)
    torch.testing.assert_close(middle, large[5:12], rtol=1e-5, atol=1e-6)
    assert (large[0] - large[1]).abs().max() > 0.1  # different samples differ


def test_noise_and_labels_are_per_index():
    noise = PerSampleNoise(7, [4, 9], (2, 3), device="cpu", dtype=torch.float32)
    alone = PerSampleNoise(7, [9], (2, 3), device="cpu", dtype=torch.float32)
    assert torch.equal(noise(0)[1], alone(0)[0]) and torch.equal(noise(3)[1], alone(3)[0])
    assert not torch.equal(noise(0), noise(1))  # each step draws fresh noise
    assert not torch.equal(noise(0), PerSampleNoise(8, [4, 9], (2, 3), device="cpu", dtype=torch.float32)(0))
    labels = sample_labels(7, range(200), 3)
    assert torch.equal(labels[50:60], sample_labels(7, range(50, 60), 3))
    assert set(labels.tolist()) == {0, 1, 2}


@pytest.mark.slow
def test_two_processes_give_the_same_samples(tmp_path):
    out = tmp_path / "two.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           str(ROOT / "tests" / "engine" / "sampling_worker.py"), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = torch.load(out)
    assert saved["processes"] == 2
    two = saved["samples"]
    one = generate_range(single_process(), range(3, 14), batch_size=4)
    torch.testing.assert_close(two, one, rtol=1e-5, atol=1e-6)
