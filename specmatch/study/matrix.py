"""The cells of a study: recipes x seeds (x denoisers), each a normal run with its own overrides.

A cell's recipe is its recipe file with, in order: the study's ``overrides``, the recipe label's overrides (a
variant's base first), the denoiser label's tables and overrides, then ``run.seed`` and ``run.name`` (the
cell id with ``/`` turned into ``-``). With denoiser labels, the first denoiser's cell of each (recipe, seed)
trains the autoencoder; the others take it, with its latent statistics, through ``autoencoder.from_run``, so
a shared stage runs once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import attrs

from specmatch.core.errors import Problem, RecipeError, SpecmatchError

from .cells import Cell
from .schema import Study, StudyError, toml_inline

CELLS_FOLDER = "cells"


@attrs.frozen(kw_only=True)
class CellSpec:
    """What it takes to run one cell: the recipe file, its overrides, and whose autoencoder it uses."""

    cell: Cell
    recipe_file: Path
    overrides: tuple[str, ...]  # everything but autoencoder.from_run
    autoencoder_from: str = ""  # id of the cell whose run folder trains this cell's autoencoder ("": itself)

    @property
    def run_name(self) -> str:
        return self.cell.id.replace("/", "-")

    def overrides_with(self, autoencoder_run: Path | None) -> tuple[str, ...]:
        """The overrides, plus ``autoencoder.from_run`` pointing at the folder that trained the autoencoder."""
        if autoencoder_run is None:
            return self.overrides
        return self.overrides + (f"autoencoder.from_run={toml_inline(str(Path(autoencoder_run).resolve()))}",)


def cell_folder(output_dir: Path, recipe: str, seed: int, denoiser: str = "") -> Path:
    folder = Path(output_dir) / CELLS_FOLDER / recipe / f"seed-{seed}"
    return folder / denoiser if denoiser else folder


def expand(study: Study, output_dir: Path) -> list[CellSpec]:
    """Every cell in run order: an autoencoder's cell comes before the cells that reuse its autoencoder."""
    specs = []
    output_dir = Path(output_dir).resolve()  # study.json and the report name run folders wherever they run from
    denoisers = list(study.denoisers) or [""]
    for label, recipe in study.recipes.items():
        for seed in study.seeds:
            first = None
            for denoiser in denoisers:
                cell = Cell(recipe=label, seed=seed, denoiser=denoiser,
                            run_dir=cell_folder(output_dir, label, seed, denoiser))
                den_overrides = study.denoisers[denoiser].overrides_for(recipe.file) if denoiser else ()
                run_name = cell.id.replace("/", "-")
                overrides = (*study.overrides, *recipe.overrides, *den_overrides,
                             f"run.seed={seed}", f"run.name={toml_inline(run_name)}")
                specs.append(CellSpec(cell=cell, recipe_file=recipe.file.resolve(), overrides=overrides,
                                      autoencoder_from=first.cell.id if first is not None else ""))
                first = first or specs[-1]
    return specs


def run_order(specs: list[CellSpec], seeds: tuple[int, ...]) -> list[CellSpec]:
    """``specs`` seed by seed (the study's seed order), each seed's cells in study order: every recipe has its
    first seed before any recipe has its second, so a study stopped early can already compare them all."""
    position = {seed: i for i, seed in enumerate(seeds)}
    return sorted(specs, key=lambda s: position.get(s.cell.seed, len(position)))  # stable: study order within


def select(specs: list[CellSpec], pattern: str | None) -> list[CellSpec]:
    """Cells whose id matches the shell pattern (``sdvae/*``, ``*/seed-0*``), with the cells they depend on."""
    if not pattern:
        return specs
    from fnmatch import fnmatchcase

    wanted = {s.cell.id for s in specs if fnmatchcase(s.cell.id, pattern) or fnmatchcase(s.cell.group, pattern)}
    wanted |= {s.autoencoder_from for s in specs if s.cell.id in wanted and s.autoencoder_from}
    return [s for s in specs if s.cell.id in wanted]


Loader = Callable[[Path, Iterable[str]], Any]  # (recipe file, overrides) -> ResolvedRecipe, or RecipeError


def resolve_cells(study: Study, specs: list[CellSpec], load: Loader) -> dict[str, Any]:
    """Every cell's resolved recipe (cells that reuse an autoencoder: with their own autoencoder table, which
    is the one they will be given). Raises :class:`StudyError` with each cell's problems, prefixed by its id;
    a problem shared by several cells is reported once, naming how many more cells have it."""
    resolved: dict[str, Any] = {}
    seen: dict[tuple[str, str], list[str]] = {}
    for spec in specs:
        try:
            resolved[spec.cell.id] = load(spec.recipe_file, spec.overrides)
        except RecipeError as exc:
            for p in exc.problems:
                seen.setdefault((p.path, f"{p.message} (recipe {exc.source})"), []).append(spec.cell.id)
        except SpecmatchError as exc:
            seen.setdefault(("", str(exc)), []).append(spec.cell.id)
    if seen:
        problems = []
        for (path, message), ids in seen.items():
            more = f" (also cells {', '.join(ids[1:])})" if len(ids) > 1 else ""
            where = f"{ids[0]}: {path}" if path else ids[0]
            problems.append(Problem(where, message + more))
        raise StudyError(str(study.source), problems)
    return resolved
