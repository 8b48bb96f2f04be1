"""The linear-interpolant flow-matching objective (SiT / REPA convention).

A data latent x0 and Gaussian noise eps are joined by a straight line

    x_t = (1 - t) * x0 + t * eps,        t in [0, 1]  (t = 0 data, t = 1 noise),

whose velocity dx_t/dt = eps - x0 is the regression target of the denoiser. The loss is the squared error
averaged over each sample's elements, then over the batch.

Times are drawn uniformly (SiT / REPA) or from a logit-normal distribution, sigmoid(N(mean, std)), which
spends more samples on intermediate t (Stable Diffusion 3). Either may then be shifted towards noise (SD3's
resolution-dependent shift)

    t' = s t / (1 + (s - 1) t),

which keeps 0 and 1 fixed and moves the middle towards 1 for s > 1: a latent with more elements keeps more
of its signal at a given noise level, so it needs more noise for the same destruction. With a base dimension
d0 the shift is derived from the latent's dimension d = C * h * w as s = sqrt(d / d0) (SD3 section 5.3.2,
where the signal-to-noise ratio of d elements sharing a value falls as 1/d). The samplers place their steps
at shifted times too (``shift_time``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from specmatch.diffusion.gaussian_path import (  # noqa: F401  (re-exported: the helpers' historic home)
    GaussianPathObjective, PathBatch, broadcast_time, random_normal, random_uniform)

TIME_SAMPLINGS = ("uniform", "logit-normal")

FlowMatchingBatch = PathBatch


def shift_for_dimension(dimension: int, base_dimension: int) -> float:
    """SD3's resolution-dependent shift s = sqrt(d / d0) for a latent of d elements and a base of d0."""
    if dimension <= 0 or base_dimension <= 0:
        raise ValueError(f"dimensions must be positive, got {dimension} and {base_dimension}")
    return math.sqrt(dimension / base_dimension)


class FlowMatching(GaussianPathObjective):
    """Linear-interpolant flow matching with velocity targets.

    Args (keyword-only):
        time_sampling: "uniform" (t ~ U(0, 1)) or "logit-normal" (t = sigmoid(z), z ~ N(mean, std)).
        logit_mean, logit_std: parameters of the logit-normal distribution (ignored for "uniform").
        shift: the time shift s > 0 (1 = none) applied to the drawn times and to the samplers' steps.

    Typical use::

        fm = FlowMatching()
        loss, logs = fm.loss(model, x0, generator=gen, y=labels)

    When the model's output is needed for more than this loss (e.g. hidden states for representation
    alignment), call ``draw`` and ``prediction_loss`` directly.
    """

    prediction = "velocity"
    log_name = "flow_matching"
    t_min = 0.0
    t_max = 1.0

    def __init__(self, *, time_sampling: str = "uniform", logit_mean: float = 0.0, logit_std: float = 1.0,
                 shift: float = 1.0):
        if time_sampling not in TIME_SAMPLINGS:
            raise ValueError(f"time_sampling must be one of {', '.join(TIME_SAMPLINGS)}, got {time_sampling!r}")
        if not logit_std > 0:
            raise ValueError(f"logit_std must be positive, got {logit_std}")
        if not shift > 0:
            raise ValueError(f"shift must be positive, got {shift}")
        self.time_sampling = time_sampling
        self.logit_mean = float(logit_mean)
        self.logit_std = float(logit_std)
        self.shift = float(shift)

    def __repr__(self) -> str:
        shift = "" if self.shift == 1.0 else f", shift={self.shift:g}"
        if self.time_sampling == "uniform":
            return f"FlowMatching(time_sampling='uniform'{shift})"
        return (f"FlowMatching(time_sampling='logit-normal', logit_mean={self.logit_mean}, "
                f"logit_std={self.logit_std}{shift})")

    # -- the path ---------------------------------------------------------------------------------------

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return 1 - t, t

    def shift_time(self, t):
        """t' = s t / (1 + (s - 1) t) (a float or a tensor); the identity for s = 1."""
        if self.shift == 1.0:
            return t
        return self.shift * t / (1 + (self.shift - 1) * t)

    def sample_time(self, batch: int, device: torch.device | str,
                    generator: torch.Generator | None = None) -> Tensor:
        """Training times (batch,), float32 on ``device``, in [0, 1)."""
        if self.time_sampling == "uniform":
            t = random_uniform((batch,), device=device, dtype=torch.float32, generator=generator)
        else:
            z = random_normal((batch,), device=device, dtype=torch.float32, generator=generator)
            t = torch.sigmoid(self.logit_mean + self.logit_std * z)
        return self.shift_time(t)

    @staticmethod
    def interpolate(x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """x_t = (1 - t) x0 + t noise, with t (B,) broadcast over the other dimensions of x0 (B, ...)."""
        t = broadcast_time(t, x0)
        return (1 - t) * x0 + t * noise

    def path(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        return self.interpolate(x0, noise, t)

    @staticmethod
    def target(x0: Tensor, noise: Tensor, t: Tensor | None = None) -> Tensor:
        """The velocity of the path, d x_t / dt = noise - x0 (independent of t)."""
        return noise - x0

    def to_x0_noise(self, output: Tensor, x_t: Tensor, t: Tensor | float) -> tuple[Tensor, Tensor]:
        """From v = noise - x0 and x_t = (1 - t) x0 + t noise: x0 = x_t - t v, noise = x_t + (1 - t) v."""
        t = broadcast_time(t, x_t)
        return x_t - t * output, x_t + (1 - t) * output
