"""The unit of a study: one cell (a recipe at one seed, optionally with one denoiser) and its outcome."""

from __future__ import annotations

from pathlib import Path

import attrs


@attrs.frozen(kw_only=True)
class Cell:
    recipe: str  # the study's label of the autoencoder recipe or variant, e.g. "sdvae"
    seed: int
    denoiser: str = ""  # label of the denoiser recipe trained on this autoencoder ("" = the recipe's own)
    run_dir: Path  # the run folder of this cell (a normal specmatch run folder)

    @property
    def id(self) -> str:
        """Unique within a study: "sdvae/seed-0" or "sdvae/seed-0/sit"."""
        base = f"{self.recipe}/seed-{self.seed}"
        return f"{base}/{self.denoiser}" if self.denoiser else base

    @property
    def group(self) -> str:
        """What seeds are aggregated over: "sdvae" or "sdvae/sit"."""
        return f"{self.recipe}/{self.denoiser}" if self.denoiser else self.recipe


@attrs.frozen(kw_only=True)
class CellOutcome:
    cell: Cell
    status: str  # "complete" | "reused" | "failed" | "pending"
    error: str = ""  # one line for a failed cell (the cell's run.log has the traceback)
    seconds: float | None = None  # wall time of the invocation that ran the cell (study.json); None: pending
