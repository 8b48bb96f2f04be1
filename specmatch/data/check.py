"""Preflight: find every unreadable item of a dataset before training, not hours in when it is first drawn.

Contract for datasets (any plugin may take part)
------------------------------------------------
A dataset offers a preflight by defining::

    def preflight(self, full: bool = False) -> Iterable[specmatch.Problem]

It checks every item and returns one ``Problem(path, message)`` per bad item (``path``: the file or item,
``message``: what is wrong), never stopping at the first; an empty result means every item is usable.
``full=False`` must be cheap (headers only: no pixel decoding), since the engine may run it before every
training run; ``full=True`` may decode everything. Raising ``DataError`` reports the whole dataset as bad.
A dataset without ``preflight`` is reported as "no preflight offered" and is not treated as bad.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Mapping

import attrs

from specmatch.core.errors import DataError, Problem, SpecmatchError

MAX_PROBLEMS_IN_ERROR = 20  # an error message listing 10,000 files helps nobody; the command lists them all


def _as_problem(item: Any) -> Problem:
    return item if isinstance(item, Problem) else Problem("", str(item))


def _size(dataset: Any) -> int | None:
    try:
        return len(dataset)
    except TypeError:  # iterable-style datasets have no length
        return None


@attrs.frozen
class DatasetReport:
    """The preflight of one dataset: ``offered`` is False when the dataset has no ``preflight`` method."""

    name: str
    description: str
    items: int | None
    offered: bool
    full: bool
    problems: tuple[Problem, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        head = f"{self.name}: {self.description}"
        if not self.offered:
            return f"{head}: no preflight offered (its items are checked only when drawn)"
        how = "full decode" if self.full else "header check"
        count = "" if self.items is None else f" of {self.items}"
        if self.ok:
            return f"{head}: ok, {self.items if self.items is not None else 'all'} items ({how}, {self.seconds:.2f} s)"
        lines = [f"{head}: {len(self.problems)}{count} items bad ({how}, {self.seconds:.2f} s)"]
        lines += [f"  {problem.render()}" for problem in self.problems]
        return "\n".join(lines)


@attrs.frozen
class PreflightReport:
    """The preflight of several datasets (usually a factory's ``{"train": ..., "test": ...}``)."""

    datasets: tuple[DatasetReport, ...]

    @property
    def ok(self) -> bool:
        return all(report.ok for report in self.datasets)

    @property
    def problems(self) -> list[Problem]:
        return [problem for report in self.datasets for problem in report.problems]

    def render(self) -> str:
        lines = [report.render() for report in self.datasets]
        n = len(self.problems)
        lines.append("every checked item is readable" if self.ok else f"{n} bad item{'s' if n != 1 else ''}")
        return "\n".join(lines)

    def raise_if_bad(self) -> None:
        """Raise one ``DataError`` listing the bad items (the first ``MAX_PROBLEMS_IN_ERROR``)."""
        if self.ok:
            return
        problems = self.problems
        lines = [f"{len(problems)} unreadable item{'s' if len(problems) != 1 else ''} in the dataset:"]
        lines += [f"  {problem.render()}" for problem in problems[:MAX_PROBLEMS_IN_ERROR]]
        if len(problems) > MAX_PROBLEMS_IN_ERROR:
            lines.append(f"  ... and {len(problems) - MAX_PROBLEMS_IN_ERROR} more "
                         f"(`specmatch data check RECIPE` lists them all)")
        raise DataError("\n".join(lines))


def preflight_dataset(dataset: Any, full: bool = False, *, name: str = "dataset") -> DatasetReport:
    """Check every item of ``dataset`` through its ``preflight`` method (see the module docstring).

    ``full=False`` is the cheap header check; ``full=True`` decodes everything. Never raises for bad items:
    they are listed in the report.
    """
    description = repr(dataset) if type(dataset).__repr__ is not object.__repr__ else type(dataset).__name__
    method = getattr(dataset, "preflight", None)
    if not callable(method):
        return DatasetReport(name, description, _size(dataset), False, full, (), 0.0)
    start = time.perf_counter()
    try:
        problems = tuple(_as_problem(p) for p in method(full=full))
    except SpecmatchError as error:  # the dataset as a whole is unusable
        problems = (Problem("", str(error)),)
    return DatasetReport(name, description, _size(dataset), True, full, problems, time.perf_counter() - start)


def preflight_datasets(datasets: Mapping[str, Any] | Any, full: bool = False) -> PreflightReport:
    """``preflight_dataset`` for each named dataset, e.g. the ``{"train": ..., "test": ...}`` of a factory
    (a single dataset is checked under the name "data")."""
    if not isinstance(datasets, Mapping):
        datasets = {"data": datasets}
    return PreflightReport(tuple(preflight_dataset(ds, full, name=name) for name, ds in datasets.items()))


def image_files_preflight(files: Iterable[Any], full: bool = False) -> list[Problem]:
    """The preflight of a dataset whose items are image files (for datasets built on such a list)."""
    from specmatch.data.image_file import image_file_problem

    problems = []
    for path in files:
        reason = image_file_problem(path, full=full)
        if reason is not None:
            problems.append(Problem(str(path), reason))
    return problems
