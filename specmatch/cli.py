"""The ``specmatch`` command line. Commands hold no logic: they call the core and map errors to exit codes.

Heavy modules (torch, plugins) are imported inside commands, so ``--help`` and ``--version`` stay fast.
User mistakes print a message without a traceback: exit code 2 for an invalid recipe, 1 otherwise. Internal
errors print one line too, naming where the traceback went (the run log, or stderr with ``-v``).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import click

from . import __version__
from .core.errors import SpecmatchError


log = logging.getLogger("specmatch")


class _Console(logging.Handler):
    """The package's log records on stdout as plain lines, where the engine used to print them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:  # tracebacks are the error handler's business (_Group)
            return False
        # one process speaks for all, as accelerate's print did; only the engine logs, after the state exists
        state = sys.modules.get("accelerate.state")
        return state is None or state.PartialState().is_main_process

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record))  # resolves stdout now, so it follows click's test runner too


def _configure_logging(verbose: bool) -> None:
    from .engine.logs import close_run_log

    close_run_log()  # left open by a run that failed earlier in this process (tests, notebooks)
    for old in [h for h in log.handlers if isinstance(h, _Console)]:  # one per invocation
        log.removeHandler(old)
    log.addHandler(_Console(logging.DEBUG if verbose else logging.INFO))
    log.setLevel(logging.DEBUG)


