"""What a finished run writes for people: ``metrics.json``, ``summary.md``, ``spectrum.json``, image grids,
and the metrics table printed at the end."""

from __future__ import annotations

from typing import Any

from specmatch import __version__
from specmatch.core.layout import RunLayout
from specmatch.core.recipe import ResolvedRecipe

from .checkpoint import write_json_atomic


def flat_metrics(metrics: dict[str, Any], timings: dict[str, float], processes: int) -> dict[str, Any]:
    """One flat object: numbers and labels, the wall time of every stage that ran, the process count."""
    flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
    flat.update({f"time_{k}_s": round(v, 2) for k, v in timings.items()})
    flat["processes"] = processes
    return flat


def write_report(layout: RunLayout, resolved: ResolvedRecipe, flat: dict[str, Any], *, device: str,
                 reports: dict[str, dict] | None = None,
                 provenance: dict[str, dict[str, Any]] | None = None) -> None:
    """``metrics.json``: the flat metrics plus ``provenance`` (metric -> its protocol, feature network and N);
    ``summary.md``: one table whose rows carry the same three columns; each diagnostic's report in its file."""
    provenance = provenance or {}
    write_json_atomic(layout.metrics, {**flat, "provenance": provenance} if provenance else flat)
    for name, content in (reports or {}).items():  # diagnostics' reports, e.g. spectrum.json
        write_json_atomic(layout.root / name, content)
    lines = [f"# {resolved.recipe.run.name}", "", f"recipe hash `{resolved.section_hash()}`, specmatch "
             f"{__version__}, {flat['processes']} process(es) on {device}", "",
             "| metric | value | protocol | network | N |", "|---|---|---|---|---|"]
    for key, value in sorted(flat.items()):
        shown = f"{value:.4g}" if isinstance(value, float) else f"{value}"
        where = provenance.get(key)
        extra = f"{where['protocol']} | {where['network']} | {where['n']}" if where else " | | "
        lines.append(f"| {key} | {shown} | {extra} |")
    layout.summary.write_text("\n".join(lines) + "\n")


def write_grids(layout: RunLayout, originals, reconstructions, samples, size: int) -> None:
    """``reconstructions.png`` (originals above reconstructions) and ``samples.png`` (when there are samples)."""
    from .evaluation import interleave_rows, save_grid

    half = size // 2
    save_grid(interleave_rows(originals[:half], reconstructions[:half], per_row=8), layout.reconstructions_grid,
              nrow=8)
    if samples is not None:
        save_grid(samples[:size], layout.samples_grid)


def metrics_table(metrics: dict[str, Any]) -> str:
    rows = [("metric", "value")]
    for key in sorted(metrics):
        v = metrics[key]
        rows.append((key, f"{v:.4g}" if isinstance(v, float) else str(v)))
    w = max(len(r[0]) for r in rows)
    return "\n".join(f"{a:<{w}}  {b}" for a, b in rows)
