"""Loss-weight schedules and learning-rate warm-up."""

from __future__ import annotations


def term_weight(weight: float, step: int, *, start_step: int = 0, warmup_steps: int = 0,
                end_step: int | None = None) -> float:
    """0 before ``start_step`` and from ``end_step`` on; a linear ramp over ``warmup_steps``; then ``weight``."""
    if step < start_step or (end_step is not None and step >= end_step):
        return 0.0
    if warmup_steps > 0:
        return weight * min(1.0, (step - start_step + 1) / warmup_steps)
    return weight


def warmup_lambda(warmup_steps: int):
    """LambdaLR factor: linear warm-up to 1, then constant.

    The authors use ``constant_with_warmup`` of ``transformers``: optimizer step ``s`` (from 0) runs at
    ``s / W`` of the learning rate, so the first step has learning rate 0 and the full rate is reached at
    step ``W``.
    """
    def factor(step: int) -> float:
        return min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0

    return factor
