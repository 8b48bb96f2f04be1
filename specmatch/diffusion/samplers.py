"""Samplers: from noise (t = t_max) to clean latents (t = 0), for any objective, through a sampling context.

A sampler is a callable ``sampler(ctx) -> Tensor``. The context (built by the engine, one per batch; see
``specmatch/engine/sampling.py`` and ``docs/diffusion.md``) gives the starting and step noise
``ctx.noise(k)``, the objective's schedule ``ctx.alpha_sigma(t)`` and the converted, guided predictions
``ctx.predict(x, t) -> (x0, noise, velocity)``. Classifier-free guidance lives in the context; a built-in
sampler only carries its settings in ``guidance`` (the engine reads them from there).

Time grid (``time_grid``): from t_max down to lo = max(t_end, t_min) in uniform steps of u (mapped through
the objective's ``shift_time`` when it has one), then, when lo > 0, one last step lo -> 0. A step that ends at
t = 0 returns the clean-data estimate x0_hat of its last evaluation (for the linear flow-matching path this
is exactly an Euler step), except in Euler-Maruyama, which follows REPA: the last step is the drift step
without noise.

Network evaluations per batch (NFE; doubled batch where guidance applies): Euler, DDIM, DPM-Solver++ 2M and
Euler-Maruyama: ``steps``; Heun: ``2 * steps - 1`` (no corrector on the step that ends at t = 0, as REPA).
"""

from __future__ import annotations

import math

import attrs
import torch
from torch import Tensor


@attrs.frozen
class Guidance:
    """Classifier-free guidance: out = uncond + scale (cond - uncond) for low <= t <= high (1 = off).

    REPA's "CFG 1.8 for t < 0.7" is ``Guidance(1.8, 0.0, 0.7)``.
    """

    scale: float = 1.0
    low: float = 0.0
    high: float = 1.0

    def __attrs_post_init__(self):
        if not self.scale >= 0:
            raise ValueError(f"cfg_scale must be >= 0, got {self.scale}")
        if not 0.0 <= self.low <= self.high <= 1.0:
            raise ValueError(f"the guidance interval needs 0 <= guidance_low <= guidance_high <= 1, got "
                             f"[{self.low}, {self.high}]")

    def active(self, t: float) -> bool:
        return self.scale != 1.0 and self.low <= t <= self.high


