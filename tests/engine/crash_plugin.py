"""A local plugin for the resume tests: a regularizer and a denoiser objective that interrupt training at a
chosen step, once (a flag file named by SPECMATCH_TEST_CRASH_FLAG records that it happened)."""

import os
from pathlib import Path

import attrs

from specmatch import ObjectiveSpec, RegularizerSpec, hookimpl, param


@attrs.frozen(kw_only=True)
class CrashParams:
    at_step: int = param(15, doc="raise KeyboardInterrupt when this step starts", ge=0)


class _Crash:
    def __init__(self, params):
        import torch

        self.params = params
        self.zero = torch.zeros(())

    def loss(self, inputs):
        if inputs.step == self.params.at_step and _crash_now():
            raise KeyboardInterrupt("simulated interruption")
        return inputs.z.sum() * 0.0


def build(params, ctx):
    return _Crash(params)


def _crash_now() -> bool:
    flag = os.environ.get("SPECMATCH_TEST_CRASH_FLAG")
    if flag and not Path(flag).exists():
        Path(flag).write_text("crashed")
        return True
    return False


class _CrashingFlowMatching:
    """Flow matching that raises KeyboardInterrupt at its ``at_step``-th call (0-based) of a fresh process."""

    def __init__(self, params):
        from specmatch.diffusion.flow_matching import FlowMatching

        self.inner, self.at_step, self.calls = FlowMatching(), params.at_step, 0

    def loss(self, model_fn, x0, **kwargs):
        if self.calls == self.at_step and _crash_now():
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        return self.inner.loss(model_fn, x0, **kwargs)

    def __getattr__(self, name):  # the rest of the objective contract (schedule, conversions) is the inner one's
        return getattr(self.inner, name)


def build_objective(params, ctx):
    return _CrashingFlowMatching(params)


@hookimpl
def specmatch_regularizers():
    yield RegularizerSpec(name="crash-once", factory=build, params=CrashParams,
                          summary="test only: interrupt training once at a given step")


@hookimpl
def specmatch_objectives():
    yield ObjectiveSpec(name="crash-once-flow-matching", factory=build_objective, params=CrashParams,
                        summary="test only: flow matching that interrupts training once at a given step")
