"""User-facing errors.

Every mistake a user can make (a bad recipe, a missing data folder, a missing weights file) is raised as a
``SpecmatchError``. The CLI prints its message without a traceback; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import attrs


class SpecmatchError(Exception):
    """An error caused by the user's input or environment; the message says what to change."""

    exit_code = 1


class DataError(SpecmatchError):
    """A dataset cannot be found or read (names the path and what was expected).

    A ``DataLoader`` with workers re-raises a worker's error as ``DataError("Caught DataError in DataLoader
    worker process 1.\\nOriginal Traceback ...")``. Such a message is cut back to the original error's
    message, so users see which file is bad and not a traceback; the worker's traceback stays available
    as ``worker_traceback`` (``None`` otherwise).
    """

    worker_traceback: str | None = None

    def __init__(self, *args: object):
        if len(args) == 1 and isinstance(args[0], str):
            unwrapped = self._unwrap_worker_message(args[0])
            if unwrapped is not None:
                self.worker_traceback, args = args[0], (unwrapped,)
        super().__init__(*args)

    @staticmethod
    def _unwrap_worker_message(message: str) -> str | None:
        """The original message inside torch's ``ExceptionWrapper.reraise`` text, or ``None`` if not one."""
        import re

        header = "Traceback (most recent call last):\n"
        if not re.match(r"Caught \w+ in .*?\.\nOriginal " + re.escape(header), message, re.DOTALL):
            return None
        # The last traceback block belongs to the raised error (earlier ones are its causes); its first
        # unindented line is "module.ErrorName: message", and the message may continue on further lines.
        lines = message.rsplit(header, 1)[1].rstrip("\n").split("\n")
        start = next((i for i, line in enumerate(lines) if line and not line[0].isspace()), None)
        if start is None:
            return None
        return re.sub(r"\A[\w.]+(: |\Z)", "", "\n".join(lines[start:]), count=1)


class WeightsError(SpecmatchError):
    """A local weights file is missing, unreadable or has the wrong hash."""


class PluginError(SpecmatchError):
    """A plugin cannot be loaded or conflicts with another one."""


class PluginConflictError(PluginError):
    """Two providers register the same component name for one kind."""


class ParamError(SpecmatchError):
    """A component parameter value the component cannot use; raised by ``facts`` functions and factories.

    ``param`` is the key inside the component's ``params`` table (``"patch_size"``, ``"channels[1]"``; ``""``
    for the table as a whole). ``validate`` reports it as ``<table>.params.<param>``; a factory raising it
    during a run exits with code 2 and the same key path, without a traceback. Raise it only for values the
    user chose; a failure inside your own code is a bug and should keep its traceback.
    """

    exit_code = 2

    def __init__(self, param: str, message: str):
        self.param = param
        self.message = message
        super().__init__(f"params.{param}: {message}" if param else f"params: {message}")


@attrs.frozen
class Problem:
    """One problem found in a recipe: where (``path``, a dotted key path) and what."""

    path: str
    message: str

    def render(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class RecipeError(SpecmatchError):
    """A recipe is not valid. Holds every problem found, not only the first."""

    exit_code = 2

    def __init__(self, source: str, problems: Sequence[Problem]):
        self.source = source
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        n = len(self.problems)
        head = f"{self.source} is not a valid recipe ({n} problem{'s' if n != 1 else ''})"
        lines = [head] + [f"  {self.source}: {p.render()}" for p in self.problems]
        return "\n".join(lines)


def merge_problems(*groups: Iterable[Problem]) -> list[Problem]:
    """Concatenate problem lists, dropping exact duplicates but keeping order."""
    seen: set[Problem] = set()
    out: list[Problem] = []
    for group in groups:
        for p in group:
            if p not in seen:
                seen.add(p)
                out.append(p)
    return out
