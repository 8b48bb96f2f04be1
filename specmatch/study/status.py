"""``specmatch study STUDY --status``: where a study stands, read from its folder while it runs or after.

Per cell: the status ``study.json`` records, ``running`` when a process holds the cell's run lock now (with
the stage and step of the last line of its ``metrics.jsonl``, or the evaluation pass and the items it has
done), and the seconds the cell took. Nothing is started and nothing is written.
"""

from __future__ import annotations

import json
from pathlib import Path

from specmatch.core.layout import RunLayout

from .matrix import CellSpec
from .state import StudyState


def _last_row(path: Path) -> dict:
    """The last complete JSON line of a metrics.jsonl ({} when none)."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            lines = [line for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
        last = json.loads(lines[-1]) if lines else {}
    except (OSError, ValueError):
        return {}
    return last if isinstance(last, dict) else {}


def _evaluation_progress(path: Path) -> str:
    """``evaluation <pass> <done>/<total>`` from the cursor saved with the evaluation statistics ('' if none)."""
    from specmatch.engine.evaluation_stream import saved_progress

    try:
        progress = saved_progress(path)
    except (OSError, ValueError):  # being replaced as we read it
        return ""
    if progress is None:
        return ""
    cursor, sizes = progress
    for name, size in sizes.items():
        if cursor.get(name, 0) < size:
            return f"evaluation {name} {cursor.get(name, 0)}/{size}"
    return "evaluation: metrics and diagnostics"


def _where(run_dir: Path) -> str:
    """Where a running cell is: ``<stage> step <n>`` of the last line of its metrics.jsonl, or the evaluation
    pass and items done once training is over ('' when nothing is written yet)."""
    layout = RunLayout(run_dir)
    stats, curves = layout.evaluation_statistics, layout.curves
    if stats.is_file() and (not curves.is_file() or stats.stat().st_mtime >= curves.stat().st_mtime):
        progress = _evaluation_progress(stats)
        if progress:
            return progress
    last = _last_row(curves)
    if "stage" not in last:
        return ""
    stage = str(last["stage"])
    if layout.completed_key(stage):  # that stage is over; nothing logs steps until the next one does
        return "evaluation" if stage == "denoiser" else f"{stage} complete"
    return f"{stage} step {last['step']}" if "step" in last else stage


def status_rows(specs: list[CellSpec], output_dir: Path, name: str) -> list[tuple[str, str, str, str]]:
    """(cell id, status, seconds, detail) for every cell."""
    from specmatch.engine.run_lock import holder

    state = StudyState(output_dir, name)
    rows = []
    for spec in specs:
        record = state.recorded(spec.cell.id) or {}
        status = str(record.get("status") or "pending")
        seconds = record.get("seconds")
        detail = str(record.get("error") or "")
        held = holder(spec.cell.run_dir)
        if held is not None:
            status = "running"
            command = str(held.get("command", "")).split()
            where = "analyze" if "analyze" in command else _where(spec.cell.run_dir)
            detail = ", ".join(filter(None, [where, f"pid {held['pid']}" if held.get("pid") else ""]))
        rows.append((spec.cell.id, status, f"{seconds:.1f}" if isinstance(seconds, (int, float)) else "-", detail))
    return rows


def render(rows: list[tuple[str, str, str, str]]) -> str:
    table = [("cell", "status", "seconds", "detail"), *rows]
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    counts: dict[str, int] = {}
    for _, status, _, _ in rows:
        counts[status] = counts.get(status, 0) + 1
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip() for r in table]
    return "\n".join(lines) + "\n" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
