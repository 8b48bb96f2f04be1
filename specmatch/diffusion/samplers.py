"""Samplers: integrate a velocity model from noise (t = 1) to data (t = 0).

All samplers share one signature and one time grid:

* ``t_end == 0``: ``steps`` uniform steps 1 -> 0.
* ``t_end > 0``: ``steps - 1`` uniform steps 1 -> t_end, then one last step t_end -> 0 (REPA's SDE grid,
  which avoids the stiff end of the path). An Euler step from t to 0 lands exactly on the model's
  clean-data estimate x - t * v.

``model_fn(x, t, **kw) -> v`` is called with x (B, ...) and t (B,) in ``dtype``; with ``y`` given it is
called as ``model_fn(x, t, y=labels)``. Put a ``DiT`` in eval mode first, or its label dropout stays on.

Classifier-free guidance (``cfg_scale != 1``, needs ``y`` and ``null_class``): v = v_uncond + s (v_cond -
v_uncond), where v_uncond is the model's prediction for the null class. It is applied at an evaluation at
time t only when ``cfg_interval[0] <= t <= cfg_interval[1]``; elsewhere the plain conditional prediction is
used (one model call instead of two). Time runs as in training, t = 1 noise, t = 0 data, the same
convention as REPA's ``guidance_low`` / ``guidance_high``: REPA's paper setting "CFG 1.8 for t < 0.7" is
``cfg_scale=1.8, cfg_interval=(0.0, 0.7)``.

Randomness (the starting noise and the SDE noise) comes from ``generator``, which may live on another
device than ``device`` (see ``flow_matching.random_normal``). The initial noise is the first draw, so
``random_normal(shape, generator=g)`` with the same seed reproduces it.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from specmatch.diffusion.flow_matching import random_normal

ModelFn = Callable[..., Tensor]


def time_grid(steps: int, t_end: float) -> list[float]:
    """The ``steps + 1`` decreasing times from 1 to 0 described in the module docstring."""
    if t_end == 0.0:
        grid = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    else:
        grid = torch.cat([torch.linspace(1.0, t_end, steps, dtype=torch.float64),
                          torch.zeros(1, dtype=torch.float64)])
    return grid.tolist()


class _Velocity:
    """Evaluates the (possibly guided) velocity at one time for the whole batch."""

    def __init__(self, model_fn: ModelFn, *, batch: int, device: torch.device, dtype: torch.dtype,
                 y: Tensor | None, cfg_scale: float, cfg_interval: tuple[float, float], null_class: int | None):
        self.model_fn = model_fn
        self.batch = batch
        self.device = device
        self.dtype = dtype
        self.y = y
        self.cfg_scale = cfg_scale
        self.cfg_interval = cfg_interval
        self.y_null = None if y is None or null_class is None else torch.full_like(y, null_class)

    def guided_at(self, t: float) -> bool:
        low, high = self.cfg_interval
        return self.y_null is not None and self.cfg_scale != 1.0 and low <= t <= high

    def __call__(self, x: Tensor, t: float) -> Tensor:
        t_batch = torch.full((self.batch,), t, device=self.device, dtype=self.dtype)
        if self.y is None:
            return self.model_fn(x, t_batch)
        if not self.guided_at(t):
            return self.model_fn(x, t_batch, y=self.y)
        # One call on the doubled batch: conditional first half, null-class second half.
        v_cond, v_uncond = self.model_fn(torch.cat([x, x]), torch.cat([t_batch, t_batch]),
                                         y=torch.cat([self.y, self.y_null])).chunk(2)
        return v_uncond + self.cfg_scale * (v_cond - v_uncond)


def _setup(model_fn: ModelFn, shape: tuple[int, ...], *, steps: int, device: torch.device | str,
           dtype: torch.dtype, generator: torch.Generator | None, y: Tensor | None, cfg_scale: float,
           cfg_interval: tuple[float, float], null_class: int | None, t_end: float) -> tuple[Tensor, _Velocity]:
    """Check the shared arguments; return the starting noise x(t=1) and the velocity evaluator."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not 0.0 <= t_end < 1.0:
        raise ValueError(f"t_end must be in [0, 1), got {t_end}")
    low, high = cfg_interval
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"cfg_interval must be (low, high) with 0 <= low <= high <= 1, got {cfg_interval}")
    shape = tuple(shape)
    device = torch.device(device)
    if y is not None:
        if y.shape != (shape[0],):
            raise ValueError(f"y must have shape ({shape[0]},) to match the batch, got {tuple(y.shape)}")
        y = y.to(device)
    if cfg_scale != 1.0:
        if y is None:
            raise ValueError("classifier-free guidance (cfg_scale != 1) needs class labels y")
        if null_class is None:
            raise ValueError("classifier-free guidance (cfg_scale != 1) needs null_class, the label index of "
                             "the unconditional prediction (DiT.null_class)")
    x = random_normal(shape, device=device, dtype=dtype, generator=generator)
    velocity = _Velocity(model_fn, batch=shape[0], device=device, dtype=dtype, y=y, cfg_scale=cfg_scale,
                         cfg_interval=(low, high), null_class=null_class)
    return x, velocity