class _Group(click.Group):
    """Turns :class:`SpecmatchError` into a clean message and exit code, and any other error into one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SpecmatchError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:  # noqa: BLE001 - a bug, not a user mistake
            verbose = (ctx.obj or {}).get("verbose", False)
            log.error("internal error", exc_info=exc)  # reaches the run log, if a run has one open
            files = [h.baseFilename for h in log.handlers if isinstance(h, logging.FileHandler)]
            if verbose:
                click.echo("".join(traceback.format_exception(exc)), err=True, nl=False)
            where = f"traceback in {files[0]}" if files else "traceback above" if verbose else \
                "rerun with -v for the traceback"
            click.echo(f"Error: internal error: {type(exc).__name__}: {exc} ({where})", err=True)
            ctx.exit(1)


def _settings(ctx: click.Context) -> dict[str, Any]:
    return ctx.find_root().obj


def _registry(ctx: click.Context, extra_files: tuple = ()):
    from .core.errors import PluginError
    from .core.session import get_registry

    s = _settings(ctx)
    registry = get_registry(plugin_files=[*s["plugin_files"], *extra_files], disabled=s["disabled"])
    for record in registry.plugins.broken:
        msg = f"plugin {record.name} ({record.distribution} {record.version}) is broken: {record.reason}"
        if s["strict"]:
            raise PluginError(msg + " (--strict-plugins)")
        click.echo(f"Warning: {msg}", err=True)
    return registry


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="specmatch")
@click.option("--plugin-file", "plugin_files", multiple=True, type=click.Path(dir_okay=False),
              help="Load a local plugin module from this file (repeatable).")
@click.option("--disable-plugin", "disabled", multiple=True, metavar="DIST",
              help="Do not load this plugin distribution (repeatable; also SPECMATCH_DISABLE_PLUGINS).")
@click.option("--strict-plugins", is_flag=True, help="Fail if any plugin is broken.")
@click.option("-v", "--verbose", is_flag=True,
              help="Print debug messages, and the traceback of an internal error.")
@click.option("--allow-recipe-plugins", is_flag=True,
              help="Load the plugin files a recipe lists in [plugins] files. They run Python code: use only "
                   "for recipes you trust. Without it such recipes are refused (exit 2).")
@click.pass_context
def main(ctx: click.Context, plugin_files: tuple[str, ...], disabled: tuple[str, ...], strict_plugins: bool,
         verbose: bool, allow_recipe_plugins: bool) -> None:
    """specmatch: train autoencoders, regularize their latents, and measure how well they diffuse."""
    from .core.session import configure

    ctx.obj = {"plugin_files": list(plugin_files), "disabled": list(disabled), "strict": strict_plugins,
               "allow_recipe_plugins": allow_recipe_plugins, "verbose": verbose}
    _configure_logging(verbose)
    # recipes the engine loads itself (analyze reads a run's recipe) see the same choices
    configure(plugin_files=plugin_files, disabled=disabled, allow_recipe_plugins=allow_recipe_plugins)


# -- components ------------------------------------------------------------------------------------------

@main.group()
def components() -> None:
    """List and describe registered components."""


def _kind_choice() -> click.Choice:
    from .core.kinds import KINDS

    return click.Choice(sorted(KINDS))


@components.command("list")
@click.option("--kind", type=_kind_choice(), help="Only this kind.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.argument("pattern", required=False)
@click.pass_context
def components_list(ctx: click.Context, kind: str | None, as_json: bool, pattern: str | None) -> None:
    """Every registered component with its provider (PATTERN: fnmatch on names, e.g. 'e*')."""
    registry = _registry(ctx)
    specs = registry.search(kind, pattern)
    rows = [{"kind": s.kind, "name": s.name, "aliases": list(s.aliases), "provider": str(s.provider),
             "distribution": s.provider.distribution, "version": s.provider.version,
             "builtin": s.provider.builtin, "component_version": s.version, "summary": s.summary} for s in specs]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no components match")
        return
    width = max(len(r["name"]) for r in rows)
    current = None
    for r in rows:
        if r["kind"] != current:
            current = r["kind"]
            click.echo(f"\n[{current}]" if current != rows[0]["kind"] else f"[{current}]")
        click.echo(f"  {r['name']:<{width}}  {r['provider']:<24}  {r['summary']}")


@components.command("info")
@click.argument("kind", type=_kind_choice())
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def components_info(ctx: click.Context, kind: str, name: str, as_json: bool) -> None:
    """Summary, parameters (name, type, default, doc) and a TOML snippet for one component."""
    from .docs_render import describe_fields, toml_snippet

    from .core.spec_checks import check_params_defaults

    spec = _registry(ctx).get(kind, name)
    params_cls = spec.params_class()
    if isinstance(spec.params, str):  # a lazy params class: its defaults were not checked at registration
        check_params_defaults(spec, params_cls)  # never print a snippet that validate rejects
    rows = describe_fields(params_cls)
    if as_json:
        click.echo(json.dumps({"kind": kind, "name": spec.name, "aliases": list(spec.aliases),
                               "provider": str(spec.provider), "plugin": spec.provider.plugin,
                               "component_version": spec.version, "summary": spec.summary, "facts": spec.info(),
                               "params": rows}, indent=2, default=str))
        return
    click.echo(f"{spec.kind} {spec.name!r} — {spec.summary}")
    click.echo(f"provider: {spec.provider}   plugin: {spec.provider.plugin}")
    if spec.aliases:
        click.echo(f"aliases: {', '.join(spec.aliases)}")
    for key, value in spec.info().items():
        click.echo(f"{key}: {value}")
    click.echo("")
    if rows:
        headers = ("name", "type", "default", "doc")
        table = [(r["name"], r["type"], repr(r["default"]),
                  r["doc"] + (f" [{r['constraints']}]" if r["constraints"] else "")) for r in rows]
        widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers[:3])]
        click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths + [0])).rstrip())
        for t in table:
            click.echo("  ".join(c.ljust(w) for c, w in zip(t, widths + [0])).rstrip())
    else:
        click.echo("(no parameters)")
    click.echo("\nTOML:\n" + toml_snippet(spec, rows))


# -- plugins ---------------------------------------------------------------------------------------------

@main.group()
def plugins() -> None:
    """Plugin distributions and their status."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def plugins_list(ctx: click.Context, as_json: bool) -> None:
    """Each plugin with its status: active, disabled, or broken (and why)."""
    from .core.errors import PluginConflictError
    from .core.plugins import load_plugins
    from .core.registry import Registry

    s = _settings(ctx)
    loaded = load_plugins(plugin_files=s["plugin_files"], disabled=s["disabled"])
    conflict = ""
    try:
        Registry.build(loaded)  # also marks plugins whose hooks raise as broken
    except PluginConflictError as exc:
        conflict = str(exc)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in loaded.records], indent=2))
    else:
        for r in loaded.records:
            where = " (builtin)" if r.builtin else ""
            line = f"{r.name:<44} {r.distribution} {r.version}{where}  {r.status}"
            if r.reason:
                line += f": {r.reason}"
            click.echo(line)
    if conflict:
        click.echo(f"Error: {conflict}", err=True)
        ctx.exit(1)
    if s["strict"] and loaded.broken:
        ctx.exit(1)