def time_grid(steps: int, t_end: float, *, t_min: float = 0.0, t_max: float = 1.0, shift_time=None) -> list[float]:
    """The ``steps + 1`` decreasing times described in the module docstring (the last one is 0)."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not 0.0 <= t_end < t_max:
        raise ValueError(f"t_end must be in [0, {t_max}), got {t_end}")
    low = max(t_end, t_min)
    if low == 0.0:
        u = torch.linspace(t_max, 0.0, steps + 1, dtype=torch.float64).tolist()
    else:
        u = torch.linspace(t_max, low, steps, dtype=torch.float64).tolist() + [0.0]
    if shift_time is not None:
        u = [float(shift_time(v)) for v in u]
    return u


def _grid(ctx, steps: int, t_end: float) -> list[float]:
    return time_grid(steps, t_end, t_min=ctx.t_min, t_max=ctx.t_max, shift_time=getattr(ctx, "shift_time", None))


class _Sampler:
    """Steps and guidance settings shared by the built-in samplers."""

    method = ""

    def __init__(self, *, steps: int = 50, t_end: float = 0.0, cfg_scale: float = 1.0, guidance_low: float = 0.0,
                 guidance_high: float = 1.0):
        time_grid(steps, t_end)  # checks both
        self.steps = steps
        self.t_end = float(t_end)
        self.guidance = Guidance(float(cfg_scale), float(guidance_low), float(guidance_high))

    def __repr__(self) -> str:
        g = self.guidance
        guided = "" if g.scale == 1.0 else f", cfg_scale={g.scale:g} for t in [{g.low:g}, {g.high:g}]"
        return f"{type(self).__name__}(steps={self.steps}, t_end={self.t_end:g}{guided})"


class EulerSampler(_Sampler):
    """First-order Euler integration of the probability-flow ODE dx/dt = velocity(x, t)."""

    @torch.no_grad()
    def __call__(self, ctx) -> Tensor:
        grid = _grid(ctx, self.steps, self.t_end)
        x = ctx.noise(0)
        for t_cur, t_next in zip(grid[:-1], grid[1:]):
            p = ctx.predict(x, t_cur)
            x = p.x0 if t_next == 0.0 else x + (t_next - t_cur) * p.velocity
        return x


class HeunSampler(_Sampler):
    """Second-order Heun integration (Euler predictor, trapezoidal corrector) of the probability-flow ODE.

    The step that ends at t = 0 is a plain denoising step without corrector (as REPA's Heun sampler), so
    the network is never evaluated on clean data.
    """

    @torch.no_grad()
    def __call__(self, ctx) -> Tensor:
        grid = _grid(ctx, self.steps, self.t_end)
        x = ctx.noise(0)
        for t_cur, t_next in zip(grid[:-1], grid[1:]):
            p = ctx.predict(x, t_cur)
            if t_next == 0.0:
                x = p.x0
                continue
            dt = t_next - t_cur
            x_predicted = x + dt * p.velocity
            x = x + dt * 0.5 * (p.velocity + ctx.predict(x_predicted, t_next).velocity)
        return x


class EulerMaruyamaSampler(_Sampler):
    """Euler-Maruyama integration of the reverse-time SDE with the probability flow's marginals (REPA's sampler).

    dx = [v - w(t)/2 * score] dt + sqrt(w(t)) dW with w(t) = 2t (REPA's choice; any w >= 0 keeps the
    marginals) and the score from the noise estimate, score = -noise_hat / sigma(t). On the linear path
    this is REPA's drift v + noise_hat. Fresh noise ``ctx.noise(k)`` on step k = 1, 2, ...; the last step (to
    t = 0) is the drift step without noise. Defaults are REPA's: 250 steps, t_end = 0.04.
    """

    def __init__(self, *, steps: int = 250, t_end: float = 0.04, **guidance):
        super().__init__(steps=steps, t_end=t_end, **guidance)

    @torch.no_grad()
    def __call__(self, ctx) -> Tensor:
        grid = _grid(ctx, self.steps, self.t_end)
        x = ctx.noise(0)
        for k, (t_cur, t_next) in enumerate(zip(grid[:-1], grid[1:]), start=1):
            dt = t_next - t_cur  # negative
            p = ctx.predict(x, t_cur)
            _, sigma = ctx.alpha_sigma(t_cur)
            w = 2.0 * t_cur
            x = x + (p.velocity + 0.5 * w / sigma * p.noise) * dt
            if t_next != 0.0:
                x = x + math.sqrt(w * -dt) * ctx.noise(k)
        return x


class DDIMSampler(_Sampler):
    """DDIM (Song et al. 2021) on any path: x' = alpha' x0_hat + sqrt(sigma'^2 - c^2) noise_hat + c z.

    c = eta sigma' sqrt(1 - (alpha sigma' / (alpha' sigma))^2), the DDPM posterior's standard deviation scaled
    by eta (for a variance-preserving path it is DDIM's sigma_t(eta)). eta = 0 is deterministic (the first-order
    exponential integrator of the probability flow); eta = 1 is ancestral DDPM sampling. z = ``ctx.noise(k)``.
    """

    def __init__(self, *, steps: int = 50, t_end: float = 0.0, eta: float = 0.0, **guidance):
        super().__init__(steps=steps, t_end=t_end, **guidance)
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {eta}")
        self.eta = float(eta)

    @torch.no_grad()
    def __call__(self, ctx) -> Tensor:
        grid = _grid(ctx, self.steps, self.t_end)
        x = ctx.noise(0)
        for k, (t_cur, t_next) in enumerate(zip(grid[:-1], grid[1:]), start=1):
            p = ctx.predict(x, t_cur)
            alpha, sigma = ctx.alpha_sigma(t_cur)
            alpha_next, sigma_next = ctx.alpha_sigma(t_next)
            c = 0.0
            if self.eta > 0.0 and sigma_next > 0.0:
                decay = alpha * sigma_next / (alpha_next * sigma)  # exp(-(lambda' - lambda)), in [0, 1)
                c = self.eta * sigma_next * math.sqrt(max(0.0, 1.0 - decay * decay))
            x = alpha_next * p.x0 + math.sqrt(max(0.0, sigma_next ** 2 - c * c)) * p.noise
            if c > 0.0:
                x = x + c * ctx.noise(k)
        return x


def log_snr(alpha: float, sigma: float) -> float:
    """lambda = log(alpha / sigma), +-inf at the ends of the path."""
    if alpha <= 0.0:
        return -math.inf
    if sigma <= 0.0:
        return math.inf
    return math.log(alpha) - math.log(sigma)


class DPMSolverPP2M(_Sampler):
    """DPM-Solver++ 2M (Lu et al. 2022, Algorithm 2): data-prediction multistep solver in lambda = log(alpha/sigma).

    x' = (sigma'/sigma) x - alpha' (e^-h - 1) D, h = lambda' - lambda, with D = x0_hat on the first step and on
    the step to t = 0 (first order), and D = (1 + 1/(2r)) x0_hat - 1/(2r) x0_hat_prev, r = h_prev / h, between.
    ``spacing``: steps uniform in time ("time", U-ViT's discrete-schedule setting) or in lambda ("logsnr").
    """

    def __init__(self, *, steps: int = 50, t_end: float = 0.0, spacing: str = "time", **guidance):
        super().__init__(steps=steps, t_end=t_end, **guidance)
        if spacing not in ("time", "logsnr"):
            raise ValueError(f"spacing must be 'time' or 'logsnr', got {spacing!r}")
        self.spacing = spacing

    def _grid(self, ctx) -> list[float]:
        grid = _grid(ctx, self.steps, self.t_end)
        if self.spacing == "time" or len(grid) < 3:
            return grid
        return logsnr_grid(ctx, grid[0], grid[-2], len(grid) - 2) + [0.0]

    @torch.no_grad()
    def __call__(self, ctx) -> Tensor:
        grid = self._grid(ctx)
        x = ctx.noise(0)
        previous = None  # (x0_hat, h) of the previous step
        for t_cur, t_next in zip(grid[:-1], grid[1:]):
            p = ctx.predict(x, t_cur)
            alpha, sigma = ctx.alpha_sigma(t_cur)
            alpha_next, sigma_next = ctx.alpha_sigma(t_next)
            h = log_snr(alpha_next, sigma_next) - log_snr(alpha, sigma)
            data = p.x0
            if previous is not None and sigma_next > 0.0 and previous[1] > 0.0:
                half_inverse_r = 0.5 * h / previous[1]  # 0 when the previous step started at lambda = -inf
                data = (1 + half_inverse_r) * p.x0 - half_inverse_r * previous[0]
            ratio = sigma_next / sigma
            # alpha' (1 - e^-h) = alpha' - ratio * alpha: finite at both ends of the path
            x = ratio * x + (alpha_next - ratio * alpha) * data
            previous = (p.x0, h)
        return x


def logsnr_grid(ctx, t_start: float, t_stop: float, steps: int) -> list[float]:
    """``steps + 1`` times from t_start to t_stop, uniform in lambda (bisection on the schedule).

    Where the path starts at pure noise (lambda(t_start) < -9, i.e. alpha < 1e-4 sigma) an infinite lambda range
    cannot be divided: the first step is then the time-uniform one and the rest are uniform in lambda.
    """
    times = [t_start]
    if log_snr(*ctx.alpha_sigma(t_start)) < -9.0 and steps > 1:
        t_start = t_start - (t_start - t_stop) / steps
        times.append(t_start)
        steps -= 1
    lam_start, lam_stop = log_snr(*ctx.alpha_sigma(t_start)), log_snr(*ctx.alpha_sigma(t_stop))
    for i in range(1, steps):
        target = lam_start + (lam_stop - lam_start) * i / steps
        lo, hi = t_stop, t_start  # lambda decreases with t
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if log_snr(*ctx.alpha_sigma(mid)) > target:
                lo = mid
            else:
                hi = mid
        times.append(0.5 * (lo + hi))
    return times + [t_stop]
