"""``specmatch run``: the stages of a plan, in order, each reused when its outputs are complete.

Stages (``engine/stages/``): autoencoder -> latent statistics -> denoiser -> evaluation. Each is a function
of the run's :class:`RunContext` and the frozen results of the stages before it. Where the outputs go is
``core.layout.RunLayout``; what the run writes for people is ``engine/report.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from specmatch import __version__
from specmatch.core.layout import RunLayout
from specmatch.core.plan import Plan
from specmatch.core.recipe import ResolvedRecipe

from . import report
from .contracts import resolve_factories
from .logs import run_log
from .run_context import RunContext
from .run_lock import RunLock
from .runtime import make_accelerator
from .stages import autoencoder_stage, denoiser_stage, evaluation_stage, latent_stats_stage


def _provenance(resolved: ResolvedRecipe) -> str:
    providers = sorted({f"{c.spec.provider}" for c in resolved.components.values()})
    return (f"# specmatch {__version__}\n# source: {resolved.source}\n# components from: {'; '.join(providers)}\n"
            f"# recipe hash: {resolved.section_hash()}\n")


def make_run_context(resolved: ResolvedRecipe, plan: Plan, *, resume: bool = True) -> RunContext:
    """The run's accelerator and context; the run folder is created."""
    out = Path(plan.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    accelerator = make_accelerator(resolved.recipe.run, project_dir=str(out))
    return RunContext(resolved=resolved, plan=plan, layout=RunLayout(out), accelerator=accelerator, resume=resume)


def build_datasets(run: RunContext) -> tuple[Any, Any]:
    """(train, test) of the recipe's dataset, after the preflight when it is on."""
    data = run.build("data")
    if run.recipe.data.preflight:  # every process: cheap, and all fail together instead of at a barrier
        from specmatch.data.check import preflight_datasets

        preflight_datasets(data).raise_if_bad()
    run.upstream["num_classes"] = getattr(data["train"], "num_classes", 0)
    run.upstream["dataset"] = data
    return data["train"], data["test"]


def run_stages(run: RunContext) -> dict[str, Any]:
    """Every stage of the plan; returns the flat metrics also written to ``metrics.json``."""
    from accelerate.utils import set_seed

    acc, recipe = run.accelerator, run.recipe
    set_seed(recipe.run.seed)
    if acc.is_main_process:
        run.layout.recipe.write_text(run.resolved.to_toml(header=_provenance(run.resolved)))
    if recipe.run.trackers:
        acc.init_trackers(recipe.run.name, config={"recipe_hash": run.resolved.section_hash()})
    resolve_factories(run.resolved)  # a lazy factory's typo fails now, not after the stages before it
    train_set, test_set = build_datasets(run)
    autoencoder = autoencoder_stage(run, train_set, test_set).model
    stats = latent_stats_stage(run, autoencoder, train_set, test_set)
    denoiser = denoiser_stage(run, autoencoder, stats, train_set) if recipe.denoiser is not None else None
    evaluation = evaluation_stage(run, autoencoder, stats, denoiser, train_set, test_set)
    metrics = {"latent_mean": stats.mean, "latent_std": stats.std, **evaluation.metrics}
    flat = report.flat_metrics(metrics, run.timings, acc.num_processes)
    if acc.is_main_process:
        report.write_grids(run.layout, evaluation.originals, evaluation.reconstructions, evaluation.samples,
                           recipe.evaluation.sample_grid)
        report.write_report(run.layout, run.resolved, flat, device=str(acc.device), spectrum=evaluation.spectrum)
    acc.wait_for_everyone()
    if recipe.run.trackers:
        acc.end_training()
    return metrics


def run_pipeline(resolved: ResolvedRecipe, plan: Plan, *, resume: bool = True) -> dict[str, Any]:
    run = make_run_context(resolved, plan, resume=resume)
    main_process = run.accelerator.is_main_process
    with run_log(run.layout.root, main_process=main_process), RunLock(run.layout.root, enabled=main_process):
        metrics = run_stages(run)
    if run.accelerator.is_main_process:
        print(report.metrics_table(metrics))
    return metrics
