"""``specmatch data check RECIPE [--full]``: list every unreadable item of a recipe's datasets.

The ``data`` group is added to the CLI with ``main.add_command(data)``; it loads recipes and plugins as the
other commands do (``specmatch.cli._load``), so it needs the CLI's root options.
"""

from __future__ import annotations

import click

from specmatch.core.errors import SpecmatchError


@click.group("data")
def data() -> None:
    """Check the datasets of a recipe."""


@data.command("check")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("-o", "--override", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe key with a TOML literal (repeatable).")
@click.option("--full", is_flag=True, help="Decode every image (slower) instead of checking file headers.")
@click.pass_context
def check(ctx: click.Context, recipe: str, overrides: tuple[str, ...], full: bool) -> None:
    """Check every item of RECIPE's train and test data and list each bad file with why.

    Exits with code 1 if any item is bad. Without --full only headers are read (fast); --full decodes
    every image as training would.
    """
    from specmatch.cli import _load
    from specmatch.data.check import preflight_datasets
    from specmatch.engine import build as B

    try:
        resolved = _load(ctx, recipe, overrides)
        comp = resolved.component("data")
        datasets = B.build(comp, B.context(resolved, None, {}))
        report = preflight_datasets(datasets, full=full)
    except SpecmatchError as exc:  # also right when the group is used outside the specmatch CLI
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(exc.exit_code)
    click.echo(report.render())
    if not report.ok:
        ctx.exit(1)
