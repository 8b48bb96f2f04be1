"""``DIR/study.json``: every cell's id, status, error, seconds, run folder and the key it completed with.

Rewritten atomically (a temporary file, then a rename) after every cell, so a killed study leaves a readable
file and a rerun knows which cells are complete. The ``key`` is the cell's last stage key (it hashes every stage
before it); a cell is reused only when its recorded key is the key its recipe has now.

Several invocations may share one study folder (``--only`` with disjoint patterns, say one per core): each
write holds ``DIR/.study.lock`` (``fcntl.flock``), reads the file again and replaces only the cell it records,
so one invocation never erases what another recorded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from .cells import Cell, CellOutcome

try:
    import fcntl
except ImportError:  # Windows: no flock; concurrent invocations on one folder are not merged there
    fcntl = None

STATE_FILE = "study.json"
LOCK_FILE = ".study.lock"
log = logging.getLogger(__name__)


class StudyState:
    def __init__(self, output_dir: Path, name: str):
        self.path = Path(output_dir) / STATE_FILE
        self.name = name
        self.cells: dict[str, dict[str, Any]] = self._read(warn=True)

    def _read(self, warn: bool = False) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            cells = data.get("cells", {}) if isinstance(data, dict) else {}
            return {k: v for k, v in cells.items() if isinstance(v, dict)}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, UnicodeDecodeError, AttributeError) as exc:
            if warn:
                log.warning(f"{self.path} is not readable ({exc}); every cell's status is checked again")
            return {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            yield
            return
        with open(self.path.parent / LOCK_FILE, "a+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def recorded(self, cell_id: str) -> dict[str, Any] | None:
        return self.cells.get(cell_id)

    def record(self, outcome: CellOutcome, key: str = "") -> None:
        cell = outcome.cell
        with self._locked():
            # what other invocations recorded since this one last looked, then this cell on top
            self.cells.update(self._read())
            previous = self.cells.get(cell.id, {})
            self.cells[cell.id] = {
                "id": cell.id, "recipe": cell.recipe, "seed": cell.seed, "denoiser": cell.denoiser,
                "run_dir": str(cell.run_dir), "status": outcome.status, "error": outcome.error,
                # a reused cell keeps the wall time of the invocation that ran it
                "seconds": outcome.seconds if outcome.seconds is not None or outcome.status != "reused"
                else previous.get("seconds"),
                # a pending or failed cell keeps the key it last completed with: nothing it holds was invalidated
                "key": key or previous.get("key", ""),
            }
            self._write()

    def outcome(self, cell: Cell) -> CellOutcome:
        """What this file says of a cell that this invocation did not touch (``--only``), read again now."""
        rec = self._read().get(cell.id) or self.cells.get(cell.id) or {}
        status = rec.get("status", "pending")
        status = status if status in ("complete", "reused", "failed") else "pending"
        seconds = rec.get("seconds")
        return CellOutcome(cell=cell, status=status, error=str(rec.get("error", "")),
                           seconds=float(seconds) if isinstance(seconds, (int, float)) else None)

    def save(self) -> None:
        with self._locked():
            self._write()

    def _write(self) -> None:
        data = {"study": self.name, "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "cells": self.cells}
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
