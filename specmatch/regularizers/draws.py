"""Control draws of the built-in regularizers, from the per-step generator only.

DSM's mask level, EQ-VAE's branch and transform and the scale-equivariance factor are drawn from the
``torch.Generator`` the engine hands to the step, so the micro-batches of one optimizer step share each draw
and a resumed run replays them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

if TYPE_CHECKING:
    import torch


def draw_index(generator: Optional[torch.Generator], n: int,
               probabilities: Optional[Sequence[float]] = None) -> int:
    """One index in [0, n): uniform, or weighted by ``probabilities`` (need not sum to 1)."""
    import torch

    if probabilities is None:
        return int(torch.randint(n, (1,), generator=generator).item())
    weights = torch.tensor(probabilities, dtype=torch.float64)
    return int(torch.multinomial(weights, 1, generator=generator).item())


def draw_uniform(generator: Optional[torch.Generator]) -> float:
    """One float in [0, 1)."""
    import torch

    return float(torch.rand((1,), generator=generator).item())
