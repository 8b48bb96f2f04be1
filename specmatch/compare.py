"""Side-by-side views: metrics of several runs, and the differences between two resolved recipes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core.errors import SpecmatchError

if TYPE_CHECKING:
    from .study.cells import CellOutcome


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested tables to dotted keys; arrays of tables get [i] indices; other arrays stay values."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else key))
    elif isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        for i, value in enumerate(data):
            out.update(flatten(value, f"{prefix}[{i}]"))
    else:
        out[prefix] = data
    return out


def run_metrics(run_dir: Path) -> dict[str, Any]:
    from specmatch.core.layout import RunLayout

    path = RunLayout(run_dir).metrics
    if not path.is_file():
        raise SpecmatchError(f"{run_dir} has no metrics.json (not a finished specmatch run)")
    metrics = json.loads(path.read_text())
    metrics.pop("provenance", None)  # per-metric protocol, network and N: shown in summary.md
    analysis = run_dir / "analysis.json"
    if not analysis.is_file():
        return metrics
    report = json.loads(analysis.read_text())
    if "targets" in report:  # the older layout (one spectrum report, before diagnostics were plugins)
        metrics["analysis_n"] = report.get("n_images")
        for delta, target in report.get("targets", {}).items():
            metrics[f"analysis_kl_delta{delta}"] = target["kl_to_latent"]
            if "kl_to_latent_dc_removed" in target:
                metrics[f"analysis_kl_delta{delta}_dc_removed"] = target["kl_to_latent_dc_removed"]
        metrics["analysis_latent_slope"] = report.get("latent", {}).get("slope")
        metrics.update({f"analysis_{k}": v for k, v in report.get("lowpass", {}).items()})
        return metrics
    for name, entry in report.items():  # `specmatch analyze`: per diagnostic its N and scalars
        if isinstance(entry, dict):
            metrics[f"analysis/{name}/n"] = entry.get("n")
            metrics.update({f"analysis/{name}/{k}": v for k, v in entry.get("scalars", {}).items()})
    return metrics


def report_outcomes(run_dirs: list[Path]) -> list[CellOutcome]:
    """One complete study cell per run folder for ``compare --report``: recipe = the folder's name, seed = the
    run's ``run.seed`` (from its resolved recipe.toml)."""
    import tomllib

    from specmatch.core.layout import RunLayout
    from specmatch.study.cells import Cell, CellOutcome

    names = [d.resolve().name for d in run_dirs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SpecmatchError(f"runs share a folder name ({', '.join(twice)}); the report labels each run by its "
                             f"folder name, so give runs with distinct names")
    outcomes = []
    for run_dir, name in zip(run_dirs, names):
        path = RunLayout(run_dir).recipe
        try:
            recipe = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SpecmatchError(f"{path}: missing; {run_dir} is not a specmatch run folder") from None
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise SpecmatchError(f"{path}: not readable TOML ({e})") from None
        run = recipe.get("run", {})
        seed = run.get("seed", 0) if isinstance(run, dict) else None  # 0: the schema's default run.seed
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise SpecmatchError(f"{path}: run.seed must be an integer; got {seed!r}")
        outcomes.append(CellOutcome(cell=Cell(recipe=name, seed=seed, run_dir=run_dir), status="complete"))
    return outcomes


def run_labels(run_dirs: list[Path]) -> list[str]:
    """Each run's folder name, with as many parent folders as it takes to tell the runs apart (study cells are
    all named ``seed-0``: ``ae/seed-0``, ``esm/seed-0``)."""
    parts = [Path(d).resolve().parts for d in run_dirs]
    for depth in range(1, max((len(p) for p in parts), default=1) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(d) for d in run_dirs]  # the same folder given twice


def compare_runs(run_dirs: list[Path]) -> tuple[list[str], list[list[Any]]]:
    """(header, rows): one row per metric, one column per run."""
    columns = [run_metrics(d) for d in run_dirs]
    keys = sorted({k for c in columns for k in c})
    return ["metric", *run_labels(run_dirs)], [[k, *[c.get(k) for c in columns]] for k in keys]


def common_text_rows(rows: list[list[Any]]) -> tuple[list[list[Any]], list[tuple[str, str]]]:
    """(rows, common): text values that every run shares (the reference file, the feature network) leave the
    table for a list under it, so one long path does not widen every column."""
    kept, common = [], []
    for key, *values in rows:
        if len(values) > 1 and isinstance(values[0], str) and all(v == values[0] for v in values):
            common.append((key, values[0]))
        else:
            kept.append([key, *values])
    return kept, common


def diff_recipes(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    fa, fb = flatten(a), flatten(b)
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def render_table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    table = [header] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table)