@torch.no_grad()
def euler_sample(model_fn: ModelFn, shape: tuple[int, ...], *, steps: int = 50, device: torch.device | str,
                 dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None,
                 y: Tensor | None = None, cfg_scale: float = 1.0, cfg_interval: tuple[float, float] = (0.0, 1.0),
                 null_class: int | None = None, t_end: float = 0.0) -> Tensor:
    """First-order Euler integration of dx/dt = v(x, t) from t = 1 to t = 0; returns x(0) of ``shape``.

    ``steps`` model evaluations (twice the batch where guidance applies).
    """
    x, velocity = _setup(model_fn, shape, steps=steps, device=device, dtype=dtype, generator=generator, y=y,
                         cfg_scale=cfg_scale, cfg_interval=cfg_interval, null_class=null_class, t_end=t_end)
    grid = time_grid(steps, t_end)
    for t_cur, t_next in zip(grid[:-1], grid[1:]):
        x = x + (t_next - t_cur) * velocity(x, t_cur)
    return x


@torch.no_grad()
def heun_sample(model_fn: ModelFn, shape: tuple[int, ...], *, steps: int = 50, device: torch.device | str,
                dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None,
                y: Tensor | None = None, cfg_scale: float = 1.0, cfg_interval: tuple[float, float] = (0.0, 1.0),
                null_class: int | None = None, t_end: float = 0.0) -> Tensor:
    """Second-order Heun integration (Euler predictor, trapezoidal corrector) from t = 1 to t = 0.

    2 * ``steps`` model evaluations. The corrector is applied on every step, including the one that ends
    at t = 0 (REPA's sampler skips it on the last step); guidance is decided per evaluation from its time.
    """
    x, velocity = _setup(model_fn, shape, steps=steps, device=device, dtype=dtype, generator=generator, y=y,
                         cfg_scale=cfg_scale, cfg_interval=cfg_interval, null_class=null_class, t_end=t_end)
    grid = time_grid(steps, t_end)
    for t_cur, t_next in zip(grid[:-1], grid[1:]):
        dt = t_next - t_cur
        v_cur = velocity(x, t_cur)
        x_predicted = x + dt * v_cur
        x = x + dt * 0.5 * (v_cur + velocity(x_predicted, t_next))
    return x


def score_from_velocity(v: Tensor, x: Tensor, t: float) -> Tensor:
    """Score grad log p_t(x) of the linear path, from the velocity: -(x + (1 - t) v) / t, for t > 0.

    Why: x = (1 - t) E[x0|x] + t E[eps|x] and v = E[eps|x] - E[x0|x] give E[eps|x] = x + (1 - t) v,
    and the score of a Gaussian-noised variable is -E[eps|x] / t.
    """
    return -(x + (1 - t) * v) / t


@torch.no_grad()
def euler_maruyama_sample(model_fn: ModelFn, shape: tuple[int, ...], *, steps: int = 250,
                          device: torch.device | str, dtype: torch.dtype = torch.float32,
                          generator: torch.Generator | None = None, y: Tensor | None = None,
                          cfg_scale: float = 1.0, cfg_interval: tuple[float, float] = (0.0, 1.0),
                          null_class: int | None = None, t_end: float = 0.04) -> Tensor:
    """Euler-Maruyama integration of the reverse-time SDE with the same marginals as the ODE (REPA's sampler).

    dx = [v - w(t)/2 * score] dt + sqrt(w(t)) dW, w(t) = 2t, with the score derived from v
    (``score_from_velocity``). The last step (to t = 0) adds no noise, so the result is the model's
    clean-data estimate. Defaults are REPA's: 250 steps, t_end = 0.04.
    """
    x, velocity = _setup(model_fn, shape, steps=steps, device=device, dtype=dtype, generator=generator, y=y,
                         cfg_scale=cfg_scale, cfg_interval=cfg_interval, null_class=null_class, t_end=t_end)
    grid = time_grid(steps, t_end)
    last = len(grid) - 2
    for index, (t_cur, t_next) in enumerate(zip(grid[:-1], grid[1:])):
        dt = t_next - t_cur  # negative
        v = velocity(x, t_cur)
        diffusion = 2.0 * t_cur
        drift = v - 0.5 * diffusion * score_from_velocity(v, x, t_cur)
        x = x + drift * dt
        if index != last:
            noise = random_normal(x.shape, device=x.device, dtype=x.dtype, generator=generator)
            x = x + (diffusion * abs(dt)) ** 0.5 * noise
    return x
