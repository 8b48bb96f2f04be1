"""One run per output folder: an exclusive lock on ``<folder>/.lock``, held by the main process for the run.

A second run on the same folder fails at once, naming the holder (pid, host, start time, command), instead of
mixing its weights and metrics with the first run's. A shared resource that several runs use (the latent
cache in an autoencoder's folder) locks with ``wait=True`` instead: the second run waits for the first. The
lock is ``fcntl.flock``: the kernel releases it when the holding process exits or is killed, so a stale
``.lock`` file from a killed run never blocks.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from specmatch.core.errors import SpecmatchError
from specmatch.core.layout import RunLayout

log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not protected (the holder file is still written)
    fcntl = None


class RunLock:
    """``with RunLock(folder, enabled=accelerator.is_main_process): ...``

    Only the main process locks (``enabled``): the other processes of the same run must not wait for it.
    """

    def __init__(self, folder: Path, *, enabled: bool = True,
                 advice: str = "wait for it to finish or choose another --output-dir", wait: bool = False):
        self.path = RunLayout(Path(folder)).lock
        self.enabled, self.advice, self.wait = enabled, advice, wait
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        if not self.enabled:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not truncated: it may name the holder
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _describe(_read(fd))
                if not self.wait:
                    os.close(fd)
                    raise SpecmatchError(
                        f"{self.path.parent} is in use by another specmatch run ({holder}); {self.advice}") from None
                # a shared resource (the latent cache): what the holder builds is what this run needs
                log.info(f"{self.path.parent} is in use by another specmatch run ({holder}); waiting for it")
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:  # a file system without locks (some network mounts): run unprotected
                pass
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is None:
            return
        os.ftruncate(self.fd, 0)  # the next reader must not name a finished run
        if fcntl is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def _read(fd: int) -> dict:
    try:
        info = json.loads(os.pread(fd, 65536, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _describe(info: dict) -> str:
    if not info.get("pid"):
        return "holder unknown: it is starting"
    text = f"pid {info['pid']} on {info.get('host', '?')} since {info.get('since', '?')}"
    return f"{text}: {info['command']}" if info.get("command") else text


def holder(folder: Path) -> dict | None:
    """Who holds the lock of ``folder`` now (pid, host, since, command), or None when no process does."""
    path = RunLayout(Path(folder)).lock
    if fcntl is None or not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd) or {}
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
