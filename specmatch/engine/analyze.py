"""``specmatch analyze RUN_DIR``: diagnostic plugins on a run's trained autoencoder.

The diagnostics are the recipe's ``[evaluation] diagnostics`` plus any named on the command line (``all`` =
every registered one), each built with its ``[evaluation.diagnostic_params.<name>]`` table (``-o`` overrides
it). ``analysis.json`` maps each diagnostic's name to its settings, N, scalars and full report; diagnostics
with figures write them (``spectrum.png``, ``latent_pca.png``, ...) into the run folder.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from specmatch.core.errors import SpecmatchError

from .checkpoint import write_json_atomic

log = logging.getLogger(__name__)

ANALYSIS_FILE = "analysis.json"


def load_run_autoencoder(run_dir: Path, *, registry=None, overrides: Sequence[str] = ()):
    """(resolved recipe, autoencoder with its EMA or final weights, datasets) of a finished run folder."""
    from specmatch.core.layout import RunLayout, final_weights
    from specmatch.core.recipe import load_recipe

    from . import build as B
    from .checkpoint import load_weights

    layout = RunLayout(run_dir)
    if not layout.recipe.is_file():
        raise SpecmatchError(f"{run_dir} is not a specmatch run folder (no recipe.toml)")
    resolved = load_recipe(layout.recipe, overrides, registry=registry)
    weights = final_weights(layout.autoencoder)
    if not weights.exists():
        raise SpecmatchError(f"{run_dir} has no trained autoencoder yet ({weights})")
    ctx = B.context(resolved, run_dir, {})
    data = B.build(resolved.component("data"), ctx)
    ae = B.build(B.autoencoder_component(resolved), ctx)
    load_weights(ae, weights)
    return resolved, ae.eval(), data


def chosen_diagnostics(run_dir: Path, extra: Iterable[str], *, registry) -> list[str]:
    """The recipe's ``[evaluation] diagnostics`` followed by ``extra`` (``all``: every registered one), each
    name once, in that order. An unknown name is an error naming the registered ones."""
    from specmatch.core.layout import RunLayout
    from specmatch.core.toml_io import parse_toml_text

    layout = RunLayout(run_dir)
    if not layout.recipe.is_file():
        raise SpecmatchError(f"{run_dir} is not a specmatch run folder (no recipe.toml)")
    try:
        raw = parse_toml_text(layout.recipe.read_text())
    except ValueError as exc:
        raise SpecmatchError(f"{layout.recipe}: {exc}") from None
    default = raw.get("evaluation", {}).get("diagnostics", ["latent-spectrum"])
    names: list[str] = []
    for where, name in [*((f"{layout.recipe}: evaluation.diagnostics", d) for d in default),
                        *(("--diagnostic", e) for e in extra)]:
        wanted = registry.names("diagnostic") if name == "all" else [name]
        for n in wanted:
            if registry.find("diagnostic", n) is None:
                raise SpecmatchError(f"{where}: {registry.unknown_message('diagnostic', n)}")
            canonical = registry.get("diagnostic", n).name
            if canonical not in names:
                names.append(canonical)
    return names


def toml_list(values: Sequence[Any]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def analyze_run(run_dir: Path, *, diagnostics: Sequence[str] = (), images: int = 256, split: str = "test",
                overrides: Sequence[str] = (), registry=None) -> dict[str, Any]:
    """Run the chosen diagnostics on the first ``images`` images of ``split``; write ``analysis.json`` and the
    figures. ``diagnostics``: names added to the recipe's list (``all`` = every registered one)."""
    from specmatch.core.session import get_registry

    from .run_lock import RunLock

    registry = registry or get_registry()
    # it writes into the run folder (analysis.json, figures that evaluation also writes): not beside a run there
    with RunLock(run_dir, advice="wait for the run to finish, then analyze it"):
        return _analyze(run_dir, diagnostics=diagnostics, images=images, split=split, overrides=overrides,
                        registry=registry)


def _analyze(run_dir: Path, *, diagnostics: Sequence[str], images: int, split: str, overrides: Sequence[str],
             registry) -> dict[str, Any]:
    from . import build as B

    names = chosen_diagnostics(run_dir, diagnostics, registry=registry)
    if not names:
        raise SpecmatchError(f"{run_dir}: no diagnostics to run (the recipe lists none; add --diagnostic NAME)")
    resolved, ae, data = load_run_autoencoder(
        run_dir, registry=registry, overrides=[f"evaluation.diagnostics={toml_list(names)}", *overrides])
    dataset = data[split]
    n = min(images, len(dataset))
    if n == 0:
        raise SpecmatchError(f"{run_dir}: the {split} split has no images")
    x = torch.stack([dataset[i][0] for i in range(n)])
    ctx = B.context(resolved, run_dir, {"autoencoder": ae})
    with torch.no_grad():
        latent_shape = list(ae.encode(x[:1]).mean.shape[1:])
    analysis: dict[str, Any] = {}
    for i in range(len(names)):
        comp = resolved.component(f"evaluation.diagnostics[{i}]")
        diagnostic = B.build(comp, ctx)
        log.info(f"[analyze] {comp.spec.name} on {n} {split} images")
        start = time.perf_counter()
        with torch.no_grad():
            report = dict(diagnostic.run(ae, x))
        seconds = round(time.perf_counter() - start, 2)
        scalars = {k: float(v) for k, v in diagnostic.scalars(report).items()}
        analysis[comp.spec.name] = {"settings": report.get("settings", {}), "n": report.get("n", n),
                                    "split": split, "latent_shape": latent_shape, "scalars": scalars, "report": report,
                                    "figures": list(comp.spec.figures), "seconds": seconds}
        if comp.spec.figures and report:
            diagnostic.write_figures(report, run_dir)
    write_json_atomic(run_dir / ANALYSIS_FILE, analysis)  # a killed analyze leaves no half-written file
    return analysis


def legacy_overrides(deltas: str | None, levels: str | None, block_size: int | None) -> tuple[list[str], list[str]]:
    """(diagnostic names, ``-o`` overrides) for the older ``--deltas``, ``--levels`` and ``--block-size``
    flags: they now set the params of ``latent-spectrum`` and ``lowpass-rfid``."""
    names, overrides = [], []
    try:
        if deltas is not None:
            values = [float(d) for d in deltas.split(",") if d.strip()]
            names.append("latent-spectrum")
            overrides.append(f"evaluation.diagnostic_params.latent-spectrum.deltas={toml_list(values)}")
        if levels is not None:
            values = [int(k) for k in levels.split(",") if k.strip()]
            names.append("lowpass-rfid")
            overrides.append(f"evaluation.diagnostic_params.lowpass-rfid.levels={toml_list(values)}")
    except ValueError:
        raise SpecmatchError(f"--deltas must be numbers and --levels integers; got {deltas!r} and {levels!r}")
    if block_size is not None:
        names.append("lowpass-rfid")
        overrides.append(f"evaluation.diagnostic_params.lowpass-rfid.block_size={block_size}")
    return names, overrides
