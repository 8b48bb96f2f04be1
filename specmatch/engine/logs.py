"""The run log: while a run goes on, every ``specmatch`` log record (DEBUG and up) is also written to
``RUN/run.log`` with its time, and so is the traceback of an internal error (see ``specmatch/cli.py``).

Engine modules log through ``logging.getLogger(__name__)``; what reaches the console is the CLI's choice.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Iterator

RUN_LOG = "run.log"

_logger = logging.getLogger("specmatch")


class _RunLogHandler(logging.FileHandler):
    pass


def close_run_log() -> None:
    """Close the run log a run left open (after a failure); nothing when there is none."""
    for handler in [h for h in _logger.handlers if isinstance(h, _RunLogHandler)]:
        _logger.removeHandler(handler)
        handler.close()


@contextlib.contextmanager
def run_log(folder: Path, *, main_process: bool) -> Iterator[None]:
    """Write the package's log records to ``folder/run.log`` (appended: a resumed run continues it).

    Only the main process writes, as only it prints. After a failure the file stays attached, so the caller can
    add the traceback and name the file; the next run (or CLI command) closes it.
    """
    close_run_log()
    if main_process:
        handler = _RunLogHandler(folder / RUN_LOG, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        _logger.addHandler(handler)
        _logger.setLevel(logging.DEBUG)  # the file keeps everything; console handlers filter for themselves
    yield
    close_run_log()
