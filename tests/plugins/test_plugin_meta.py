"""Meta tests: every hook is documented in docs/plugins.md, every built-in parameter has a doc, and the light
paths (``import specmatch``, ``--help``, ``--version``, listing, validating) never import torch."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import pytest

from specmatch.core import hookspecs
from specmatch.core.plugins import load_plugins
from specmatch.core.registry import Registry
from specmatch.core.kinds import KINDS, SPEC_CLASSES
from specmatch.core.specs import ComponentSpec
from specmatch.testing import MINIMAL_RECIPE, write_recipe

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "plugins.md"

HOOKS = sorted(name for name, fn in vars(hookspecs).items()
               if name.startswith("specmatch_") and inspect.isfunction(fn))


def test_hooks_are_the_kinds_plus_validation():
    assert {k.hook for k in KINDS.values()} | {"specmatch_validate_recipe"} == set(HOOKS)
    assert all(hasattr(getattr(hookspecs, h), "specmatch_spec") for h in HOOKS)  # marked with @hookspec


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_signature(hook):
    guide = GUIDE.read_text(encoding="utf-8")
    assert f"### `{hook}`" in guide, f"docs/plugins.md has no section for {hook}"
    args = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert f"def {hook}({args})" in guide, f"docs/plugins.md does not show the signature {hook}({args})"


@pytest.mark.parametrize("cls", list(SPEC_CLASSES.values()), ids=list(SPEC_CLASSES))
def test_every_spec_record_and_its_fields_are_documented(cls):
    guide = GUIDE.read_text(encoding="utf-8")
    assert f"`{cls.__name__}`" in guide
    for field in attrs.fields(cls):
        assert f"`{field.name}`" in guide, f"docs/plugins.md does not explain {cls.__name__}.{field.name}"


def test_switches_are_documented():
    guide = GUIDE.read_text(encoding="utf-8")
    for switch in ("SPECMATCH_PLUGINS", "SPECMATCH_DISABLE_PLUGINS", "SPECMATCH_DISABLE_PLUGIN_AUTOLOAD",
                   "--disable-plugin", "--plugin-file", "--strict-plugins", "[plugins]"):
        assert switch in guide, switch
    for key in ("autoencoder", "alignment", "latent_shape", "num_classes"):
        assert f'`"{key}"`' in guide, f"ctx.upstream[{key!r}] is not documented"


BUILTIN_SPECS = Registry.build(load_plugins(autoload=False)).specs


@pytest.mark.parametrize("spec", BUILTIN_SPECS, ids=[f"{s.kind}:{s.name}" for s in BUILTIN_SPECS])
def test_every_builtin_has_a_summary_and_documented_params(spec: ComponentSpec):
    assert spec.provider is not None and spec.provider.builtin
    assert spec.summary, f"{spec.kind} {spec.name!r} has no summary"
    cls = spec.params_class()
    for field in attrs.fields(cls) if cls is not None else ():
        assert field.metadata.get("doc"), f"{spec.kind} {spec.name!r}: params field {field.name!r} has no doc"


def test_builtins_cover_every_kind():
    assert {s.kind for s in BUILTIN_SPECS} == set(KINDS)


# -- no torch on light paths -----------------------------------------------------------------------------------

def imported_modules(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``python -X importtime <args>``; return the process and the names of every module it imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECMATCH_")}
    done = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)
    modules = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
               if line.startswith("import time:") and "|" in line}
    assert "specmatch" in modules or "specmatch.cli" in modules, done.stderr[-2000:]
    return done, modules


def torch_modules(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m == "torch" or m.startswith("torch."))


def test_import_specmatch_imports_no_torch(tmp_path):
    done, modules = imported_modules(["-c", "import specmatch"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert torch_modules(modules) == []
    assert "specmatch.regularizers.kl" not in modules  # and discovers no plugins


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["plugins", "list"], ["components", "list"]])
def test_light_commands_import_no_torch(args, tmp_path):
    done, modules = imported_modules(["-m", "specmatch", *args], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert torch_modules(modules) == [], f"specmatch {' '.join(args)} imported torch"


def test_validate_imports_no_torch(tmp_path):
    recipe = write_recipe(tmp_path, MINIMAL_RECIPE + textwrap.dedent("""
        [[regularizers]]
        name = "esm"
        weight = 0.01
        [denoiser]
        name = "dit"
        params = { preset = "dit-micro", patch_size = 2 }
    """))
    done, modules = imported_modules(["-m", "specmatch", "validate", str(recipe)], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"{recipe}: ok"
    assert torch_modules(modules) == []
