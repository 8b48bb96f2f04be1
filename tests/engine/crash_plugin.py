"""A local plugin for the resume test: a regularizer that interrupts training at a chosen step, once."""

import os
from pathlib import Path

import attrs

from specmatch import RegularizerSpec, hookimpl, param


@attrs.frozen(kw_only=True)
class CrashParams:
    at_step: int = param(15, doc="raise KeyboardInterrupt when this step starts", ge=0)


class _Crash:
    def __init__(self, params):
        import torch

        self.params = params
        self.zero = torch.zeros(())

    def loss(self, inputs):
        flag = os.environ.get("SPECMATCH_TEST_CRASH_FLAG")
        if inputs.step == self.params.at_step and flag and not Path(flag).exists():
            Path(flag).write_text("crashed")
            raise KeyboardInterrupt("simulated interruption")
        return inputs.z.sum() * 0.0


def build(params, ctx):
    return _Crash(params)


@hookimpl
def specmatch_regularizers():
    yield RegularizerSpec(name="crash-once", factory=build, params=CrashParams,
                          summary="test only: interrupt training once at a given step")
