"""``run.compile = true``: the engine compiles the autoencoder and the denoiser in place, nothing else."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from specmatch.core.layout import RunLayout
from specmatch.core.recipe import load_recipe
from specmatch.engine.run_context import RunContext
from specmatch.testing import MINIMAL_RECIPE

DENOISED = MINIMAL_RECIPE + '[denoiser]\nname = "dit"\nparams = { preset = "dit-micro", patch_size = 2 }\n'


def run_context(tmp_path: Path, compile_: bool) -> RunContext:
    path = tmp_path / "r.toml"
    path.write_text(DENOISED, encoding="utf-8")
    resolved = load_recipe(path, [f"run.compile={'true' if compile_ else 'false'}"])
    run = RunContext(resolved=resolved, plan=None, layout=RunLayout(tmp_path / "run"), accelerator=None)
    run.upstream.update(latent_shape=(4, 8, 8), num_classes=0)
    return run


@pytest.mark.parametrize("compile_", [True, False])
def test_compile_setting_reaches_the_autoencoder_and_the_denoiser_only(tmp_path, monkeypatch, compile_):
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(type(self).__name__))
    run = run_context(tmp_path, compile_)
    autoencoder, denoiser, objective = run.build("autoencoder"), run.build("denoiser"), run.build("objective")
    expected = [type(autoencoder).__name__, type(denoiser).__name__] if compile_ else []
    assert compiled == expected
    assert objective is not None


@pytest.mark.slow
def test_a_compiled_denoiser_matches_eager_and_keeps_its_checkpoint_keys(tmp_path, monkeypatch):
    """Real dynamo capture through the engine's path; the "eager" backend skips inductor's code generation
    (minutes on a busy 2-core machine) but keeps what matters here: the in-place compiled call."""
    original = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: original(self, backend="eager"))
    run = run_context(tmp_path, True)
    model = run.build("denoiser").eval()
    eager = copy.deepcopy(model)  # copies drop the compiled call: they run eagerly
    assert model._compiled_call_impl is not None and eager._compiled_call_impl is None
    x, t = torch.randn(2, 4, 8, 8), torch.rand(2)
    with torch.no_grad():
        torch.testing.assert_close(model(x, t), eager(x, t), rtol=1e-4, atol=1e-5)
    assert list(model.state_dict()) == list(eager.state_dict())
    assert not any("_orig_mod" in key for key in model.state_dict())
