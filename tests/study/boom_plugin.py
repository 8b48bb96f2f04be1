"""A local plugin for the study tests: a regularizer that validates but fails when the run builds it."""

import attrs

from specmatch import RegularizerSpec, hookimpl, param


@attrs.frozen(kw_only=True)
class BoomParams:
    message: str = param("boom", doc="the message of the error the factory raises")


def build(params, ctx):
    raise RuntimeError(params.message)


@hookimpl
def specmatch_regularizers():
    yield RegularizerSpec(name="boom", factory=build, params=BoomParams,
                          summary="test only: its factory raises, so a run fails after validation")