# -- recipes ---------------------------------------------------------------------------------------------

def _load(ctx: click.Context, recipe: str, overrides: tuple[str, ...], *, check_files: bool = True):
    """Validate a recipe; its own plugin files are imported only with --allow-recipe-plugins."""
    from .core.recipe import load_recipe

    allowed = _settings(ctx)["allow_recipe_plugins"]
    return load_recipe(recipe, overrides, registry_for=lambda files: _registry(ctx, tuple(files)),
                       allow_recipe_plugins=allowed,
                       check_files=check_files)


@main.command()
@click.argument("recipes", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--override", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe key with a TOML literal, e.g. -o train.autoencoder.steps=200.")
@click.option("--no-file-checks", is_flag=True,
              help="Do not check that data folders and weights files exist (validating for another machine).")
@click.pass_context
def validate(ctx: click.Context, recipes: tuple[str, ...], overrides: tuple[str, ...], no_file_checks: bool) -> None:
    """Check recipes without building anything (and without importing torch or running recipe plugin code).

    What passes here is what the run accepts: component parameters, geometry (latent grid, patch and block
    sizes), adaptive-weight layers, trackers, and that every file the run reads exists.
    """
    from .core.errors import RecipeError
    from .study.schema import StudyError, is_study_file

    failed = 0
    for recipe in recipes:
        try:
            if is_study_file(Path(recipe)):  # a study: every cell's recipe, as `specmatch study --dry-run`
                n = _validate_study(ctx, recipe, overrides, check_files=not no_file_checks)
                click.echo(f"{recipe}: ok (study, {n} cells)")
                continue
            resolved = _load(ctx, recipe, overrides, check_files=not no_file_checks)
        except (RecipeError, StudyError) as exc:
            failed += 1
            click.echo(f"Error: {exc}", err=True)
            continue
        for w in resolved.warnings:
            click.echo(f"Warning: {recipe}: {w}", err=True)
        click.echo(f"{recipe}: ok")
    if failed:
        ctx.exit(2)


