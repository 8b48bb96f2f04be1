"""Where a run keeps its files: the one place that spells out the layout of a run folder.

::

    RUN/recipe.toml  metrics.json  metrics.jsonl  summary.md  spectrum.json  samples.png  reconstructions.png
    RUN/.lock                                   the run lock (held while a run writes here)
    RUN/autoencoder/model.safetensors  ema.safetensors  stage.json  checkpoints/step_NNNNNNNNN/
    RUN/autoencoder/latent_stats.safetensors    latent statistics, marked complete by latent_stats/stage.json
    RUN/autoencoder/latent_cache/               the denoiser's disk latent cache: index.json, moments_NNNNN.npy,
                                                labels_NNNNN.npy (engine/latent_cache.py)
    RUN/denoiser/model.safetensors  ema.safetensors  stage.json  checkpoints/step_NNNNNNNNN/
    RUN/evaluation/statistics.safetensors       the evaluation's partial statistics, cursor and stage key

Core, the engine, ``analyze`` and ``compare`` all ask this module; none of them builds these paths itself.
"""

from __future__ import annotations

from pathlib import Path

import attrs

MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
MARKER_FILE = "stage.json"
CHECKPOINTS = "checkpoints"


def final_weights(stage_folder: Path) -> Path:
    """The weights a finished training stage is used with: the EMA copy when there is one, else the model."""
    ema = stage_folder / EMA_FILE
    return ema if ema.exists() else stage_folder / MODEL_FILE


@attrs.frozen
class RunLayout:
    root: Path

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.toml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def curves(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def summary(self) -> Path:
        return self.root / "summary.md"

    @property
    def spectrum(self) -> Path:
        return self.root / "spectrum.json"

    @property
    def samples_grid(self) -> Path:
        return self.root / "samples.png"

    @property
    def reconstructions_grid(self) -> Path:
        return self.root / "reconstructions.png"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def autoencoder(self) -> Path:
        return self.root / "autoencoder"

    @property
    def denoiser(self) -> Path:
        return self.root / "denoiser"

    @property
    def latent_stats(self) -> Path:
        return self.autoencoder / "latent_stats.safetensors"

    @property
    def latent_stats_marker(self) -> Path:
        """The folder whose ``stage.json`` marks the latent statistics complete."""
        return self.autoencoder / "latent_stats"

    @property
    def latent_cache(self) -> Path:
        """The disk cache of posterior moments, shared by every denoiser trained on this autoencoder."""
        return self.autoencoder / "latent_cache"

    @property
    def evaluation_statistics(self) -> Path:
        """The evaluation's saved statistics: what a killed evaluation continues from, and its progress."""
        return self.root / "evaluation" / "statistics.safetensors"

    def stage_folder(self, stage: str) -> Path:
        """The folder of a stage's outputs (evaluation writes into the run folder itself)."""
        return {"autoencoder": self.autoencoder, "latent_stats": self.autoencoder,
                "denoiser": self.denoiser, "evaluation": self.root}[stage]

    def completed_key(self, stage: str) -> str:
        """The key in the ``stage.json`` that marks ``stage`` complete, or ``""`` (none yet, or unreadable).

        A run that takes this run's autoencoder (``from_run``) hashes it into its own keys, so retraining the
        source autoencoder invalidates the denoiser trained on the old one."""
        import json

        folder = self.latent_stats_marker if stage == "latent_stats" else self.stage_folder(stage)
        try:
            return str(json.loads((folder / MARKER_FILE).read_text()).get("key", ""))
        except (OSError, ValueError, AttributeError):
            return ""
