"""Running a study: waves, from_run wiring, failure isolation, study.json, reuse decisions, the summary and the
report call (fast, with a stand-in executor); the slow tests run real cells in real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from specmatch.cli import main
from specmatch.core.layout import MARKER_FILE
from specmatch.core.plan import make_plan
from specmatch.core.recipe import load_recipe
from specmatch.study.cells import Cell, CellOutcome
from specmatch.study.execute import StudyRun, is_complete, last_error, summary_table
from specmatch.core.errors import SpecmatchError
from specmatch.study.executors import Job, JobResult, LocalExecutor
from specmatch.study.matrix import expand
from specmatch.study.schema import load_study
from specmatch.study.state import STATE_FILE, StudyState

HERE = Path(__file__).resolve().parent


def write_study(tmp_path: Path, body: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def two_denoiser_study(tmp_path: Path) -> Path:
    return write_study(tmp_path, f"""
name = "fake"
seeds = [0]
baseline = "a"
[recipes.a]
file = "{HERE / 'tiny.toml'}"
[recipes.b]
base = "a"
overrides = ["regularizers[0].weight=1e-3"]
[denoisers.d1]
file = "{HERE / 'tiny-denoiser.toml'}"
[denoisers.d2]
file = "{HERE / 'tiny-denoiser.toml'}"
overrides = ["train.denoiser.lr=1e-5"]
""")


class FakeExecutor:
    """Records the jobs; cells named in ``fail`` exit 1 with an error line, the others write metrics.json and
    a recipe.toml (enough for the next wave's from_run check) and exit 0."""

    def __init__(self, fail=()):
        self.fail, self.jobs, self.waves = set(fail), [], []

    def run(self, jobs, on_done):
        self.waves.append([j.cell_id for j in jobs])
        for job in jobs:
            self.jobs.append(job)
            job.log_file.parent.mkdir(parents=True, exist_ok=True)
            if "stats" in job.argv:  # the study's reference statistics: a file with moments
                if job.cell_id in self.fail:
                    job.log_file.write_text("Error: data.params.root: no images\n")
                    on_done(JobResult(cell_id=job.cell_id, returncode=2, seconds=0.1))
                    continue
                import numpy as np

                np.savez(job.argv[job.argv.index("--output") + 1], mu=np.zeros(4), sigma=np.eye(4))
                on_done(JobResult(cell_id=job.cell_id, returncode=0, seconds=0.2))
                continue
            run_dir = Path(job.argv[job.argv.index("--output-dir") + 1])
            if job.cell_id in self.fail:
                job.log_file.write_text("...\nError: internal error: RuntimeError: boom (traceback in run.log)\n")
                on_done(JobResult(cell_id=job.cell_id, returncode=1, seconds=0.5))
                continue
            (run_dir / "autoencoder").mkdir(parents=True, exist_ok=True)
            (run_dir / "autoencoder" / "model.safetensors").write_bytes(b"x")
            recipe = load_recipe(job.argv[job.argv.index("run") + 1], ())
            (run_dir / "recipe.toml").write_text(recipe.to_toml())
            (run_dir / "metrics.json").write_text("{}")
            on_done(JobResult(cell_id=job.cell_id, returncode=0, seconds=1.25))


def loader(file, overrides):
    return load_recipe(file, overrides)


def test_waves_from_run_and_a_failing_cell(tmp_path):
    study = load_study(two_denoiser_study(tmp_path))
    out = tmp_path / "out"
    specs = expand(study, out)
    executor = FakeExecutor(fail={"b/seed-0/d1"})
    lines = []
    outcomes = StudyRun(study, specs, output_dir=out, load=loader, executor=executor,
                        global_args=["--plugin-file", "/x/p.py"], echo=lines.append).run()
    # the autoencoder cells first, then the cells that reuse an autoencoder; a cell whose autoencoder
    # cell failed is not started
    assert executor.waves == [["a/seed-0/d1", "b/seed-0/d1"], ["a/seed-0/d2"]]
    status = {o.cell.id: (o.status, o.error) for o in outcomes}
    assert status["a/seed-0/d1"] == ("complete", "")
    assert status["a/seed-0/d2"] == ("complete", "")
    assert status["b/seed-0/d1"] == ("failed", "internal error: RuntimeError: boom (traceback in run.log)")
    assert status["b/seed-0/d2"][0] == "failed" and "b/seed-0/d1" in status["b/seed-0/d2"][1]
    first, second = executor.jobs[0].argv, executor.jobs[2].argv
    assert first[1:5] == ("-m", "specmatch", "--plugin-file", "/x/p.py") and first[5] == "run"
    assert not any(a.startswith("autoencoder.from_run") for a in first)
    assert executor.jobs[0].then == ()  # no `specmatch analyze` unless the study asks for it
    assert f'autoencoder.from_run="{(out / "cells" / "a" / "seed-0" / "d1").resolve()}"' in second
    saved = json.loads((out / STATE_FILE).read_text())["cells"]
    assert saved["b/seed-0/d1"]["status"] == "failed" and "boom" in saved["b/seed-0/d1"]["error"]
    assert saved["a/seed-0/d1"]["seconds"] == 1.25 and saved["a/seed-0/d1"]["key"]
    assert (out / "study.toml").read_text() == study.source.read_text()
    table = summary_table(outcomes)
    assert table.splitlines()[0].split() == ["cell", "status", "seconds", "error"]
    assert "b/seed-0/d1  failed    " in table or "failed" in table.splitlines()[3]


def _reference_study(tmp_path: Path, extra: str = "") -> Path:
    return write_study(tmp_path, f"""
name = "ref"
seeds = [0, 1]
reference_images = 16
[recipes.a]
file = "{HERE / 'tiny.toml'}"
[recipes.b]
base = "a"
overrides = ["regularizers[0].weight=1e-3"]
{extra}
[denoisers.d1]
file = "{HERE / 'tiny-denoiser.toml'}"
overrides = ["evaluation.frechet=true"]
""")


def test_reference_statistics_are_computed_once_and_given_to_every_cell(tmp_path):
    study = load_study(_reference_study(tmp_path))
    out = tmp_path / "out"
    executor = FakeExecutor()
    outcomes = StudyRun(study, expand(study, out), output_dir=out, load=loader, executor=executor, global_args=[],
                        echo=lambda line: None).run()
    assert all(o.status == "complete" for o in outcomes)
    stats_jobs = [j for j in executor.jobs if "stats" in j.argv]
    assert len(stats_jobs) == 1  # one data table: one file for the four cells
    argv = stats_jobs[0].argv
    assert argv[argv.index("--images") + 1] == "16" and argv[argv.index("--seed") + 1] == "0"
    (file,) = (out / "reference").glob("*.npz")
    assert not file.name.endswith(".partial.npz")
    cells = [j for j in executor.jobs if "run" in j.argv]
    assert len(cells) == 4
    assert all(f'evaluation.reference="{file.resolve()}"' in j.argv for j in cells)
    # a second invocation finds the file: no statistics job, the same file for every cell (so the cells'
    # keys, which hash it, are unchanged)
    again = FakeExecutor()
    StudyRun(study, expand(study, out), output_dir=out, load=loader, executor=again, global_args=[],
             echo=lambda line: None).run()
    assert not [j for j in again.jobs if "stats" in j.argv]
    assert all(f'evaluation.reference="{file.resolve()}"' in j.argv for j in again.jobs)


def test_cells_without_generation_metrics_need_no_reference(tmp_path):
    path = write_study(tmp_path, f"""
name = "nogen"
seeds = [0]
reference_images = 16
[recipes.a]
file = "{HERE / 'tiny.toml'}"
[denoisers.d1]
file = "{HERE / 'tiny-denoiser.toml'}"
""")  # tiny-denoiser.toml samples but sets frechet = false; tiny.toml alone samples nothing
    study = load_study(path)
    out = tmp_path / "out"
    run = StudyRun(study, expand(study, out), output_dir=out, load=loader, executor=FakeExecutor(), global_args=[],
                   echo=lambda line: None)
    assert run.reference_jobs() == [] and run.reference_of == {}


def test_each_data_table_gets_its_own_reference_and_a_failed_one_stops_only_its_cells(tmp_path):
    other = '[recipes.c]\nbase = "a"\noverrides = ["data.params.num_images=24"]'
    study = load_study(_reference_study(tmp_path, other))
    out = tmp_path / "out"
    probe = FakeExecutor()
    run = StudyRun(study, expand(study, out), output_dir=out, load=loader, executor=probe, global_args=[],
                   echo=lambda line: None)
    jobs = run.reference_jobs()
    assert len(jobs) == 2  # a and b share a data table; c has its own
    c_job = next(j for j in jobs if any("num_images=24" in a for a in j.argv))
    executor = FakeExecutor(fail={c_job.cell_id})
    outcomes = StudyRun(study, expand(study, out), output_dir=out, load=loader, executor=executor, global_args=[],
                        echo=lambda line: None).run()
    status = {o.cell.id: (o.status, o.error) for o in outcomes}
    assert {cid for cid, (st, _) in status.items() if st == "failed"} == {"c/seed-0/d1", "c/seed-1/d1"}
    assert "reference statistics" in status["c/seed-0/d1"][1] and "no images" in status["c/seed-0/d1"][1]
    assert not [j for j in executor.jobs if "run" in j.argv and j.cell_id.startswith("c/")]  # never started
    assert not list((out / "reference").glob("*.partial.npz"))


def test_every_recipe_runs_its_first_seed_before_any_runs_its_second(tmp_path):
    """Seed by seed, in the study's seed order, recipes in study order within a seed."""
    path = write_study(tmp_path, f"""
name = "order"
seeds = [3, 1]
[recipes.a]
file = "{HERE / 'tiny.toml'}"
[recipes.b]
file = "{HERE / 'tiny.toml'}"
""")
    study = load_study(path)
    specs = expand(study, tmp_path / "out")
    assert [s.cell.id for s in specs] == ["a/seed-3", "a/seed-1", "b/seed-3", "b/seed-1"]  # reports: by recipe
    executor = FakeExecutor()
    StudyRun(study, specs, output_dir=tmp_path / "out", load=loader, executor=executor, global_args=[],
             echo=lambda line: None).run()
    assert executor.waves == [["a/seed-3", "b/seed-3", "a/seed-1", "b/seed-1"]]


def test_analyze_after_each_cell_when_asked(tmp_path):
    path = write_study(tmp_path, f'name = "s"\nseeds = [0]\nanalyze_images = 16\n[recipes.a]\nfile = "{HERE / "tiny.toml"}"\n')
    study = load_study(path)
    executor = FakeExecutor()
    StudyRun(study, expand(study, tmp_path / "out"), output_dir=tmp_path / "out", load=loader, executor=executor,
             global_args=[], echo=lambda line: None).run()
    (then,) = executor.jobs[0].then
    assert then[-4:] == ("analyze", str((tmp_path / "out" / "cells" / "a" / "seed-0").resolve()), "--images", "16")


def test_cli_exit_code_summary_and_report_call(tmp_path, monkeypatch):
    calls = []
    fake_report = types.ModuleType("specmatch.study.report")
    fake_report.write_report = lambda outcomes, **kw: calls.append((list(outcomes), kw)) or {"md": kw["output_dir"]}
    monkeypatch.setitem(sys.modules, "specmatch.study.report", fake_report)
    executor = FakeExecutor(fail={"b/seed-0/d1"})
    monkeypatch.setattr("specmatch.study.executors.LocalExecutor", lambda *a: executor)
    path = two_denoiser_study(tmp_path)
    result = CliRunner().invoke(main, ["study", str(path), "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert "Error: 2 of 4 cells failed" in result.output
    outcomes, kw = calls[0]
    assert [o.cell.id for o in outcomes] == ["a/seed-0/d1", "a/seed-0/d2", "b/seed-0/d1", "b/seed-0/d2"]
    assert kw == {"output_dir": tmp_path / "out", "baseline": "a/d1", "title": "fake"}
    # --only: the report still covers every cell, those outside --only as study.json last saw them
    calls.clear()
    executor = FakeExecutor()
    monkeypatch.setattr("specmatch.study.executors.LocalExecutor", lambda *a: executor)
    result = CliRunner().invoke(main, ["study", str(path), "--output-dir", str(tmp_path / "out"), "--only", "b/*"])
    assert result.exit_code == 0, result.output
    assert executor.waves == [["b/seed-0/d1"], ["b/seed-0/d2"]]
    statuses = {o.cell.id: o.status for o in calls[0][0]}
    assert statuses == {"a/seed-0/d1": "complete", "a/seed-0/d2": "complete", "b/seed-0/d1": "complete",
                        "b/seed-0/d2": "complete"}


def _complete_run(tmp_path):
    recipe = load_recipe(HERE / "tiny.toml", ())
    plan = make_plan(recipe, tmp_path / "run")
    for stage in plan.stages:
        folder = stage.folder if stage.name != "latent_stats" else tmp_path / "run" / "autoencoder" / "latent_stats"
        if stage.name == "evaluation":
            continue
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.safetensors").write_bytes(b"12345")
        files = {"model.safetensors": {"bytes": 5, "sha256": ""}}
        (folder / MARKER_FILE).write_text(json.dumps({"key": stage.key, "files": files}))
    (tmp_path / "run" / "metrics.json").write_text("{}")
    (tmp_path / "run" / "recipe.toml").write_text("")
    return plan, {"status": "complete", "key": plan.stages[-1].key}


def test_a_cell_is_reused_only_with_its_key_and_its_outputs(tmp_path):
    plan, record = _complete_run(tmp_path)
    assert is_complete(plan, record)
    assert not is_complete(plan, {**record, "key": "other"})  # the recipe changed since
    assert not is_complete(plan, {**record, "status": "failed"})
    assert not is_complete(plan, None)
    (tmp_path / "run" / "autoencoder" / "model.safetensors").write_bytes(b"123")  # truncated weights
    assert not is_complete(plan, record)
    plan, record = _complete_run(tmp_path)
    (tmp_path / "run" / "metrics.json").unlink()
    assert not is_complete(plan, record)


def test_last_error_and_state_file(tmp_path):
    log = tmp_path / "cell.log"
    log.write_text("Error: first\nprogress\nError: params.x: expected a number\n")
    assert last_error(log, 2) == "params.x: expected a number"
    log.write_text("no error line\n")
    assert last_error(log, -9).startswith("killed by SIGKILL (out of memory?)")
    assert last_error(log, 3).startswith("exit code 3")
    state = StudyState(tmp_path, "s")
    cell = Cell(recipe="a", seed=1, run_dir=tmp_path / "a")
    state.record(CellOutcome(cell=cell, status="complete", seconds=2.0), key="k1")
    state.record(CellOutcome(cell=cell, status="failed", error="e"))  # keeps the key it completed with
    again = StudyState(tmp_path, "s")
    assert again.recorded("a/seed-1")["key"] == "k1" and again.outcome(cell).status == "failed"
    (tmp_path / STATE_FILE).write_text("{not json")
    assert StudyState(tmp_path, "s").cells == {}  # a damaged file: every cell is checked again
    assert not list(tmp_path.glob(".study-*"))  # no temporary file left behind


def test_two_invocations_on_one_folder_keep_each_others_cells(tmp_path):
    # two `--only` invocations started together: each loaded study.json before the other wrote anything
    first, second = StudyState(tmp_path, "s"), StudyState(tmp_path, "s")
    a, b = Cell(recipe="a", seed=0, run_dir=tmp_path / "a"), Cell(recipe="b", seed=0, run_dir=tmp_path / "b")
    first.record(CellOutcome(cell=a, status="pending"))
    second.record(CellOutcome(cell=b, status="complete", seconds=5.0), key="kb")
    first.record(CellOutcome(cell=a, status="complete", seconds=7.0), key="ka")
    cells = json.loads((tmp_path / STATE_FILE).read_text())["cells"]
    assert {k: (v["status"], v["key"], v["seconds"]) for k, v in cells.items()} == {
        "a/seed-0": ("complete", "ka", 7.0), "b/seed-0": ("complete", "kb", 5.0)}
    # what the other invocation recorded is read again, not what this one saw at its start
    assert first.outcome(b).status == "complete" and first.outcome(b).seconds == 5.0
    # reusing a cell later keeps the wall time of the run that produced it
    third = StudyState(tmp_path, "s")
    third.record(CellOutcome(cell=a, status="reused"), key="ka")
    assert StudyState(tmp_path, "s").recorded("a/seed-0")["seconds"] == 7.0


def _job(tmp_path, name: str, code: str, then: str = "") -> Job:
    return Job(cell_id=name, argv=(sys.executable, "-c", code), log_file=tmp_path / f"{name}.log",
               then=((sys.executable, "-c", then),) if then else ())


def test_local_executor_runs_cells_side_by_side_with_a_share_of_the_cores(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    # each cell waits for the other's file: one after another, neither would ever see it (they time out)
    wait_for = ("import os, pathlib, sys, time\n"
                "pathlib.Path(r'{me}').touch(); print('threads', os.environ.get('OMP_NUM_THREADS'))\n"
                "end = time.monotonic() + 60\n"
                "while not pathlib.Path(r'{other}').exists():\n"
                "    time.sleep(0.05)\n"
                "    if time.monotonic() > end: sys.exit(3)\n")
    a, b = tmp_path / "a.started", tmp_path / "b.started"
    jobs = [_job(tmp_path, "a", wait_for.format(me=a, other=b), then="print('then ran')"),
            _job(tmp_path, "b", wait_for.format(me=b, other=a)),
            _job(tmp_path, "c", "import sys; sys.exit(5)")]
    results = []
    LocalExecutor(parallel=2).run(jobs, results.append)
    assert {r.cell_id: r.returncode for r in results} == {"a": 0, "b": 0, "c": 5}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert f"threads {max(1, cores // 2)}" in (tmp_path / "a.log").read_text()
    assert "then ran" in (tmp_path / "a.log").read_text()
    # a thread count the user chose is left alone
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    LocalExecutor(parallel=2).run([_job(tmp_path, "d", "import os; print('threads', os.environ['OMP_NUM_THREADS'])")],
                                  results.append)
    assert "threads 7" in (tmp_path / "d.log").read_text()
    with pytest.raises(SpecmatchError, match="--jobs"):
        LocalExecutor(parallel=0)


def test_stopping_a_parallel_study_stops_every_running_cell(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    sleeper = f"import os, pathlib, time; pathlib.Path(r'{pids}', str(os.getpid())).touch(); time.sleep(120)"
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("SIGTERM's handler can only be installed from the main thread")
    jobs = [_job(tmp_path, "a", sleeper), _job(tmp_path, "b", sleeper)]

    def stop_soon():
        end = time.monotonic() + 60
        while len(list(pids.iterdir())) < 2 and time.monotonic() < end:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_soon, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        LocalExecutor(parallel=2).run(jobs, lambda result: None)
    assert time.monotonic() - start < 60  # not the sleepers' 120 s
    for pid in (int(p.name) for p in pids.iterdir()):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # ended and reaped: no cell runs on behind a stopped study


def test_status_reads_the_study_folder_and_names_running_cells(tmp_path, monkeypatch):
    path = write_study(tmp_path, f"""
name = "st"
seeds = [0, 1, 2]
[recipes.a]
file = "{HERE / 'tiny.toml'}"
""")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["study", str(path), "--output-dir", str(out), "--status"])
    assert result.exit_code != 0 and "holds no study.json" in result.output  # not started there
    state = StudyState(out, "st")
    study = load_study(path)
    specs = {s.cell.id: s for s in expand(study, out)}
    state.record(CellOutcome(cell=specs["a/seed-0"].cell, status="complete", seconds=12.5), key="k")
    state.record(CellOutcome(cell=specs["a/seed-2"].cell, status="failed", error="boom"))
    running = specs["a/seed-1"].cell.run_dir
    running.mkdir(parents=True)
    (running / "metrics.jsonl").write_text('{"stage": "autoencoder", "step": 2}\n{"stage": "denoiser", "step": 7}\n')
    hold = ("import sys, time\nfrom pathlib import Path\nfrom specmatch.engine.run_lock import RunLock\n"
            "with RunLock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(running)], stdout=subprocess.PIPE, text=True,
                              env=_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        result = CliRunner().invoke(main, ["study", str(path), "--output-dir", str(out), "--status"])
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.startswith("a/")}
    assert lines["a/seed-0"].split()[1:3] == ["complete", "12.5"]
    assert "running" in lines["a/seed-1"] and f"denoiser step 7, pid {holder.pid}" in lines["a/seed-1"]
    assert lines["a/seed-2"].split()[1] == "failed" and "boom" in lines["a/seed-2"]
    assert "1 complete, 1 failed, 1 running" in result.output
    # a cell whose folder `specmatch analyze` holds (the study's step after the run) says so
    from specmatch.study.status import status_rows

    monkeypatch.setattr("specmatch.engine.run_lock.holder",
                        lambda folder: {"pid": 42, "command": "/x/specmatch/__main__.py analyze /runs/a --images 8"})
    (row,) = status_rows([specs["a/seed-1"]], out, "st")
    assert row[1] == "running" and row[3] == "analyze, pid 42"
    monkeypatch.undo()
    # once the holder is gone the cell is what study.json says (pending)
    again = CliRunner().invoke(main, ["study", str(path), "--output-dir", str(out), "--status"])
    lines = {line.split()[0]: line.split() for line in again.output.splitlines() if line.startswith("a/")}
    assert lines["a/seed-1"][1] == "pending"


def test_status_of_a_running_cell_follows_it_into_the_evaluation(tmp_path, monkeypatch):
    """After training the status names the evaluation, then its pass and items done from the saved cursor."""
    import torch

    from specmatch.core.layout import RunLayout
    from specmatch.engine.evaluation_stream import EvaluationStream
    from specmatch.study.status import status_rows

    path = write_study(tmp_path, f"""
name = "st"
seeds = [0]
[recipes.a]
file = "{HERE / 'tiny.toml'}"
""")
    out = tmp_path / "out"
    (spec,) = expand(load_study(path), out)
    layout = RunLayout(spec.cell.run_dir)
    layout.denoiser.mkdir(parents=True)
    layout.curves.write_text('{"stage": "denoiser", "step": 600}\n')
    monkeypatch.setattr("specmatch.engine.run_lock.holder", lambda folder: {"pid": 7, "command": "specmatch run"})
    assert status_rows([spec], out, "st")[0][3] == "denoiser step 600, pid 7"
    (layout.denoiser / "stage.json").write_text('{"key": "k"}')  # the denoiser finished
    assert status_rows([spec], out, "st")[0][3] == "evaluation, pid 7"

    class OneProcess:
        num_processes, is_main_process = 1, True

        def wait_for_everyone(self):
            pass

    stream = EvaluationStream(passes={"reconstruction": (4, ("real", "fake")), "generation": (10, ("fake",))},
                              per_image={}, features=None, feature_dim=0, subset=0, seed=0, image_shape=(3, 2, 2),
                              grid=0)
    def produce(start, stop):
        images = torch.zeros(stop - start, 3, 2, 2)
        yield list(range(start, stop)), {"real": images, "fake": images}

    save = lambda: stream.save(layout.evaluation_statistics, "key", OneProcess())  # noqa: E731
    stream.run_pass("reconstruction", produce, chunk=2, save=save)

    class Killed(Exception):
        pass

    def kill_after_4(name, done):
        if done >= 4:
            raise Killed

    with pytest.raises(Killed):  # killed after 4 of 10 samples
        stream.run_pass("generation", produce, chunk=2, save=save, on_chunk=kill_after_4)
    assert status_rows([spec], out, "st")[0][3] == "evaluation generation 4/10, pid 7"


# -- real cells in real processes ---------------------------------------------------------------------------

def _env() -> dict:
    root = str(HERE.parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}


@pytest.fixture
def report_calls(monkeypatch):
    calls = []
    fake = types.ModuleType("specmatch.study.report")
    fake.write_report = lambda outcomes, **kw: calls.append(list(outcomes)) or {}
    monkeypatch.setitem(sys.modules, "specmatch.study.report", fake)
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    return calls


@pytest.mark.slow
def test_real_study_isolates_a_failing_cell_shares_the_autoencoder_and_reuses(tmp_path, report_calls):
    path = write_study(tmp_path, f"""
name = "real"
seeds = [0]
baseline = "ok"
[recipes.ok]
file = "{HERE / 'tiny.toml'}"
[recipes.boom]
base = "ok"
overrides = ["regularizers=[{{ name = 'boom' }}]"]
[denoisers.d1]
file = "{HERE / 'tiny-denoiser.toml'}"
[denoisers.d2]
file = "{HERE / 'tiny-denoiser.toml'}"
overrides = ["train.denoiser.lr=1e-5"]
""")
    out = tmp_path / "out"
    args = ["--plugin-file", str(HERE / "boom_plugin.py"), "study", str(path), "--output-dir", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    state = json.loads((out / STATE_FILE).read_text())["cells"]
    assert state["ok/seed-0/d1"]["status"] == "complete" and state["ok/seed-0/d2"]["status"] == "complete"
    assert state["boom/seed-0/d1"]["status"] == "failed"
    assert "RuntimeError: boom" in state["boom/seed-0/d1"]["error"]
    assert "Traceback" in (out / "cells" / "boom" / "seed-0" / "d1" / "run.log").read_text()
    assert state["boom/seed-0/d2"]["status"] == "failed"
    # the second denoiser trained on the first one's autoencoder instead of training its own
    ok = out / "cells" / "ok" / "seed-0"
    assert (ok / "d1" / "autoencoder" / "model.safetensors").exists()
    assert not (ok / "d2" / "autoencoder" / "model.safetensors").exists()
    assert "reused from" in (ok / "d2" / "run.log").read_text()
    metrics = {d: json.loads((ok / d / "metrics.json").read_text()) for d in ("d1", "d2")}
    assert metrics["d1"]["latent_std"] == metrics["d2"]["latent_std"]  # the same latent statistics
    # a second invocation starts no process for complete cells
    logs = {p.name: p.stat().st_mtime_ns for p in (out / "logs").iterdir()}
    result = CliRunner().invoke(main, [*args, "--only", "ok/*"])
    assert result.exit_code == 0, result.output
    assert "[ok/seed-0/d1] reused" in result.output and "[ok/seed-0/d2] reused" in result.output
    assert {p.name: p.stat().st_mtime_ns for p in (out / "logs").iterdir()} == logs
    statuses = {o.cell.id: o.status for o in report_calls[-1]}
    assert statuses == {"ok/seed-0/d1": "reused", "ok/seed-0/d2": "reused", "boom/seed-0/d1": "failed",
                        "boom/seed-0/d2": "failed"}


def _stop_study_at_checkpoint(cmd: list[str], checkpoints: Path) -> int:
    """SIGTERM to the study process alone (as a scheduler or `kill` sends it) once its cell has a checkpoint;
    the study must end its cell's process itself. Returns the study's exit code."""
    proc = subprocess.Popen(cmd, env=_env(), start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if checkpoints.is_dir() and any(p.name.startswith("step_") for p in checkpoints.iterdir()):
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the study finished before it could be interrupted"
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_a_killed_study_resumes_to_the_same_metrics(tmp_path):
    body = f"""
name = "resume"
seeds = [0]
overrides = ["train.autoencoder.steps=12", "train.autoencoder.checkpoint_every=4"]
[recipes.a]
file = "{HERE / 'tiny.toml'}"
"""
    path = write_study(tmp_path, body)
    cmd = [sys.executable, "-m", "specmatch", "study", str(path), "--output-dir"]
    killed = tmp_path / "killed"
    cell = killed / "cells" / "a" / "seed-0"
    assert _stop_study_at_checkpoint([*cmd, str(killed)], cell / "autoencoder" / "checkpoints") != 0
    assert json.loads((killed / STATE_FILE).read_text())["cells"]["a/seed-0"]["status"] == "pending"
    import fcntl

    with open(cell / ".lock", "a+") as lock:  # the cell's run ended with the study: nobody holds its lock
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(lock, fcntl.LOCK_UN)
    resumed = subprocess.run([*cmd, str(killed)], env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resum" in (killed / "cells" / "a" / "seed-0" / "run.log").read_text()
    straight = subprocess.run([*cmd, str(tmp_path / "straight")], env=_env(), capture_output=True, text=True,
                              timeout=600)
    assert straight.returncode == 0, straight.stdout + straight.stderr

    def numbers(root):
        m = json.loads((root / "cells" / "a" / "seed-0" / "metrics.json").read_text())
        return {k: v for k, v in m.items() if isinstance(v, float) and not k.startswith("time_")}

    assert numbers(killed) and numbers(killed) == numbers(tmp_path / "straight")


@pytest.mark.slow
def test_submitit_local_executor_runs_the_cells(tmp_path, report_calls):
    pytest.importorskip("submitit")
    path = write_study(tmp_path, f"""
name = "submitit"
seeds = [0, 1]
overrides = ["train.autoencoder.steps=2"]
[recipes.a]
file = "{HERE / 'tiny.toml'}"
""")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["study", str(path), "--output-dir", str(out), "--executor", "submitit-local"])
    assert result.exit_code == 0, result.output
    state = json.loads((out / STATE_FILE).read_text())["cells"]
    assert {k: v["status"] for k, v in state.items()} == {"a/seed-0": "complete", "a/seed-1": "complete"}
    assert (out / "submitit").is_dir()  # the jobs went through submitit
    m0, m1 = (json.loads((out / "cells" / "a" / f"seed-{s}" / "metrics.json").read_text()) for s in (0, 1))
    assert m0["recon_l1"] != m1["recon_l1"]  # two seeds, two runs


@pytest.mark.slow
def test_real_study_side_by_side_with_one_reference_file(tmp_path, report_calls):
    path = write_study(tmp_path, f"""
name = "sidebyside"
seeds = [0, 1]
reference_images = 8
[recipes.a]
file = "{HERE / 'tiny.toml'}"
[denoisers.d1]
file = "{HERE / 'tiny-denoiser.toml'}"
overrides = ["evaluation.frechet=true", "evaluation.metrics=['fid']"]
""")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["study", str(path), "--output-dir", str(out), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    (reference,) = (out / "reference").glob("*.npz")
    for seed in (0, 1):
        cell = out / "cells" / "a" / f"seed-{seed}" / "d1"
        assert str(reference.resolve()) in (cell / "recipe.toml").read_text()
        assert json.loads((cell / "metrics.json").read_text())["gen_fid"] > 0
    state = json.loads((out / STATE_FILE).read_text())["cells"]
    assert {v["status"] for v in state.values()} == {"complete"}


def test_slurm_without_submitit_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)
    path = write_study(tmp_path, f'name = "s"\nseeds = [0]\n[recipes.a]\nfile = "{HERE / "tiny.toml"}"\n')
    result = CliRunner().invoke(main, ["study", str(path), "--output-dir", str(tmp_path / "o"), "--executor", "slurm"])
    assert result.exit_code == 1
    assert "Error: --executor slurm needs submitit" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["study", str(path), "--executor", "pbs"])
    assert result.exit_code == 2 and "expected local or slurm" in result.output
    # --jobs is the local executor's; with slurm every cell is its own job
    result = CliRunner().invoke(main, ["study", str(path), "--output-dir", str(tmp_path / "o"), "--executor", "slurm",
                                       "--jobs", "2"])
    assert result.exit_code == 1 and "--jobs applies to --executor local" in result.output
    assert not (tmp_path / "o" / "cells").exists()  # nothing ran


def test_a_retrained_autoencoder_invalidates_the_cells_that_reuse_it(tmp_path):
    keys = []
    for steps in (2, 3):
        body = two_denoiser_study(tmp_path).read_text().replace(
            'baseline = "a"', f'baseline = "a"\noverrides = ["train.autoencoder.steps={steps}"]')
        study = load_study(write_study(tmp_path, body, f"s{steps}.toml"))
        run = StudyRun(study, expand(study, tmp_path / "out"), output_dir=tmp_path / "out", load=loader,
                       executor=FakeExecutor(), global_args=[], echo=lambda line: None)
        run.run()
        keys.append(run.keys)
    # the engine keys a from_run autoencoder by its folder, which did not move; the study's key still changes
    assert keys[0]["a/seed-0/d1"] != keys[1]["a/seed-0/d1"]
    assert keys[0]["a/seed-0/d2"] != keys[1]["a/seed-0/d2"]
