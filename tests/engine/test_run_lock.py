"""One run per output folder: a second process fails at once naming the holder; a killed holder never blocks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from specmatch.core.errors import SpecmatchError
from specmatch.engine.run_lock import RunLock

ROOT = Path(__file__).resolve().parents[2]
HOLD = """
import sys, time
from pathlib import Path
from specmatch.engine.run_lock import RunLock
with RunLock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def hold_in_subprocess(folder: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_fails_naming_the_holder_and_a_killed_holder_does_not_block(tmp_path):
    holder = hold_in_subprocess(tmp_path)
    try:
        with pytest.raises(SpecmatchError) as err:
            with RunLock(tmp_path):
                pass
        message = str(err.value)
        assert f"pid {holder.pid} on {socket.gethostname()}" in message and str(tmp_path) in message
        assert "in use by another specmatch run" in message
        # other processes of the same run do not take the lock, so they never wait for their main process
        with RunLock(tmp_path, enabled=False):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / ".lock").read_text()  # the killed run's holder info is still there ...
    with RunLock(tmp_path) as lock:  # ... but the kernel released its lock
        assert f'"pid": {os.getpid()}' in lock.path.read_text()
    assert (tmp_path / ".lock").read_text() == ""  # released cleanly: no holder named


def test_sequential_runs_take_the_lock_in_turn(tmp_path):
    for _ in range(2):
        with RunLock(tmp_path / "new" / "folder"):
            pass


def test_a_shared_resource_lock_waits_for_its_holder(tmp_path, caplog):
    """The latent cache locks with wait=True: a second run waits for the builder instead of failing."""
    import logging
    import threading

    holder = hold_in_subprocess(tmp_path)
    acquired = threading.Event()

    def second_run():
        with RunLock(tmp_path, wait=True):
            acquired.set()

    with caplog.at_level(logging.INFO, logger="specmatch.engine.run_lock"):
        waiter = threading.Thread(target=second_run, daemon=True)
        waiter.start()
        try:
            import time

            def said_waiting() -> bool:
                return any("waiting for it" in r.getMessage() and str(holder.pid) in r.getMessage()
                           for r in caplog.records)

            deadline = time.monotonic() + 30
            while not said_waiting() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert said_waiting()  # it found the holder, named it ...
            assert not acquired.is_set()  # ... and did not enter while the holder held the lock
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait()
        assert acquired.wait(timeout=30)  # entered as soon as the holder was gone
        waiter.join(timeout=30)
