"""``DIR/study.json``: every cell's id, status, error, seconds, run folder and the key it completed with.

Rewritten atomically (a temporary file, then a rename) after every cell, so a killed study leaves a readable
file and a rerun knows which cells are complete. The ``key`` is the cell's last stage key (it hashes every stage
before it); a cell is reused only when its recorded key is the key its recipe has now.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .cells import Cell, CellOutcome

STATE_FILE = "study.json"
log = logging.getLogger(__name__)


class StudyState:
    def __init__(self, output_dir: Path, name: str):
        self.path = Path(output_dir) / STATE_FILE
        self.name = name
        self.cells: dict[str, dict[str, Any]] = {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            cells = data.get("cells", {}) if isinstance(data, dict) else {}
            self.cells = {k: v for k, v in cells.items() if isinstance(v, dict)}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, UnicodeDecodeError, AttributeError) as exc:
            log.warning(f"{self.path} is not readable ({exc}); every cell's status is checked again")

    def recorded(self, cell_id: str) -> dict[str, Any] | None:
        return self.cells.get(cell_id)

    def record(self, outcome: CellOutcome, key: str = "") -> None:
        cell = outcome.cell
        previous = self.cells.get(cell.id, {})
        self.cells[cell.id] = {
            "id": cell.id, "recipe": cell.recipe, "seed": cell.seed, "denoiser": cell.denoiser,
            "run_dir": str(cell.run_dir), "status": outcome.status, "error": outcome.error,
            "seconds": outcome.seconds,
            # a pending or failed cell keeps the key it last completed with: nothing it holds was invalidated
            "key": key or previous.get("key", ""),
        }
        self.save()

    def outcome(self, cell: Cell) -> CellOutcome:
        """What this file says of a cell that this invocation did not touch (``--only``)."""
        rec = self.cells.get(cell.id) or {}
        status = rec.get("status", "pending")
        status = status if status in ("complete", "reused", "failed") else "pending"
        return CellOutcome(cell=cell, status=status, error=str(rec.get("error", "")), seconds=None)

    def save(self) -> None:
        data = {"study": self.name, "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "cells": self.cells}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".study-", suffix=".json", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
