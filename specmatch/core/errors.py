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
    """A dataset cannot be found or read (names the path and what was expected)."""


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
