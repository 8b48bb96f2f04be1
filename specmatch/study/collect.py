"""Read one cell's run folder into numbers: metrics, timings, diagnostic scalars, the latent spectrum, training
curves, image grids and the resolved recipe.

Reading never raises for a damaged or partial folder: what cannot be read is named in ``CellData.problems`` and
the report lists it, so one bad cell cannot take the study's report down.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import attrs

from specmatch.core.layout import RunLayout
from specmatch.core.plan import STAGES

from .cells import CellOutcome

# metrics.json keys that count things rather than measure quality: kept out of the statistics
COUNT_KEYS = frozenset({"processes", "gen_n", "gen_samples", "recon_images", "rn"})
# metrics.json numbers without a provenance stamp that are not diagnostics: the latent statistics' scale
# (engine/pipeline.py), kept as metrics
LATENT_STATISTICS = frozenset({"latent_mean", "latent_std"})
# metrics.json keys of the built-in diagnostics (spectrum KLs and slopes, low-pass fidelity), for a metrics.json
# without provenance
DIAGNOSTIC_PREFIXES = ("spectrum_", "lowpass_")
# run-folder JSON files that are not diagnostic reports
NOT_DIAGNOSTIC_FILES = frozenset({"metrics.json", "analysis.json", "study.json"})


@attrs.frozen(kw_only=True)
class CellData:
    outcome: CellOutcome
    metrics: dict[str, float] = attrs.field(factory=dict)  # numeric quality metrics of metrics.json
    timings: dict[str, float] = attrs.field(factory=dict)  # time_<stage>_s of metrics.json
    #: the stages this run folder completed itself (their stage.json is here; not one reused via from_run)
    stages: tuple[str, ...] = ()
    diagnostics: dict[str, float] = attrs.field(factory=dict)  # diagnostic scalars, from every source
    spectrum: dict[str, Any] | None = None  # spectrum.json: band distributions of the latent and delta targets
    curves: list[dict[str, Any]] = attrs.field(factory=list)  # metrics.jsonl rows: {"stage", "step", ...}
    grids: dict[str, Path] = attrs.field(factory=dict)  # "reconstructions" / "samples" -> PNG file
    recipe: dict[str, Any] = attrs.field(factory=dict)  # the resolved recipe.toml
    problems: list[str] = attrs.field(factory=list)  # files that exist but could not be read

    @property
    def cell(self):
        return self.outcome.cell

    def values(self) -> dict[str, float]:
        """Every number the statistics aggregate: metrics and diagnostic scalars."""
        return {**self.metrics, **self.diagnostics}


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def collect_cell(outcome: CellOutcome) -> CellData:
    """The numbers of a complete or reused cell; an empty CellData for a failed or pending one."""
    if outcome.status not in ("complete", "reused"):
        return CellData(outcome=outcome)
    layout = RunLayout(Path(outcome.cell.run_dir))
    problems: list[str] = []
    metrics, timings, diagnostics, evaluated = {}, {}, {}, {}

    flat = _read_json(layout.metrics, problems)
    if isinstance(flat, dict):
        metrics, timings, evaluated = split_metrics(flat)
        diagnostics.update(evaluated)
    elif layout.root.is_dir() and not layout.metrics.is_file():
        problems.append(f"{layout.metrics}: missing (the run has not finished its evaluation stage)")

    analysis = layout.root / "analysis.json"
    if analysis.is_file():
        diagnostics.update(analysis_scalars(_read_json(analysis, problems)))

    # diagnostic report files: the evaluation stage put their scalars into metrics.json already; read numbers
    # from them only when metrics.json has none (a run whose metrics.json is missing or older)
    spectrum, from_files = None, {}
    for path in sorted(layout.root.glob("*.json")):
        if path.name in NOT_DIAGNOSTIC_FILES:
            continue
        report = _read_json(path, problems)
        if not isinstance(report, dict):
            continue
        if _is_spectrum(report):
            spectrum = report if path == layout.spectrum or spectrum is None else spectrum
            from_files.update(spectrum_scalars(report, prefix="spectrum_"))
        else:
            from_files.update(numeric_leaves(report, prefix=f"{path.stem.replace('-', '_')}_"))
    if not evaluated:
        diagnostics.update({k: v for k, v in from_files.items() if k not in diagnostics})

    # training stages leave a stage.json; the evaluation leaves its statistics file
    stages = tuple(s for s in STAGES if (layout.evaluation_statistics.is_file() if s == "evaluation"
                                         else layout.completed_key(s)))
    return CellData(outcome=outcome, metrics=metrics, timings=timings, stages=stages, diagnostics=diagnostics,
                    spectrum=spectrum,
                    curves=_read_curves(layout.curves, problems),
                    grids={name: path for name, path in (("reconstructions", layout.reconstructions_grid),
                                                         ("samples", layout.samples_grid)) if path.is_file()},
                    recipe=_read_recipe(layout.recipe, problems), problems=problems)


def split_metrics(flat: dict[str, Any]) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(metrics, timings, diagnostic scalars) of metrics.json's numbers; counts and labels are left out.

    The evaluation stage stamps every metric it computes in ``provenance`` and adds its diagnostics' scalars
    without a stamp, so an unstamped number is a diagnostic. A metrics.json without provenance falls back to
    the names of the built-in diagnostics (``spectrum_*``, ``lowpass_*``).
    """
    stamped = flat.get("provenance") if isinstance(flat.get("provenance"), dict) else None
    metrics, timings, diagnostics = {}, {}, {}
    for key, value in flat.items():
        if key == "provenance" or key in COUNT_KEYS or not is_number(value):
            continue
        if key.startswith("time_"):
            timings[key] = float(value)
        elif _is_diagnostic(key, stamped):
            diagnostics[key] = float(value)
        else:
            metrics[key] = float(value)
    return metrics, timings, diagnostics


