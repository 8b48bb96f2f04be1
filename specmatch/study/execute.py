"""``specmatch study``: run every cell of a study, reuse complete ones, keep going past failing ones.

Cells run in two waves: the cells that train their own autoencoder, then the cells that take an autoencoder
from another cell (``autoencoder.from_run``), whose recipe can only be checked once that autoencoder exists.
Within a wave the first seed of every recipe runs before the second seed of any (:func:`matrix.run_order`),
so a study stopped early already compares every recipe.
Each cell is the ``specmatch run`` command of its recipe and overrides in its own process (so the engine's
reuse, resume and run lock apply as they do to any run); this module decides what to start, records every
outcome in ``study.json`` and prints the summary.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from specmatch.core.errors import RecipeError, SpecmatchError
from specmatch.core.layout import MARKER_FILE, RunLayout

from .cells import CellOutcome
from .executors import Job, JobResult, python_command
from .matrix import CellSpec, Loader, run_order
from .schema import Study, toml_inline
from .state import StudyState

LOGS_FOLDER = "logs"
REFERENCE_FOLDER = "reference"
ANALYSIS_FILE = "analysis.json"  # what `specmatch analyze` writes into a run folder


def _marker_matches(folder: Path, key: str) -> bool:
    """A stage marker with this key whose recorded files are all there with their sizes (the run itself also
    checks their hashes: a damaged file found there is resumed or retrained)."""
    try:
        meta = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
        if meta.get("key") != key:
            return False
        files = meta.get("files") or {}
        return all((folder / rel).is_file() and (folder / rel).stat().st_size == rec.get("bytes")
                   for rel, rec in files.items())
    except (OSError, ValueError, AttributeError, TypeError):
        return False


def _hash(*parts: str) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def is_complete(plan: Any, record: dict | None, analysis: bool = False, key: str = "") -> bool:
    """True when the cell completed with the key its recipe has now (``key``; default: its last stage's) and
    its outputs are still there, so it is reused without starting a process."""
    key = key or plan.stages[-1].key
    if not record or record.get("status") not in ("complete", "reused") or record.get("key") != key:
        return False
    layout = RunLayout(Path(plan.output_dir))
    if not (layout.metrics.is_file() and layout.recipe.is_file()):
        return False
    if analysis and not (layout.root / ANALYSIS_FILE).is_file():
        return False
    for stage in plan.stages:
        if stage.reused_from is not None:
            continue
        if stage.name in ("autoencoder", "denoiser") and not _marker_matches(stage.folder, stage.key):
            return False
        if stage.name == "latent_stats" and not _marker_matches(layout.latent_stats_marker, stage.key):
            return False
    return True


def last_error(log_file: Path, returncode: int) -> str:
    """One line for a failed cell: the command's ``Error: ...`` line, else how it ended."""
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    errors = [line for line in lines if line.startswith("Error:")]
    if errors:
        return errors[-1][len("Error:"):].strip()
    if returncode < 0:
        import signal

        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}; see {log_file}"
    return f"exit code {returncode}; see {log_file}"


def baseline_group(study: Study) -> str | None:
    """The report's baseline group: a label alone means its first denoiser's group when there are denoisers."""
    if not study.baseline:
        return None
    if "/" in study.baseline or not study.denoisers:
        return study.baseline
    return f"{study.baseline}/{next(iter(study.denoisers))}"


