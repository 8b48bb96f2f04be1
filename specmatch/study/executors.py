"""Where a study's cells run: one after another on this machine, or as jobs submitted through submitit.

Every executor runs the same thing for a cell: the ``specmatch run`` command line of that cell, in its own
process, with its output in a log file. A crash or an out-of-memory kill in one cell therefore ends that
process only; the cell's ``run.log`` keeps the traceback of an internal error, the log file everything printed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import attrs

from specmatch.core.errors import SpecmatchError


@attrs.frozen(kw_only=True)
class Job:
    cell_id: str
    argv: tuple[str, ...]  # the cell's `specmatch run` command
    log_file: Path
    then: tuple[tuple[str, ...], ...] = ()  # commands run after it succeeded (`specmatch analyze`)

    @property
    def commands(self) -> list[list[str]]:
        return [list(self.argv), *(list(c) for c in self.then)]


@attrs.frozen(kw_only=True)
class JobResult:
    cell_id: str
    returncode: int
    seconds: float


def run_commands(commands: Sequence[Sequence[str]], log_file: str | Path, cwd: str | Path,
                 env: dict[str, str] | None = None, running: set | None = None) -> int:
    """Run a cell's commands in order until one fails; the exit code of the last one run."""
    code = 0
    for argv in commands:
        code = run_command(argv, log_file, cwd, env=env, running=running)
        if code:
            break
    return code


def run_command(argv: Sequence[str], log_file: str | Path, cwd: str | Path, env: dict[str, str] | None = None,
                running: set | None = None) -> int:
    """Run one command with its output appended to ``log_file``; the exit code (-N: killed by signal N).

    Termination of this process (SIGTERM, Ctrl-C) terminates the command too, so a stopped study leaves no
    cell running on behind it. ``running`` (a set) holds the process while it runs, so that the thread which
    waits on several cells can stop them all.
    """
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, cwd=str(cwd), env=env)
        if running is not None:
            running.add(proc)
        try:
            return proc.wait()
        finally:
            _stop(proc)
            if running is not None:
                running.discard(proc)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def thread_env(parallel: int) -> dict[str, str] | None:
    """The environment of cells that share this machine ``parallel`` at a time: each gets its share of the
    cores as ``OMP_NUM_THREADS`` (which torch reads at start), unless the user set it. None: inherit as is."""
    if parallel <= 1 or "OMP_NUM_THREADS" in os.environ:
        return None
    return {**os.environ, "OMP_NUM_THREADS": str(max(1, available_cores() // parallel))}


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class _Stopped(Exception):
    pass


def _raise_on_sigterm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise _Stopped(f"stopped by signal {signal.Signals(signum).name}")


class LocalExecutor:
    """The default: each cell in its own process on this machine, ``parallel`` at a time (default 1: one after
    another). Cells that run side by side share the cores (:func:`thread_env`); ``on_done`` is always called
    from the calling thread, in the order cells finish."""

    name = "local"

    def __init__(self, parallel: int = 1):
        if parallel < 1:
            raise SpecmatchError(f"--jobs: expected a whole number >= 1; got {parallel}")
        self.parallel = int(parallel)

    def run(self, jobs: Sequence[Job], on_done: Callable[[JobResult], None]) -> None:
        previous = signal.signal(signal.SIGTERM, _raise_on_sigterm) if _main_thread() else None
        running: set = set()
        try:
            if self.parallel == 1:
                for job in jobs:
                    on_done(_timed(job))
            else:
                self._run_side_by_side(jobs, on_done, running)
        except _Stopped as exc:
            raise KeyboardInterrupt(str(exc)) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def _run_side_by_side(self, jobs: Sequence[Job], on_done: Callable[[JobResult], None], running: set) -> None:
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        env = thread_env(self.parallel)
        pool = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="cell")
        futures = [pool.submit(_timed, job, env, running) for job in jobs]
        pending = set(futures)
        try:
            while pending:
                # a timeout, so that SIGTERM's handler (which runs in this thread) is not held up by the wait
                done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                for future in done:
                    on_done(future.result())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            while not all(f.done() for f in futures):  # a cell may be between its run and its analyze
                for proc in list(running):
                    _stop(proc)
                time.sleep(0.1)
            raise
        finally:
            pool.shutdown(wait=True)


def _timed(job: Job, env: dict[str, str] | None = None, running: set | None = None) -> JobResult:
    start = time.monotonic()
    code = run_commands(job.commands, job.log_file, os.getcwd(), env=env, running=running)
    return JobResult(cell_id=job.cell_id, returncode=code, seconds=time.monotonic() - start)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


@attrs.frozen(kw_only=True)
class SubmititSettings:
    cluster: str  # "slurm", or "local" (submitit's local executor: the same code path, tested in CI)
    folder: Path  # submitit's own job files (pickled job, stdout/stderr of the job wrapper)
    partition: str = ""
    gpus: int = 0
    minutes: int = 240
    cpus: int = 4
    mem_gb: int = 0
    poll_seconds: float = 2.0


class SubmititExecutor:
    """Each cell a submitit job (``AutoExecutor``); all jobs of one wave are submitted at once, then awaited."""

    name = "slurm"

    def __init__(self, settings: SubmititSettings):
        try:
            import submitit
        except ImportError:
            raise SpecmatchError("--executor slurm needs submitit, which is not installed: pip install "
                                 "'specmatch[slurm]' (or pip install submitit)") from None
        self.settings = settings
        self.executor = submitit.AutoExecutor(folder=settings.folder, cluster=settings.cluster)
        params = {"timeout_min": settings.minutes, "gpus_per_node": settings.gpus, "tasks_per_node": 1,
                  "nodes": 1}
        if settings.cluster == "slurm":
            params.update(cpus_per_task=settings.cpus)
            if settings.partition:
                params["slurm_partition"] = settings.partition
            if settings.mem_gb:
                params["mem_gb"] = settings.mem_gb
        self.executor.update_parameters(**params)

    def run(self, jobs: Sequence[Job], on_done: Callable[[JobResult], None]) -> None:
        submitted = []
        for job in jobs:
            self.executor.update_parameters(name=job.cell_id.replace("/", "-"))
            submitted.append((job, time.monotonic(),
                              self.executor.submit(run_commands, job.commands, str(job.log_file), os.getcwd())))
        try:
            for job, start, handle in _as_done(submitted, self.settings.poll_seconds):
                try:
                    code = handle.result()
                except Exception as exc:  # noqa: BLE001 - the job itself failed (timeout, node failure)
                    with open(job.log_file, "a", encoding="utf-8") as out:
                        out.write(f"Error: the job failed: {type(exc).__name__}: {str(exc).strip()[-2000:]}\n")
                    code = 1
                on_done(JobResult(cell_id=job.cell_id, returncode=code, seconds=time.monotonic() - start))
        except KeyboardInterrupt:
            for _, _, handle in submitted:
                if not handle.done():
                    handle.cancel(check=False)
            raise


def _as_done(submitted: list, poll_seconds: float) -> Iterator[tuple]:
    waiting = list(submitted)
    while waiting:
        finished = [item for item in waiting if item[2].done()]
        for item in finished:
            waiting.remove(item)
            yield item
        if waiting and not finished:
            time.sleep(poll_seconds)


def python_command() -> list[str]:
    """How a cell starts specmatch: this interpreter running the package, as ``specmatch run`` would."""
    return [sys.executable, "-m", "specmatch"]
