"""A local plugin for the non-finite guard tests: terms that turn NaN at chosen steps."""

import attrs

from specmatch import ObjectiveSpec, RegularizerSpec, hookimpl, param


@attrs.frozen(kw_only=True)
class NaNParams:
    steps: tuple[int, ...] = param((), doc="steps (0-based) at which the term is NaN")
    from_step: int = param(-1, doc="the term is NaN at every step from this one on (-1: never)")


def _is_nan_step(params, step: int) -> bool:
    return step in params.steps or 0 <= params.from_step <= step


class _NaNRegularizer:
    def __init__(self, params):
        self.params = params

    def loss(self, inputs):
        value = inputs.z.float().pow(2).mean() * 0.0
        return value + float("nan") if _is_nan_step(self.params, inputs.step) else value


class _NaNFlowMatching:
    """Flow matching whose loss is NaN at the chosen calls (one call per step without accumulation)."""

    def __init__(self, params):
        from specmatch.diffusion.flow_matching import FlowMatching

        self.inner, self.params, self.calls = FlowMatching(), params, 0

    def loss(self, model_fn, x0, **kwargs):
        loss, logs = self.inner.loss(model_fn, x0, **kwargs)
        if _is_nan_step(self.params, self.calls):
            loss = loss + float("nan")
        self.calls += 1
        return loss, logs

    def __getattr__(self, name):  # the rest of the objective contract (schedule, conversions) is the inner one's
        return getattr(self.inner, name)


@hookimpl
def specmatch_regularizers():
    yield RegularizerSpec(name="nan-at", factory=lambda params, ctx: _NaNRegularizer(params), params=NaNParams,
                          summary="test only: a zero term that is NaN at chosen steps")


@hookimpl
def specmatch_objectives():
    yield ObjectiveSpec(name="nan-flow-matching", factory=lambda params, ctx: _NaNFlowMatching(params),
                        params=NaNParams, summary="test only: flow matching that is NaN at chosen steps")
