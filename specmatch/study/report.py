"""A study's report: results.csv (one row per group and metric), report.md (the table with intervals and
significance marks) and report.html (one self-contained file with the figures; see report_html.py).

Cells that are not complete or reused, or whose run folder has no numbers, are listed as missing; they never
stop the report.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

import attrs

from specmatch.core.plan import STAGES

from .cells import CellOutcome
from .collect import CellData, collect_cell
from .stats import GENERATION_PREFIX, GFID, Correlation, GroupStats, by_group, correlations, direction, summarize

CSV_COLUMNS = ("group", "metric", "direction", "n", "mean", "sd", "ci_low", "ci_high", "diff_vs_baseline",
               "diff_ci_low", "diff_ci_high", "n_pairs", "p", "significant", "p_holm", "significant_holm", "rank",
               "unpaired_seeds")


@attrs.frozen(kw_only=True)
class StudyResults:
    title: str
    baseline: str | None  # the baseline used for paired tests (None when absent from the results)
    cells: list[CellData]  # cells with numbers
    rows: list[GroupStats]
    correlations: list[Correlation]
    diagnostics: list[str]  # diagnostic scalar names (correlated with gFID)
    # the other metrics against gFID (reconstruction, latent statistics): what a diagnostic must beat to add
    # anything; generation metrics (gen_*) are left out, being measured on the same samples as gFID
    metric_correlations: list[Correlation] = attrs.field(factory=list)
    missing: list[tuple[str, str, str]]  # (cell id, status, reason)
    notes: list[str]  # what a reader must know: a baseline without results, unpaired seeds, unreadable files

    def groups(self) -> list[str]:
        seen: dict[str, None] = {}
        for data in self.cells:
            seen.setdefault(data.cell.group, None)
        return list(seen)


def analyse(outcomes: Sequence[CellOutcome], *, baseline: str | None, title: str) -> StudyResults:
    cells, missing, notes = [], [], []
    for outcome in outcomes:
        data = collect_cell(outcome)
        notes.extend(f"{outcome.cell.id}: {problem}" for problem in data.problems)
        if outcome.status not in ("complete", "reused"):
            missing.append((outcome.cell.id, outcome.status, outcome.error or "no result yet"))
        elif not data.values():
            missing.append((outcome.cell.id, outcome.status, f"no metrics in {outcome.cell.run_dir}"))
        else:
            cells.append(data)
    values = by_group((d.cell.group, d.cell.seed, d.values()) for d in cells)
    used = baseline if baseline in values else None
    if baseline and used is None:
        notes.append(f"baseline {baseline!r} has no results: no paired differences or tests")
    rows = summarize(values, used)
    for r in rows:
        if r.unpaired_seeds:
            notes.append(f"{r.group}: seeds {list(r.unpaired_seeds)} have no partner in the baseline or the group "
                         f"and are left out of its paired tests")
        if r.n_pairs >= 2 and r.p is None:
            notes.append(f"{r.group} / {r.metric}: the same difference at every seed; the t-test is undefined "
                         f"(no p-value)")
    diagnostics = sorted({k for d in cells for k in d.diagnostics})
    corr = correlations([d.values() for d in cells], diagnostics)
    others = sorted({k for d in cells for k in d.metrics if not k.startswith(GENERATION_PREFIX)})
    return StudyResults(title=title, baseline=used, cells=cells, rows=rows, correlations=corr,
                        diagnostics=diagnostics, metric_correlations=correlations([d.metrics for d in cells], others),
                        missing=missing, notes=list(dict.fromkeys(notes)))


def write_report(outcomes: Sequence[CellOutcome], *, output_dir: Path, baseline: str | None,
                 title: str) -> dict[str, Path]:
    """Writes output_dir/report.html (self-contained, offline), output_dir/results.csv, output_dir/report.md;
    returns {"html": ..., "csv": ..., "md": ...}."""
    from .report_html import render_html

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    results = analyse(outcomes, baseline=baseline, title=title)
    paths = {"html": output_dir / "report.html", "csv": output_dir / "results.csv", "md": output_dir / "report.md"}
    write_csv(results, paths["csv"])
    paths["md"].write_text(render_markdown(results), encoding="utf-8")
    paths["html"].write_text(render_html(results), encoding="utf-8")
    return paths


def fmt(value: Any, digits: int = 4) -> str:
    """A number for people: 4 significant digits; missing and NaN as empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def fmt_seconds(value: float) -> str:
    """Seconds for people: whole seconds from 100 s up (2254, not 2.25e+03), 3 significant digits below."""
    return f"{value:.0f}" if abs(value) >= 100 else fmt(float(value), 3)