def _is_diagnostic(key: str, stamped: dict | None) -> bool:
    if not stamped:
        return key.startswith(DIAGNOSTIC_PREFIXES)
    return key not in stamped and key not in LATENT_STATISTICS


def analysis_scalars(report: Any) -> dict[str, float]:
    """Numbers of ``specmatch analyze``'s analysis.json, prefixed ``analysis_``, in either layout:

    * one spectrum report (``targets``, ``latent``, ``lowpass``), the layout of ``analyze_run``;
    * ``{diagnostic name: {settings, n, scalars | report}}``: a diagnostic's ``scalars`` when given, else the
      numbers of its ``report``.
    """
    if not isinstance(report, dict):
        return {}
    if _is_spectrum(report):
        out = spectrum_scalars(report, prefix="analysis_")
        out.update({f"analysis_{k}": float(v) for k, v in (report.get("lowpass") or {}).items() if is_number(v)})
        return out
    out: dict[str, float] = {}
    for name, entry in report.items():
        if not isinstance(entry, dict):
            continue
        label = str(name).replace("-", "_")
        scalars = entry.get("scalars")
        if isinstance(scalars, dict):
            out.update({f"analysis_{k}": float(v) for k, v in scalars.items() if is_number(v)})
        elif isinstance(entry.get("report"), dict):
            inner = entry["report"]
            if _is_spectrum(inner):
                out.update(spectrum_scalars(inner, prefix="analysis_"))
            else:
                out.update(numeric_leaves(inner, prefix=f"analysis_{label}_"))
    return out


def spectrum_scalars(report: dict[str, Any], *, prefix: str) -> dict[str, float]:
    """The flat numbers of a spectrum report, named as the evaluation stage names them in metrics.json."""
    out: dict[str, float] = {}
    for delta, target in (report.get("targets") or {}).items():
        if not isinstance(target, dict):
            continue
        if is_number(target.get("kl_to_latent")):
            out[f"{prefix}kl_delta{delta}"] = float(target["kl_to_latent"])
        if is_number(target.get("kl_to_latent_dc_removed")):
            out[f"{prefix}kl_delta{delta}_dc_removed"] = float(target["kl_to_latent_dc_removed"])
    slope = (report.get("latent") or {}).get("slope")
    if is_number(slope):
        out[f"{prefix}latent_slope"] = float(slope)
    return out


def numeric_leaves(data: Any, *, prefix: str) -> dict[str, float]:
    """Scalar numbers of a nested report (lists, such as distributions, are not scalars)."""
    from specmatch.compare import flatten

    return {f"{prefix}{key}".replace(".", "_").replace("-", "_"): float(value)
            for key, value in flatten(data).items() if is_number(value) and "[" not in key}


def _is_spectrum(report: dict[str, Any]) -> bool:
    return isinstance(report.get("targets"), dict) and isinstance(report.get("latent"), dict)


def _read_json(path: Path, problems: list[str]) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        problems.append(f"{path}: not readable JSON ({e})")
        return None


def _read_curves(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    """metrics.jsonl rows; a line cut short by a kill is skipped, as the trainer itself does."""
    if not path.is_file():
        return []
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        problems.append(f"{path}: not readable ({e})")
        return []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return rows


def _read_recipe(path: Path, problems: list[str]) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        problems.append(f"{path}: not readable TOML ({e})")
        return {}
