"""Which sampler works with which objective, decided from facts alone (no torch) so ``validate`` can refuse a pair.

An objective's spec may return :class:`ObjectiveFacts` from its ``facts`` function, a sampler's spec
:class:`SamplerFacts`. Both are :class:`specmatch.Facts` with extra fields, so the generic checks keep
working; :func:`pair_problems` compares the two. A third-party objective or sampler takes part by returning
these classes; one that returns plain ``Facts`` is not checked.
"""

from __future__ import annotations

import attrs

from specmatch import Facts


@attrs.frozen(kw_only=True)
class ObjectiveFacts(Facts):
    """``continuous_time``: the network is trained at every t in [t_min, t_max] and alpha, sigma are smooth in
    t, so the path's velocity dx/dt is meaningful. ``continuous_fix`` is the params setting that makes it so
    (reported in the refusal, e.g. ``'params.time = "continuous"'``), ``""`` if none."""

    continuous_time: bool = True
    continuous_fix: str = ""


@attrs.frozen(kw_only=True)
class SamplerFacts(Facts):
    """``integrates_time``: the sampler integrates dx/dt in t (Euler, Heun, Euler-Maruyama) and therefore needs
    a continuous-time objective; ``""`` when it only needs alpha and sigma at its steps (DDIM, DPM-Solver),
    else the name of the method, used in the message."""

    integrates_time: str = ""


def pair_problems(sampler: Facts, objective: Facts) -> list[tuple[str, str, str]]:
    """(which table: "sampler" or "objective", param key, message) for each reason the pair cannot work."""
    if not isinstance(sampler, SamplerFacts) or not isinstance(objective, ObjectiveFacts):
        return []
    problems = []
    if sampler.integrates_time and not objective.continuous_time:
        fix = f", or set [objective] {objective.continuous_fix}" if objective.continuous_fix else ""
        problems.append(("sampler", "", f"this sampler integrates dx/dt with {sampler.integrates_time}, which "
                                        f"needs a continuous-time objective; the objective is trained at discrete "
                                        f"steps only (its velocity between them is not defined). Use a sampler "
                                        f"that steps on alpha and sigma alone (ddim, dpmpp-2m){fix}"))
    return problems
