"""Small synthetic run folders in the real layouts (metrics.json, spectrum.json, metrics.jsonl, recipe.toml, image
grids), so report tests need no training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

N_BINS = 8


def band_distribution(slope: float) -> list[float]:
    p = np.arange(1, N_BINS + 1, dtype=float) ** slope
    return (p / p.sum()).tolist()


def spectrum(latent_slope: float) -> dict:
    return {"n_images": 16, "n_bins": N_BINS, "center": "none", "remove_dc": False,
            "image": {"mean": band_distribution(-1.0), "std": [0.01] * N_BINS, "slope": -1.0},
            "targets": {"0": {"mean": band_distribution(-1.0), "std": [0.01] * N_BINS, "kl_to_latent": 0.2,
                              "kl_to_latent_dc_removed": 0.1, "slope": -1.0},
                        "1": {"mean": band_distribution(-0.5), "std": [0.01] * N_BINS,
                              "kl_to_latent": abs(latent_slope + 0.5), "kl_to_latent_dc_removed": 0.05,
                              "slope": -0.5}},
            "latent": {"mean": band_distribution(latent_slope), "std": [0.01] * N_BINS, "slope": latent_slope}}


def grid_png(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (36, 70, 3), dtype=np.uint8)).save(path)


def write_run(root: Path, name: str, *, seed: int, gen_fid: float, psnr: float, latent_slope: float,
              latent_channels: int = 4, steps: int = 40) -> Path:
    run = root / name
    run.mkdir(parents=True)
    run.joinpath("recipe.toml").write_text(
        f'[run]\nname = "{name}"\nseed = {seed}\n\n[autoencoder]\nname = "micro"\n'
        f"params = {{ latent_channels = {latent_channels} }}\n")
    spec = spectrum(latent_slope)
    metrics = {"protocol": "custom", "gen_fid": gen_fid, "gen_kid": gen_fid / 100, "recon_psnr": psnr,
               "gen_n": 64.0, "processes": 1, "time_autoencoder_s": 3.5, "latent_std": 1.5,
               "spectrum_kl_delta1": spec["targets"]["1"]["kl_to_latent"], "spectrum_latent_slope": latent_slope,
               "provenance": {key: {"protocol": "custom", "network": "tiny", "n": 64}
                              for key in ("gen_fid", "gen_kid", "recon_psnr")}}
    run.joinpath("metrics.json").write_text(json.dumps(metrics))
    run.joinpath("spectrum.json").write_text(json.dumps(spec))
    rows = [{"stage": stage, "step": step, "loss/total": 1.0 / step + gen_fid / 1000, "time/step_seconds": 0.1}
            for stage in ("autoencoder", "denoiser") for step in range(10, steps + 1, 10)]
    run.joinpath("metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    grid_png(run / "reconstructions.png", seed)
    grid_png(run / "samples.png", seed + 100)
    return run
