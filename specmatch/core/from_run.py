"""``autoencoder.from_run``: reuse the autoencoder another run trained, checked against what it recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import Problem
from .layout import MODEL_FILE, RunLayout
from .toml_io import read_toml


def _differences_from_run(cfg: Any, run_ae: dict[str, Any]) -> list[str]:
    """What the recipe's own autoencoder name/params say differently from the run's recorded ones."""
    from .specs import normalise_name

    out = []
    if cfg.name and normalise_name(cfg.name) != normalise_name(run_ae["name"]):
        out.append(f"name {cfg.name!r} (the run has {run_ae['name']!r})")
    run_params = run_ae.get("params", {})
    for k, v in cfg.params.items():
        v = list(v) if isinstance(v, tuple) else v
        if k not in run_params:
            out.append(f"params.{k} = {v!r} (the run does not set it)")
        elif run_params[k] != v:
            out.append(f"params.{k} = {v!r} (the run has {run_params[k]!r})")
    return out


def _recorded_autoencoder(data: dict[str, Any], recipe_file: Path) -> tuple[dict | None, str]:
    """The ``[autoencoder]`` table another run recorded, or (None, what is wrong with it)."""
    run_ae = data.get("autoencoder")
    if not isinstance(run_ae, dict):
        return None, f"{recipe_file}: [autoencoder] is not a table ({type(run_ae).__name__}); not a recipe specmatch wrote"
    name, params = run_ae.get("name"), run_ae.get("params", {})
    if not isinstance(name, str) or not name.strip():
        return None, f"{recipe_file}: autoencoder.name is {name!r}; expected a registry name"
    if not isinstance(params, dict):
        return None, f"{recipe_file}: autoencoder.params is not a table ({type(params).__name__})"
    return {"name": name, "params": params}, ""


def load_from_run(cfg: Any, recipe_dir: Path) -> tuple[dict | None, list[Problem]]:
    if not cfg.from_run:
        if not cfg.name:
            return None, [Problem("autoencoder.name", "required: a registry name, or set autoencoder.from_run")]
        return None, []
    problems = []
    if "\0" in cfg.from_run:
        return None, [Problem("autoencoder.from_run", f"{cfg.from_run!r} is not a valid path (NUL character)")]
    run_dir = (recipe_dir / Path(cfg.from_run).expanduser())
    layout = RunLayout(run_dir)
    data, read_problems = read_toml(layout.recipe, "autoencoder.from_run")
    if data is None:
        msg = f"{run_dir} is not a specmatch run folder (no readable recipe.toml)"
        return None, problems + [Problem("autoencoder.from_run", msg)]
    run_ae, why = _recorded_autoencoder(data, layout.recipe)
    if run_ae is None:
        return None, [Problem("autoencoder.from_run", why)]
    data = {**data, "autoencoder": run_ae}
    # name/params beside from_run (a resolved recipe repeats them; a base recipe may supply them through
    # extends) are fine as long as they agree with the run's autoencoder; a different choice is an error
    differences = _differences_from_run(cfg, run_ae)
    if differences:
        problems.append(Problem("autoencoder", f"differs from the autoencoder of {run_dir} "
                                               f"({run_ae['name']!r}): {'; '.join(differences)}; the weights "
                                               f"there are that autoencoder's, so remove these keys or drop "
                                               f"from_run"))
    if not (layout.autoencoder / MODEL_FILE).exists():
        problems.append(Problem("autoencoder.from_run",
                                f"{run_dir} has no trained autoencoder yet ({layout.autoencoder / MODEL_FILE})"))
    return data, problems