def _validate_study(ctx: click.Context, path: str, overrides: tuple[str, ...], *, check_files: bool) -> int:
    """Check a study file and every cell's recipe (``-o`` overrides go to every cell); the number of cells."""
    from .study.matrix import expand, resolve_cells
    from .study.schema import load_study

    spec = load_study(path, _registry(ctx))
    cells = expand(spec, Path("runs") / spec.name)
    resolve_cells(spec, cells, lambda recipe, ov: _load(ctx, str(recipe), (*ov, *overrides), check_files=check_files))
    return len(cells)


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("-o", "--override", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe key with a TOML literal (repeatable).")
@click.option("--output-dir", type=click.Path(file_okay=False), help="Run folder (default: runs/<run.name>).")
@click.option("--dry-run", is_flag=True, help="Print the resolved recipe and the plan; build nothing.")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue from the last checkpoint in the run folder.")
@click.option("--processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Data-parallel processes on this machine (started through accelerate's launcher).")
@click.pass_context
def run(ctx: click.Context, recipe: str, overrides: tuple[str, ...], output_dir: str | None, dry_run: bool,
        resume: bool, processes: int) -> None:
    """Run a recipe: train the autoencoder, then (if the recipe has one) the denoiser, sample and evaluate."""
    resolved = _load(ctx, recipe, overrides)
    if processes > 1 and not dry_run:
        from .engine.launch import relaunch

        ctx.exit(relaunch(processes, sys.argv))
    for w in resolved.warnings:
        click.echo(f"Warning: {w}", err=True)
    out = Path(output_dir) if output_dir else Path("runs") / resolved.recipe.run.name
    from .core.plan import make_plan

    plan = make_plan(resolved, out)
    if dry_run:
        click.echo(resolved.to_toml(header=f"# resolved from {recipe}\n"))
        click.echo(plan.render())
        return
    from .engine.pipeline import run_pipeline

    run_pipeline(resolved, plan, resume=resume)


_EXECUTORS = ("local", "slurm", "submitit-local")  # submitit-local: the slurm code path on this machine (tests)


def _executor_choice(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value not in _EXECUTORS:
        raise click.BadParameter(f"expected local or slurm; got {value!r}")
    return value


def _global_args(ctx: click.Context) -> list[str]:
    """The global options of this invocation, for the ``specmatch run`` processes a study starts."""
    s = _settings(ctx)
    args = [a for f in s["plugin_files"] for a in ("--plugin-file", str(Path(f).resolve()))]
    args += [a for d in s["disabled"] for a in ("--disable-plugin", d)]
    args += ["--strict-plugins"] * s["strict"] + ["--allow-recipe-plugins"] * s["allow_recipe_plugins"]
    return args + ["-v"] * s["verbose"]


@main.command()
@click.argument("study_file", type=click.Path(dir_okay=False))
@click.option("--output-dir", type=click.Path(file_okay=False),
              help="The study folder (default: runs/<name>): study.json, cells/, logs/, the report.")
@click.option("--dry-run", is_flag=True, help="Validate every cell, print the matrix and each cell's plan; run nothing.")
@click.option("--status", is_flag=True, help="Print each cell's status (running cells with their stage and step) "
                                            "from the study folder; run nothing.")
@click.option("--executor", default="local", show_default=True, callback=_executor_choice, metavar="local|slurm",
              help="local: cells on this machine, --jobs at a time; slurm: each cell a Slurm job through submitit.")
@click.option("--jobs", "-j", "parallel", type=click.IntRange(min=1), default=1, show_default=True,
              help="local executor: run this many cells at a time, each with its share of the cores as "
                   "OMP_NUM_THREADS (unless set).")
@click.option("--only", "pattern", metavar="PATTERN",
              help="Only cells whose id or group matches this shell pattern, e.g. 'sdvae/*' or '*/seed-0*' "
                   "(plus the cells whose autoencoder they reuse).")
@click.option("--slurm-partition", help="Slurm partition (default: the study's [slurm] partition).")
@click.option("--slurm-gpus", type=click.IntRange(min=0), help="GPUs per cell (default: [slurm] gpus, 0).")
@click.option("--slurm-time", type=click.IntRange(min=1), help="Time limit per cell in minutes (default: [slurm] "
                                                               "time, 240).")
@click.pass_context
def study(ctx: click.Context, study_file: str, output_dir: str | None, dry_run: bool, status: bool, executor: str,
          parallel: int, pattern: str | None, slurm_partition: str | None, slurm_gpus: int | None,
          slurm_time: int | None) -> None:
    """Run a study: every recipe x seed (x denoiser) cell as a run, complete cells reused, then the report.

    A failing cell is reported and the others go on; the exit code is 1 when any cell failed. Rerunning the
    same command resumes an interrupted study.
    """
    from .study.matrix import expand, resolve_cells, select
    from .study.schema import load_study

    spec = load_study(study_file, _registry(ctx))
    out = Path(output_dir) if output_dir else Path("runs") / spec.name
    cells = select(expand(spec, out), pattern)
    if not cells:
        raise SpecmatchError(f"--only {pattern!r} matches no cell of {study_file}")

    def load(recipe: Path, overrides):
        return _load(ctx, str(recipe), tuple(overrides))

    if status:
        from .study.status import render, status_rows

        if not (out / "study.json").is_file():
            raise SpecmatchError(f"{out} holds no study.json: the study has not started there (--output-dir?)")
        click.echo(render(status_rows(cells, out, spec.name)))
        return
    if dry_run:
        from .core.plan import make_plan

        resolved = resolve_cells(spec, cells, load)
        click.echo(f"# study {spec.name}: {len(cells)} cells in {out}" +
                   (f", baseline {spec.baseline}" if spec.baseline else ""))
        if spec.reference_images:
            click.echo(f"# generation reference: `specmatch stats` of {spec.reference_images} training images, once "
                       f"per data table, in {out / 'reference'}; every cell's evaluation.reference")
        for cell in cells:
            plan = make_plan(resolved[cell.cell.id], cell.cell.run_dir)
            click.echo(f"\n[{cell.cell.id}]  {cell.recipe_file}")
            click.echo("  " + " ".join(f"-o {o}" for o in cell.overrides))
            if cell.autoencoder_from:
                click.echo(f"# autoencoder and latent statistics: from cell {cell.autoencoder_from} "
                           f"(autoencoder.from_run)")
                import attrs

                plan = attrs.evolve(plan, stages=tuple(s for s in plan.stages
                                                       if s.name not in ("autoencoder", "latent_stats")))
            click.echo(plan.render())
        return
    resolve_cells(spec, cells, load)  # every mistake before any cell runs
    from .study.execute import StudyRun, summary_table, write_study_report
    from .study.executors import LocalExecutor, SubmititExecutor, SubmititSettings

    if executor == "local":
        runner = LocalExecutor(parallel)
    else:
        if parallel != 1:
            raise SpecmatchError("--jobs applies to --executor local; with slurm every cell is its own job")
        cfg = spec.slurm
        runner = SubmititExecutor(SubmititSettings(
            cluster="slurm" if executor == "slurm" else "local", folder=(out / "submitit").resolve(),
            partition=slurm_partition if slurm_partition is not None else cfg.partition,
            gpus=slurm_gpus if slurm_gpus is not None else cfg.gpus,
            minutes=slurm_time if slurm_time is not None else cfg.time, cpus=cfg.cpus, mem_gb=cfg.mem_gb,
            poll_seconds=0.5 if executor == "submitit-local" else 10.0))
    outcomes = StudyRun(spec, cells, output_dir=out, load=load, executor=runner, global_args=_global_args(ctx),
                        echo=click.echo).run()
    click.echo("\n" + summary_table(outcomes))
    failed = [o for o in outcomes if o.status == "failed"]
    if pattern:  # the report covers the whole study: cells outside --only as study.json last saw them
        from .study.matrix import expand as all_cells
        from .study.state import StudyState

        state = StudyState(out, spec.name)
        chosen = {o.cell.id: o for o in outcomes}
        outcomes = [chosen.get(c.cell.id) or state.outcome(c.cell) for c in all_cells(spec, out)]
    written = write_study_report(outcomes, spec, out)
    if written:
        click.echo("report: " + ", ".join(str(p) for p in written.values()))
    else:
        click.echo("Warning: no report written (specmatch.study.report is not available)", err=True)
    if failed:
        click.echo(f"Error: {len(failed)} of {len(cells)} cells failed (logs in {out / 'logs'})", err=True)
        ctx.exit(1)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--diagnostic", "diagnostics", multiple=True, metavar="NAME",
              help="Also run this diagnostic (repeatable; 'all' = every registered one) besides the recipe's "
                   "[evaluation] diagnostics (`specmatch components list --kind diagnostic`).")
@click.option("--images", type=click.IntRange(min=1), default=256, show_default=True, help="Images analysed (N).")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("-o", "--override", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Set a diagnostic's param, e.g. -o evaluation.diagnostic_params.lowpass-rfid.levels=[0,4,8].")
@click.option("--deltas", default=None, help="Deprecated: -o evaluation.diagnostic_params.latent-spectrum.deltas=[...]"
                                             " (comma-separated delta targets).")
@click.option("--levels", default=None, help="Deprecated: -o evaluation.diagnostic_params.lowpass-rfid.levels=[...] "
                                             "(comma-separated DSM mask levels; adds lowpass-rfid).")
@click.option("--block-size", type=click.IntRange(min=1), default=None,
              help="Deprecated: -o evaluation.diagnostic_params.lowpass-rfid.block_size=B (adds lowpass-rfid).")
@click.pass_context
def analyze(ctx: click.Context, run_dir: str, diagnostics: tuple[str, ...], images: int, split: str,
            overrides: tuple[str, ...], deltas: str | None, levels: str | None, block_size: int | None) -> None:
    """Diagnostic plugins on a run's trained autoencoder: the recipe's [evaluation] diagnostics plus each
    --diagnostic; writes RUN_DIR/analysis.json (per diagnostic: settings, N, scalars, report) and the
    diagnostics' figures (spectrum.png, latent_pca.png)."""
    registry = _registry(ctx)  # plugin warnings, strict mode
    from .engine.analyze import ANALYSIS_FILE, analyze_run, legacy_overrides

    legacy_names, legacy = legacy_overrides(deltas, levels, block_size)
    if legacy:
        click.echo("note: --deltas, --levels and --block-size are deprecated; use --diagnostic NAME and "
                   "-o evaluation.diagnostic_params.NAME.KEY=VALUE", err=True)
    analysis = analyze_run(Path(run_dir), diagnostics=[*diagnostics, *legacy_names], images=images, split=split,
                           overrides=[*legacy, *overrides], registry=registry)
    figures = []
    for name, entry in analysis.items():
        click.echo(f"[{name}] N = {entry['n']} {split} images, latent {entry['latent_shape']}")
        for key, value in entry["scalars"].items():
            click.echo(f"  {key:<40} {value:.5g}")
        figures += [str(Path(run_dir) / f) for f in entry["figures"]]
    click.echo(f"wrote {', '.join([str(Path(run_dir) / ANALYSIS_FILE), *figures])}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.argument("out", type=click.Path(dir_okay=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["diffusers"]), default="diffusers", show_default=True,
              help="diffusers: an AutoencoderKL folder (config.json, diffusion_pytorch_model.safetensors).")
@click.pass_context
def export(ctx: click.Context, run_dir: str, out: str, fmt: str) -> None:
    """Write RUN_DIR's trained autoencoder to the folder OUT in another library's format (needs
    specmatch[diffusers]); its latent statistics become the config's latent scaling."""
    registry = _registry(ctx)
    from .engine.export import export_run

    folder = export_run(Path(run_dir), Path(out), fmt=fmt, registry=registry)
    click.echo(f"wrote {folder} (diffusers AutoencoderKL: AutoencoderKL.from_pretrained({str(folder)!r}))")


@main.command()
@click.argument("source", type=click.Path(exists=True))
@click.option("--output", "-O", "output", required=True, type=click.Path(dir_okay=False),
              help="The .npz file to write (ADM layout: mu, sigma; plus n, features, network, protocol).")
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True,
              help="Split of a recipe's dataset.")
@click.option("--images", type=click.IntRange(min=2), default=None,
              help="A seeded random subset of this many images (default: all).")
@click.option("--resolution", type=click.IntRange(min=8), default=256, show_default=True,
              help="Image side for an image folder (a recipe's dataset has its own).")
@click.option("--protocol", default=None,
              help="Apply this evaluation protocol's preprocessing and feature network hash (default: a recipe's "
                   "own [evaluation] settings, so its evaluation can use the file; custom for a folder or batch).")
@click.option("--feature-network", default=None,
              help="TorchScript feature network file (default: a recipe's evaluation.feature_network, else the "
                   "bundled one).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the image and feature subsets.")
@click.option("--features", "subset", type=click.IntRange(min=0), default=10000, show_default=True,
              help="Feature rows kept in the file for KID and precision/recall (0: none).")
@click.option("-o", "--override", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a value of the recipe (SOURCE a .toml file).")
@click.option("--check-weights", default="", type=click.Path(dir_okay=False),
              help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth: also run that full network on the same "
                   "images, report the FID between its pool features and the bundled network's and their largest "
                   "relative difference, and add the sFID spatial statistics (mu_s, sigma_s) to the file.")
@click.option("--check-sha256", default=None,
              help="Expected sha256 (or prefix) of --check-weights; default the 8 digits in the file's name, "
                   "'' = not checked.")
@click.option("--recompute-moments", is_flag=True,
              help="SOURCE an ADM batch (.npz) with mu/sigma: write the moments of its arr_0 images instead of "
                   "keeping the file's (ADM's are over the whole training set).")
@click.pass_context
def stats(ctx: click.Context, source: str, output: str, split: str, images: int | None, resolution: int,
          protocol: str, feature_network: str, batch_size: int, seed: int, subset: int,
          overrides: tuple[str, ...], check_weights: str, check_sha256: str | None,
          recompute_moments: bool) -> None:
    """Reference statistics (Inception mean and covariance) of SOURCE, a recipe (its [data] table), an image
    folder, or an ADM batch (.npz with arr_0 images), written in the ADM .npz layout for
    `[evaluation] reference`."""
    from .core.errors import SpecmatchError
    from .metrics.protocols import PROTOCOLS

    src = Path(source)
    if not src.is_dir() and src.suffix not in (".toml", ".npz"):
        raise SpecmatchError(f"{src}: expected a recipe (.toml), a folder of images or an ADM batch (.npz)")
    if protocol is not None and protocol not in PROTOCOLS:
        raise SpecmatchError(f"unknown evaluation protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    _registry(ctx)
    import torch

    from .engine.evaluation import load_feature_network
    from .engine.reference_stats import dataset_from_source, dataset_statistics, recipe_preprocessing
    from .metrics.reference import write_reference

    recipe = _load(ctx, str(src), overrides) if src.suffix == ".toml" else None
    dataset = dataset_from_source(src, split, resolution, recipe)
    # a recipe's file must hold what its own evaluation would compute; --protocol/--feature-network override
    prep = recipe_preprocessing(recipe, protocol, feature_network)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    network, why_not = load_feature_network(prep.feature_network, prep.network_dir, device, prep.network_sha256)
    if network is None:
        raise SpecmatchError(why_not)
    check = None
    if check_weights:
        from .engine.reference_stats import NetworkCheck
        from .metrics.inception_full import load_full_inception
        from .metrics.weights_files import PYTORCH_FID_SHA256_PREFIX

        full = load_full_inception(check_weights, what="--check-weights",
                                   sha256=PYTORCH_FID_SHA256_PREFIX if check_sha256 is None else check_sha256)
        check = NetworkCheck(network, full)
    result = dataset_statistics(dataset, images=images, batch_size=batch_size,
                                network=check if check is not None else network, seed=seed,
                                subset=subset if subset >= 2 else 2, quantize_uint8=prep.quantize_uint8,
                                jpeg_quality=prep.jpeg_quality,
                                streams=check.streams() if check is not None else ())
    import attrs

    if subset == 0:
        result = attrs.evolve(result, features=None)
    if check is not None:
        from .engine.reference_stats import CHECK_POOL_STREAM

        report = check.report(result)
        result = attrs.evolve(result, streams={k: v for k, v in result.streams.items() if k != CHECK_POOL_STREAM})
    if src.suffix == ".npz" and not recompute_moments:
        from .engine.reference_stats import keep_batch_moments

        result = keep_batch_moments(result, dataset, src)
    write_reference(output, result, protocol=prep.protocol)
    click.echo(f"wrote {output}: N = {result.n} images, {network.describe()['name']}, protocol {prep.protocol}"
               + (f" (quantised to 8 bits{f', JPEG {prep.jpeg_quality}' if prep.jpeg_quality else ''})"
                  if prep.quantize_uint8 or prep.jpeg_quality else ""))
    if check is not None:
        click.echo(f"check against {check_weights}: FID between the two networks' features = "
                   f"{report['fid_between_networks']:.6g} (N = {report['n']}), largest relative feature "
                   f"difference = {report['max_relative_difference']:.3g}; spatial statistics (mu_s, sigma_s) "
                   f"written")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print {run: metrics} as JSON.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="Also write the study report (report.html, results.csv, report.md) of these runs into DIR.")
@click.option("--baseline", help="With --report: the run (folder name) the others are compared against.")
def compare(run_dirs: tuple[str, ...], as_json: bool, report_dir: str | None, baseline: str | None) -> None:
    """Metrics of several runs side by side (metrics.json, plus analysis.json where present)."""
    from .compare import common_text_rows, compare_runs, render_table, report_outcomes, run_metrics

    dirs = [Path(d) for d in run_dirs]
    if baseline is not None and report_dir is None:
        raise SpecmatchError("--baseline needs --report DIR (it chooses the report's baseline)")
    if report_dir is not None:
        from .study.report import write_report

        outcomes = report_outcomes(dirs)
        labels = [o.cell.recipe for o in outcomes]
        if baseline is not None and baseline not in labels:
            raise SpecmatchError(f"--baseline {baseline!r} is not one of the runs; the runs are "
                                 f"{', '.join(labels)} (folder names)")
        paths = write_report(outcomes, output_dir=Path(report_dir), baseline=baseline,
                             title=f"comparison of {', '.join(labels)}")
        click.echo(f"wrote {paths['html']}, {paths['csv']} and {paths['md']}", err=True)
    if as_json:
        click.echo(json.dumps({str(d): run_metrics(d) for d in dirs}, indent=2))
        return
    header, rows = compare_runs(dirs)
    rows, common = common_text_rows(rows)
    click.echo(render_table(header, rows))
    if common:
        click.echo("\nthe same in every run:")
        for key, value in common:
            click.echo(f"  {key}: {value}")


@main.group()
def recipes() -> None:
    """List and compare recipes."""


def _default_recipe_dir() -> Path:
    """./recipes when it exists, else the recipes folder of the specmatch checkout (editable installs)."""
    here = Path("recipes")
    return here if here.is_dir() else Path(__file__).resolve().parents[1] / "recipes"


@recipes.command("list")
@click.argument("folder", required=False, type=click.Path(file_okay=False))
@click.option("--bases", is_flag=True, help="Also list shared bases (base*.toml), which are extended, not run.")
def recipes_list(folder: str | None, bases: bool) -> None:
    """Recipes under FOLDER (default ./recipes) with the first line of their header comment."""
    from .core.errors import SpecmatchError
    from .core.recipe import is_base_recipe

    root = Path(folder) if folder else _default_recipe_dir()
    if not root.is_dir():
        raise SpecmatchError(f"{root}: no such folder; give the folder that holds your recipes")
    rows = []
    for path in sorted(root.rglob("*.toml")):
        rel = path.relative_to(root)
        is_base = is_base_recipe(rel)
        if is_base and not bases:
            continue
        comment = next((line.lstrip("# ").strip() for line in path.read_text(encoding="utf-8").splitlines()
                        if line.startswith("#") and line.lstrip("# ").strip()), "")
        rows.append((rel.as_posix(), ("(base) " if is_base else "") + comment))
    if not rows:
        click.echo(f"no recipes under {root}")
        return
    width = max(len(name) for name, _ in rows)
    click.echo(f"# recipes under {root}")
    for name, comment in rows:
        click.echo(f"{name:<{width}}  {comment if len(comment) <= 100 else comment[:97] + '...'}".rstrip())


@recipes.command("diff")
@click.argument("first", type=click.Path(dir_okay=False))
@click.argument("second", type=click.Path(dir_okay=False))
@click.pass_context
def recipes_diff(ctx: click.Context, first: str, second: str) -> None:
    """Keys whose resolved values differ between two recipes (defaults and extends applied)."""
    from .compare import diff_recipes, render_table

    a, b = _load(ctx, first, ()), _load(ctx, second, ())
    rows = [[k, va, vb] for k, va, vb in diff_recipes(a.to_dict(), b.to_dict())]
    if not rows:
        click.echo("the resolved recipes are identical")
        return
    click.echo(render_table(["key", Path(first).name, Path(second).name], rows))


@main.command()
def env() -> None:
    """The interpreter, specmatch's location and the plugin switches (for bug reports)."""
    import os
    import platform

    click.echo(f"specmatch {__version__} at {Path(__file__).parent}")
    click.echo(f"python {platform.python_version()} at {sys.executable}")
    # a plugin installed into another environment is invisible: these are the folders searched here
    import site

    for folder in [*site.getsitepackages(), site.getusersitepackages()]:
        click.echo(f"site-packages {folder}{'' if Path(folder).is_dir() else ' (absent)'}")
    for var in ("SPECMATCH_PLUGINS", "SPECMATCH_DISABLE_PLUGINS", "SPECMATCH_DISABLE_PLUGIN_AUTOLOAD"):
        click.echo(f"{var}={os.environ.get(var, '')}")


from .data.check_command import data as _data_commands  # noqa: E402  (``specmatch data check``)

main.add_command(_data_commands)


def entry() -> None:
    """Console-script entry point; plugin warnings go to stderr once."""
    warnings.simplefilter("default")
    main(prog_name="specmatch")


if __name__ == "__main__":  # pragma: no cover
    entry()

