"""``extends``: a recipe that names another component than its base does not inherit the base's params."""

from __future__ import annotations

import textwrap
import tomllib

from specmatch.testing import MINIMAL_RECIPE, invoke_cli, write_recipe

SAMPLER_PLUGIN = """
import attrs
from specmatch import SamplerSpec, hookimpl, param


@attrs.frozen(kw_only=True)
class MidpointParams:
    order: int = param(2, doc="steps per interval", ge=1)
    steps: int = param(8, doc="ODE steps", ge=1)


@hookimpl
def specmatch_samplers():
    yield SamplerSpec(name="midpoint", factory=lambda params, ctx: None, params=MidpointParams)
"""

DENOISER = '[denoiser]\nname = "dit"\nparams = { preset = "dit-micro" }\n'


def test_switching_a_component_name_drops_the_base_params_and_dry_run_shows_it(tmp_path):
    plugin = tmp_path / "midpoint.py"
    plugin.write_text(textwrap.dedent(SAMPLER_PLUGIN), encoding="utf-8")
    write_recipe(tmp_path, MINIMAL_RECIPE + DENOISER + '[sampler]\nname = "midpoint"\nparams = { order = 3 }\n',
                 "base.toml")
    child = write_recipe(tmp_path, 'extends = "base.toml"\n[sampler]\nname = "euler"\n', "child.toml")
    result = invoke_cli("--plugin-file", str(plugin), "run", str(child), "--dry-run",
                        "--output-dir", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output  # before: sampler.params.order: unexpected key 'order'
    sampler = tomllib.loads(result.stdout)["sampler"]  # the resolved recipe (the plan lines are comments)
    assert sampler["name"] == "euler" and "order" not in sampler["params"]
    # the same name keeps merging key by key
    same = write_recipe(tmp_path, 'extends = "base.toml"\n[sampler]\nname = "Midpoint"\nparams = { steps = 4 }\n',
                        "same.toml")
    result = invoke_cli("--plugin-file", str(plugin), "run", str(same), "--dry-run",
                        "--output-dir", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert tomllib.loads(result.stdout)["sampler"] == {"name": "midpoint", "params": {"order": 3, "steps": 4}}
