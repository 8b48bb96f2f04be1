"""``specmatch run --processes N``: re-run the same command under accelerate's launcher.

The module form of the launcher with ``--multi_gpu`` is the one verified to start N processes on CPU
machines too (gloo), provided every process builds its Accelerator with ``cpu=True``, which the engine does.
"""

from __future__ import annotations

import subprocess
import sys


def launch_command(processes: int, argv: list[str]) -> list[str]:
    args = list(argv[1:])
    cleaned = []
    skip = False
    for i, a in enumerate(args):  # drop --processes N so the children run single-process logic
        if skip:
            skip = False
            continue
        if a == "--processes":
            skip = True
            continue
        if a.startswith("--processes="):
            continue
        cleaned.append(a)
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "-m", "specmatch", *cleaned]


def relaunch(processes: int, argv: list[str]) -> int:
    return subprocess.call(launch_command(processes, argv))
