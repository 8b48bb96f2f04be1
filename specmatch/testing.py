"""Helpers for testing specmatch and its plugins (opt-in; the library never imports this module).

    from specmatch.testing import MINIMAL_RECIPE, write_recipe

    def test_my_regularizer_validates(tmp_path):
        path = write_recipe(tmp_path, MINIMAL_RECIPE + '[[regularizers]]\\nname = "my-term"\\n')
        ...
"""

from __future__ import annotations

from pathlib import Path

#: The smallest valid recipe: the offline demo data at 16 px and the micro autoencoder (trains in seconds).
MINIMAL_RECIPE = """\
[data]
name = "demo-photos"
params = { resolution = 16 }

[autoencoder]
name = "sdvae"
params = { preset = "micro-f2d4" }
"""


def write_recipe(folder: Path, text: str, name: str = "recipe.toml") -> Path:
    """Write a recipe file and return its path."""
    path = Path(folder) / name
    path.write_text(text)
    return path


def invoke_cli(*args: str):
    """Run the ``specmatch`` CLI in-process; fail if it printed a traceback or raised anything but an exit."""
    from click.testing import CliRunner

    from specmatch.cli import main

    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output
    # a user mistake ends in a clean exit, never an uncaught exception
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result