def correlation_cells(c: Correlation) -> list[str]:
    """One row of a Spearman table (diagnostic or metric, rho, p, N), as both report files show it."""
    return [c.diagnostic, f"{c.rho:.3f}", f"{c.p:.3g}", str(c.n)]


def mark(row: GroupStats) -> str:
    """"**": p < 0.05 after Holm's correction; "*": p < 0.05 uncorrected only; "": not significant or untested.
    A significant difference on a metric with a known direction also says "better" or "worse"."""
    stars = "**" if row.significant_holm else "*" if row.significant else ""
    better = direction(row.metric)
    if not stars or better is None or not row.diff:
        return stars
    return f"{stars} {'better' if (row.diff < 0) == (better == 'lower') else 'worse'}"


def interval(row: GroupStats) -> str:
    return "one seed: no interval" if row.ci_low is None else f"[{fmt(row.ci_low)}, {fmt(row.ci_high)}]"


def write_csv(results: StudyResults, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for r in results.rows:
            writer.writerow([r.group, r.metric, direction(r.metric) or "", r.n, _raw(r.mean), _raw(r.sd),
                             _raw(r.ci_low), _raw(r.ci_high), _raw(r.diff), _raw(r.diff_ci_low),
                             _raw(r.diff_ci_high), r.n_pairs if r.diff is not None else "", _raw(r.p),
                             _raw(r.significant), _raw(r.p_holm), _raw(r.significant_holm), _raw(r.rank),
                             " ".join(str(s) for s in r.unpaired_seeds)])


def _raw(value: Any) -> str:
    """Full precision for the CSV (people read the markdown; programs read this)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def table_rows(results: StudyResults) -> list[list[str]]:
    """The results table as text cells (markdown and HTML share it)."""
    out = []
    for r in sorted(results.rows, key=lambda r: (r.metric, r.group)):
        diff = "baseline" if r.group == results.baseline else fmt(r.diff)
        if r.diff is not None and r.diff_ci_low is not None:
            diff += f" [{fmt(r.diff_ci_low)}, {fmt(r.diff_ci_high)}]"
        spread = f"{fmt(r.mean)} ± {fmt(r.sd)}" if r.n > 1 else fmt(r.mean)
        out.append([r.metric, r.group, str(r.n), spread, interval(r), diff,
                    fmt(r.p, 3), mark(r), fmt(r.rank)])
    return out


TABLE_HEADER = ["metric", "group", "n", "mean ± sd", "95 % CI", "diff vs baseline [95 % CI]", "p (paired t)",
                "sig.", "rank"]
LEGEND = ("mean ± sd over seeds (sd with n - 1); 95 % CI: Student t over seeds; diff: mean of the paired "
          "differences group - baseline over seeds both have; p: two-sided paired t-test; sig.: * p < 0.05, "
          "** p < 0.05 after Holm's correction across the groups of that metric, with better or worse than "
          "the baseline where the metric has a direction; rank 1 = best "
          "(metrics without a known direction are not ranked)")


def headline(results: StudyResults) -> list[str]:
    """One sentence per group: the metrics that differ from the baseline at p < 0.05, or that none do."""
    if results.baseline is None:
        return []
    out = []
    for group in results.groups():
        if group == results.baseline:
            continue
        rows = [r for r in results.rows if r.group == group]
        found = [f"{r.metric} {fmt(r.diff)} [{fmt(r.diff_ci_low)}, {fmt(r.diff_ci_high)}] ({mark(r)}, p={fmt(r.p, 3)}, "
                 f"Holm {fmt(r.p_holm, 3)})" for r in sorted(rows, key=lambda r: r.metric) if r.significant]
        tested = sum(r.p is not None for r in rows)
        out.append(f"{group} vs {results.baseline}: " + ("; ".join(found) if found else
                   f"no difference at p < 0.05 ({tested} metrics tested)"))
    return out


#: stage -> its metrics.json time key: the stages whose seconds add up to a cell's cost (the latent cache's
#: are part of the denoiser's)
STAGE_TIMES = {stage: f"time_{stage}_s" for stage in STAGES}


def timing_rows(results: StudyResults) -> tuple[list[str], list[list[str]]]:
    """(header, rows): each group's mean seconds per stage over its seeds (metrics.json time_<stage>_s: each
    stage's seconds summed over the invocations that worked on it); the total of its cells' stage seconds,
    marked "at least" when a cell completed a stage in its own folder (CellData.stages) without a time for it
    (resumed from a state that did not record its seconds); and the total wall time of its cells' last runs
    as study.json records them (CellOutcome.seconds: a reused cell counts what its last run cost)."""
    stages = sorted({k for d in results.cells for k in d.timings})
    rows = []
    for group in results.groups():
        cells = [d for d in results.cells if d.cell.group == group]
        row = [group, str(len(cells))]
        for stage in stages:
            values = [d.timings[stage] for d in cells if stage in d.timings]
            row.append(fmt_seconds(sum(values) / len(values)) if values else "")
        total = sum(d.timings.get(k, 0.0) for d in cells for k in STAGE_TIMES.values())
        # a stage the cell's own folder completed whose seconds are unknown (resumed from an older state)
        partial = any(STAGE_TIMES[s] not in d.timings for d in cells for s in d.stages)
        known = any(k in d.timings for d in cells for k in STAGE_TIMES.values())
        row.append(("at least " if partial else "") + fmt_seconds(total) if known else "")
        ran = [d.outcome.seconds for d in cells if d.outcome.seconds is not None]
        row.append(fmt_seconds(sum(ran)) if ran else "")
        rows.append(row)
    header = ["group", "cells", *[s.removeprefix("time_").removesuffix("_s") + " (s, mean)" for s in stages],
              "stages (s, total)", "cell runs (s, total)"]
    return header, rows


def render_markdown(results: StudyResults) -> str:
    lines = [f"# {results.title}", "", f"baseline: {results.baseline or 'none'}; groups: "
             f"{', '.join(results.groups()) or 'none'}; cells with results: {len(results.cells)}", "", LEGEND, "",
             "| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    summary = headline(results)
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in table_rows(results)]
    if summary:
        lines[4:4] = ["Differences from the baseline at p < 0.05 (paired t-test; mean difference [95 % CI]):", ""] \
            + [f"- {line}" for line in summary] + [""]
    lines += ["", f"## Diagnostics against {GFID} (Spearman, all cells)", ""]
    if results.correlations:
        lines += ["| diagnostic | rho | p | N |", "|---|---|---|---|"]
        lines += ["| " + " | ".join(correlation_cells(c)) + " |" for c in results.correlations]
    else:
        lines.append(f"no diagnostic has {GFID} alongside it in 3 or more cells")
    if results.metric_correlations:
        lines += ["", f"The other metrics against {GFID}, for comparison (a diagnostic that ranks the cells no "
                      f"better than these adds little):", "", "| metric | rho | p | N |", "|---|---|---|---|"]
        lines += ["| " + " | ".join(correlation_cells(c)) + " |" for c in results.metric_correlations]
    header, rows = timing_rows(results)
    lines += ["", "## Wall time", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "## Missing or failed cells", ""]
    lines += [f"- {cid} ({status}): {reason}" for cid, status, reason in results.missing] or ["none"]
    if results.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in results.notes]
    return "\n".join(lines) + "\n"
