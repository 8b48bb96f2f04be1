"""The latent-midpoint sampler (torch; imported only when a run builds it).

Written against specmatch's sampler contract (docs/diffusion.md, "Sampler"): the sampler is a callable
``sampler(ctx) -> latents`` and does nothing but arithmetic on what the sampling context gives it:

- ``ctx.noise(0)``: the starting noise (drawn per sample index by the engine, so samples are reproducible);
- ``ctx.predict(x, t).velocity``: dx/dt of the probability-flow ODE, with the network call, the objective's
  conversion and classifier-free guidance (in its interval) already applied;
- ``ctx.t_min``, ``ctx.t_max`` and ``ctx.shift_time(u)``: where the network may be evaluated and where the
  objective wants the steps.

Guidance settings travel in ``self.guidance`` (``scale``, ``low``, ``high``), which the engine passes to the
context; this sampler never calls the network itself.

Explicit midpoint rule per step t -> t' (h = t' - t, m = t + h / 2)::

    x_m = x + (h / 2) v(x, t)
    x'  = x + h v(x_m, m)

a second-order Runge-Kutta method (global error O(h^2)) with two network evaluations per step.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class Guidance(NamedTuple):
    """Classifier-free guidance: uncond + scale (cond - uncond) for low <= t <= high (scale 1 = off)."""

    scale: float = 1.0
    low: float = 0.0
    high: float = 1.0


class MidpointSampler:
    def __init__(self, *, steps: int = 16, cfg_scale: float = 1.0, guidance_low: float = 0.0,
                 guidance_high: float = 1.0):
        if steps < 1:
            raise ValueError(f"steps must be >= 1; got {steps}")
        if not 0.0 <= guidance_low <= guidance_high <= 1.0:
            raise ValueError(f"the guidance interval needs 0 <= guidance_low <= guidance_high <= 1; "
                             f"got [{guidance_low}, {guidance_high}]")
        self.steps = steps
        self.guidance = Guidance(float(cfg_scale), float(guidance_low), float(guidance_high))

    def times(self, ctx) -> list[float]:
        """``steps + 1`` decreasing times from t_max to 0, uniform in u and placed by ``ctx.shift_time``."""
        grid = torch.linspace(ctx.t_max, 0.0, self.steps + 1, dtype=torch.float64).tolist()
        return [float(ctx.shift_time(u)) for u in grid[:-1]] + [0.0]

    @torch.no_grad()
    def __call__(self, ctx) -> torch.Tensor:
        times = self.times(ctx)
        x = ctx.noise(0)
        for t, t_next in zip(times[:-1], times[1:]):
            h = t_next - t
            # keep the midpoint inside the times the network was trained on (t_min > 0 for discrete objectives)
            mid = max(t + h / 2, ctx.t_min)
            x_mid = x + (mid - t) * ctx.predict(x, t).velocity
            x = x + h * ctx.predict(x_mid, mid).velocity
        return x