class StudyRun:
    """One invocation of ``specmatch study`` (not a dry run) over the selected cells."""

    def __init__(self, study: Study, specs: list[CellSpec], *, output_dir: Path, load: Loader, executor: Any,
                 global_args: list[str], echo: Callable[[str], None] = print):
        self.study, self.specs, self.output_dir = study, specs, Path(output_dir)
        self.load, self.executor, self.global_args, self.echo = load, executor, global_args, echo
        self.state = StudyState(self.output_dir, study.name)
        self.outcomes: dict[str, CellOutcome] = {}
        self.keys: dict[str, str] = {}
        self.latent_keys: dict[str, str] = {}
        self.jobs: dict[str, Job] = {}
        self.by_id = {s.cell.id: s for s in specs}
        self.reference_of: dict[str, Path] = {}  # cell id -> the study's reference statistics file
        self.reference_failed: dict[Path, str] = {}  # reference file -> why it could not be made

    def log_file(self, spec: CellSpec) -> Path:
        return self.output_dir / LOGS_FOLDER / f"{spec.run_name}.log"

    def finish(self, spec: CellSpec, status: str, *, error: str = "", seconds: float | None = None) -> None:
        outcome = CellOutcome(cell=spec.cell, status=status, error=error, seconds=seconds)
        self.state.record(outcome, self.keys.get(spec.cell.id, "") if status in ("complete", "reused") else "")
        if status == "reused":  # the report's wall time counts what the cell cost when it ran
            ran = (self.state.recorded(spec.cell.id) or {}).get("seconds")
            outcome = CellOutcome(cell=spec.cell, status=status, error=error,
                                  seconds=float(ran) if isinstance(ran, (int, float)) else None)
        self.outcomes[spec.cell.id] = outcome
        shown = f"{seconds:.1f} s" if seconds is not None else ""
        self.echo(f"[{spec.cell.id}] {status} {shown}{': ' + error if error else ''}".rstrip())

    def prepare(self, spec: CellSpec) -> Job | None:
        """Resolve the cell's recipe and plan; reuse it when complete; otherwise its job (None: decided)."""
        from specmatch.core.plan import make_plan

        source = None
        if spec.autoencoder_from:
            upstream = self.outcomes.get(spec.autoencoder_from) or self.state.outcome(self.by_id[spec.autoencoder_from].cell)
            if upstream.status not in ("complete", "reused"):
                self.finish(spec, "failed", error=f"not run: the cell {spec.autoencoder_from} that trains its "
                                                  f"autoencoder did not complete")
                return None
            source = upstream.cell.run_dir
        overrides = spec.overrides_with(source)
        reference = self.reference_of.get(spec.cell.id)
        if reference is not None:
            if reference in self.reference_failed:
                self.finish(spec, "failed", error=f"not run: the study's reference statistics {reference.name} "
                                                  f"failed: {self.reference_failed[reference]}")
                return None
            overrides = (*overrides, f"evaluation.reference={toml_inline(str(reference))}")
        try:
            resolved = self.load(spec.recipe_file, overrides)
        except RecipeError as exc:
            first = exc.problems[0].render() if exc.problems else str(exc)
            self.finish(spec, "failed", error=f"invalid recipe: {first}")
            return None
        except SpecmatchError as exc:
            self.finish(spec, "failed", error=str(exc).splitlines()[0])
            return None
        plan = make_plan(resolved, spec.cell.run_dir.resolve())
        self.latent_keys[spec.cell.id] = plan.stages[1].key  # latent statistics: hashes the autoencoder's key too
        key = plan.stages[-1].key
        if spec.autoencoder_from:
            # the engine keys a from_run autoencoder by its folder only; the study also keys the cell by what
            # that folder's autoencoder was trained from, so a retrained autoencoder is not taken as complete
            key = _hash(key, self.latent_keys.get(spec.autoencoder_from, ""))
        self.keys[spec.cell.id] = key
        if is_complete(plan, self.state.recorded(spec.cell.id), analysis=self.study.analyze_images > 0, key=key):
            self.finish(spec, "reused")
            return None
        argv = [*python_command(), *self.global_args, "run", str(spec.recipe_file),
                *[a for o in overrides for a in ("-o", o)], "--output-dir", str(spec.cell.run_dir.resolve())]
        then = ()
        if self.study.analyze_images:
            which = [a for name in self.study.analyze_diagnostics for a in ("--diagnostic", name)]
            then = ((*python_command(), *self.global_args, "analyze", str(spec.cell.run_dir.resolve()), "--images",
                     str(self.study.analyze_images), *which),)
        outcome = CellOutcome(cell=spec.cell, status="pending")
        self.outcomes[spec.cell.id] = outcome
        self.state.record(outcome)
        return Job(cell_id=spec.cell.id, argv=tuple(argv), log_file=self.log_file(spec), then=then)

    def done(self, result: JobResult) -> None:
        spec = self.by_id[result.cell_id]
        metrics = RunLayout(spec.cell.run_dir).metrics
        if result.returncode == 0 and metrics.is_file():
            self.finish(spec, "complete", seconds=result.seconds)
        else:
            error = last_error(self.log_file(spec), result.returncode) if result.returncode else \
                "the run ended without metrics.json"
            self.finish(spec, "failed", error=error, seconds=result.seconds)

    def reference_jobs(self) -> list[Job]:
        """With ``reference_images``: the `specmatch stats` job of each reference file the selected cells need
        and that does not exist yet. One file per data table and evaluation preprocessing (its name hashes
        them, so a changed table gets a new file); cells without generation (or with ``frechet = false``)
        need none."""
        n = self.study.reference_images
        if not n:
            return []
        from specmatch.core.init_source import resolve_path
        from specmatch.metrics.protocols import effective

        jobs: dict[Path, Job] = {}
        for spec in self.specs:
            try:
                resolved = self.load(spec.recipe_file, spec.overrides)
            except SpecmatchError:
                continue  # reported when the cell is prepared
            ev = effective(resolved.recipe.evaluation)
            if not (ev.num_samples and ev.frechet):  # no generation metrics on the reference
                continue
            network = str(resolve_path(ev.feature_network, Path(resolved.recipe_dir))) if ev.feature_network else ""
            key = _hash(resolved.section_hash("data"), ev.protocol, str(ev.quantize_uint8), str(ev.jpeg_quality),
                        network, str(n), str(ev.feature_subset))
            file = (self.output_dir / REFERENCE_FOLDER / f"{key}.npz").resolve()
            self.reference_of[spec.cell.id] = file
            if file.is_file() or file in jobs:
                continue
            partial = file.with_name(f"{key}.partial.npz")
            argv = (*python_command(), *self.global_args, "stats", str(spec.recipe_file),
                    *[a for o in spec.overrides for a in ("-o", o)], "--images", str(n), "--seed", "0",
                    "--features", str(min(ev.feature_subset, n)), "--output", str(partial))
            jobs[file] = Job(cell_id=f"{REFERENCE_FOLDER}/{key}", argv=argv,
                             log_file=self.output_dir / LOGS_FOLDER / f"reference-{key}.log")
        return list(jobs.values())

    def reference_done(self, result: JobResult) -> None:
        key = result.cell_id.split("/", 1)[1]
        file = (self.output_dir / REFERENCE_FOLDER / f"{key}.npz").resolve()
        partial = file.with_name(f"{key}.partial.npz")
        log = self.output_dir / LOGS_FOLDER / f"reference-{key}.log"
        if result.returncode == 0 and partial.is_file():
            partial.replace(file)  # complete files only under the final name: a killed job is redone
            self.echo(f"[{result.cell_id}] reference statistics written: {file} ({result.seconds:.1f} s)")
        else:
            self.reference_failed[file] = last_error(log, result.returncode) if result.returncode else \
                f"no file written; see {log}"
            self.echo(f"[{result.cell_id}] failed: {self.reference_failed[file]}")

    def run(self) -> list[CellOutcome]:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        copy = self.output_dir / "study.toml"
        if not copy.exists() or not copy.samefile(self.study.source):
            shutil.copyfile(self.study.source, copy)
        waves = [run_order([s for s in self.specs if not s.autoencoder_from], self.study.seeds),
                 run_order([s for s in self.specs if s.autoencoder_from], self.study.seeds)]
        try:
            references = self.reference_jobs()
            if references:
                (self.output_dir / REFERENCE_FOLDER).mkdir(parents=True, exist_ok=True)
                self.executor.run(references, self.reference_done)
            for wave in waves:
                jobs = [job for spec in wave if (job := self.prepare(spec)) is not None]
                if jobs:
                    self.executor.run(jobs, self.done)
        except KeyboardInterrupt:
            self.echo("study stopped: cells not finished stay pending; rerun the same command to resume them")
            raise
        return [self.outcomes[s.cell.id] for s in self.specs]


def summary_table(outcomes: list[CellOutcome]) -> str:
    rows = [("cell", "status", "seconds", "error")]
    for o in outcomes:
        rows.append((o.cell.id, o.status, f"{o.seconds:.1f}" if o.seconds is not None else "-", o.error))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip()
                     for r in rows)


def write_study_report(outcomes: list[CellOutcome], study: Study, output_dir: Path) -> dict[str, Path] | None:
    """The study's report through :func:`specmatch.study.report.write_report`; None when that module is absent."""
    import importlib

    try:
        report = importlib.import_module(f"{__package__}.report")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.report":
            raise
        return None
    return report.write_report(outcomes, output_dir=Path(output_dir), baseline=baseline_group(study),
                               title=study.name)


def elapsed(start: float) -> str:
    return f"{time.monotonic() - start:.1f} s"
