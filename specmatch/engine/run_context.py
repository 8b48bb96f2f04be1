"""What every stage of a run reads: the recipe, its plan, the run folder's layout and the accelerator.

A stage takes a :class:`RunContext` and the frozen results of the stages before it, and returns its own
frozen result; nothing passes between stages through attributes set elsewhere.
"""

from __future__ import annotations

import logging
import contextlib
import time
from pathlib import Path
from typing import Any, Iterator

import attrs

from specmatch.core.layout import RunLayout
from specmatch.core.plan import Plan
from specmatch.core.recipe import ResolvedComponent, ResolvedRecipe

from . import build as B
from .runtime import derive_seed, seeded_init


log = logging.getLogger(__name__)

#: kinds whose networks ``run.compile`` compiles with torch.compile
COMPILED_KINDS = ("autoencoder", "denoiser")


@attrs.define
class RunContext:
    resolved: ResolvedRecipe
    plan: Plan
    layout: RunLayout
    accelerator: Any
    resume: bool = True
    #: objects later factories may need, handed to them as ``BuildContext.upstream`` (documented in plugins.md)
    upstream: dict[str, Any] = attrs.Factory(dict)
    #: seconds each stage took, summed over the invocations that worked on it (a resumed stage adds what the
    #: checkpoint or statistics it continued from recorded; a stage complete before adds its stage.json's)
    timings: dict[str, float] = attrs.Factory(dict)
    #: per stage: the seconds earlier invocations spent before the state this one resumed from (None: unknown)
    carried: dict[str, float | None] = attrs.Factory(dict)

    @property
    def recipe(self):
        return self.resolved.recipe

    def build(self, path: str) -> Any:
        """Build the component at ``path`` (None when the recipe has none)."""
        comp = self.resolved.component(path)
        return None if comp is None else self.build_component(comp)

    def build_component(self, comp: ResolvedComponent) -> Any:
        """Build one component with its initial weights drawn from (run seed, component path) only."""
        with seeded_init(self.recipe.run.seed, comp.path):
            built = B.build(comp, B.context(self.resolved, self.layout.root, self.upstream))
        if self.recipe.run.compile and comp.kind in COMPILED_KINDS and hasattr(built, "compile"):
            built.compile()  # in place: same parameters and state_dict keys; deep copies (EMA) run eagerly
        return built

    def seed(self, *parts: Any) -> int:
        return derive_seed(self.recipe.run.seed, *parts)

    @contextlib.contextmanager
    def timed(self, name: str, marker: Path | None = None) -> Iterator[None]:
        """Time stage ``name``: ``timings[name]`` = ``carried[name]`` + this invocation's seconds, also written
        into ``marker/stage.json`` (the stage's completion marker) so a later run that reuses the stage reports
        them. A stage resumed from a state that did not record its seconds gets no timing."""
        from .checkpoint import record_stage_seconds

        log.debug(f"[{name}] started")
        t0 = time.perf_counter()
        yield
        elapsed = time.perf_counter() - t0
        log.debug(f"[{name}] finished in {elapsed:.1f} s")
        before = self.carried.get(name, 0.0)
        if before is None:
            log.debug(f"[{name}] the state it resumed from does not record its seconds: no time_{name}_s")
            return
        self.timings[name] = before + elapsed
        if marker is not None and self.accelerator.is_main_process:
            record_stage_seconds(marker, self.timings[name])

    def reused(self, name: str, marker: Path) -> None:
        """Stage ``name`` was complete before this invocation: its seconds are those its marker recorded."""
        from .checkpoint import stage_seconds

        seconds = stage_seconds(marker)
        if seconds is not None:
            self.timings[name] = seconds
