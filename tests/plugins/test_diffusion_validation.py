"""`validate` refuses a (sampler, objective) pair that cannot work, and bad sampler/objective settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from specmatch.core.errors import RecipeError
from specmatch.core.recipe import load_recipe
from specmatch.testing import MINIMAL_RECIPE

DENOISED = MINIMAL_RECIPE + '[denoiser]\nname = "dit"\nparams = { preset = "dit-micro" }\n'


def problems(tmp_path: Path, extra: str) -> list[str]:
    path = tmp_path / "r.toml"
    path.write_text(DENOISED + extra, encoding="utf-8")
    try:
        load_recipe(path)
    except RecipeError as exc:
        return [p.render() for p in exc.problems]
    return []


@pytest.mark.parametrize("sampler", ["euler", "heun", "euler-maruyama"])
def test_samplers_that_integrate_time_refuse_a_discrete_objective(tmp_path, sampler):
    found = problems(tmp_path, f'[objective]\nname = "ddpm"\n[sampler]\nname = "{sampler}"\n')
    assert len(found) == 1, found
    assert found[0].startswith("sampler.params") and "continuous-time objective" in found[0]
    assert 'params.time = "continuous"' in found[0]  # the fix is named


@pytest.mark.parametrize("objective,sampler", [
    ('name = "ddpm"', "ddim"), ('name = "ddpm"', "dpmpp-2m"),
    ('name = "ddpm"\nparams = { time = "continuous" }', "heun"),
    ('name = "v-prediction"', "euler-maruyama"), ('name = "flow-matching"', "dpmpp-2m"),
])
def test_pairs_that_work_are_accepted(tmp_path, objective, sampler):
    assert problems(tmp_path, f'[objective]\n{objective}\n[sampler]\nname = "{sampler}"\n') == []


def test_bad_sampler_and_objective_settings(tmp_path):
    found = problems(tmp_path, '[sampler]\nname = "euler-maruyama"\nparams = { guidance_low = 0.8, guidance_high = 0.2 }\n')
    assert any(p.startswith("sampler.params.guidance_low") for p in found), found
    found = problems(tmp_path, '[objective]\nname = "flow-matching"\nparams = { shift = 2.0, shift_base_dim = 256 }\n')
    assert any(p.startswith("objective.params.shift_base_dim") for p in found), found
    found = problems(tmp_path, '[sampler]\nname = "ddim"\nparams = { eta = 2.0 }\n')
    assert any("sampler.params.eta" in p for p in found), found
    found = problems(tmp_path, '[sampler]\nname = "heun"\nparams = { cfg_scale = 1.8 }\n')
    assert any("sampler.params.cfg_scale" in p and "unconditional" in p for p in found), found
