"""The linear-interpolant flow-matching objective (SiT / REPA convention).

A data latent x0 and Gaussian noise eps are joined by a straight line

    x_t = (1 - t) * x0 + t * eps,        t in [0, 1]  (t = 0 data, t = 1 noise),

whose velocity dx_t/dt = eps - x0 is the regression target of the denoiser ("v-prediction"). The loss is
the squared error averaged over each sample's elements, then over the batch.

Times are drawn uniformly (SiT / REPA) or from a logit-normal distribution, sigmoid(N(mean, std)), which
spends more samples on intermediate t (Stable Diffusion 3).

Randomness comes from an optional ``torch.Generator``. It may live on another device than the data (e.g.
a CPU generator for a CUDA model): draws are then made on the generator's device and moved, so a seed
gives the same numbers on every device.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor

TIME_SAMPLINGS = ("uniform", "logit-normal")


def random_normal(shape: tuple[int, ...] | torch.Size, *, device: torch.device | str, dtype: torch.dtype,
                  generator: torch.Generator | None = None) -> Tensor:
    """Standard-normal tensor on ``device``, drawn with ``generator`` on the generator's own device."""
    from specmatch.nn import batch_noise  # the same rows however the batch is split over processes

    return batch_noise.randn(shape, generator=generator, device=device, dtype=dtype)


def random_uniform(shape: tuple[int, ...] | torch.Size, *, device: torch.device | str, dtype: torch.dtype,
                   generator: torch.Generator | None = None) -> Tensor:
    """U[0, 1) tensor on ``device``, drawn with ``generator`` on the generator's own device."""
    from specmatch.nn import batch_noise

    return batch_noise.rand(shape, generator=generator, device=device, dtype=dtype)


def _broadcast_time(t: Tensor, like: Tensor) -> Tensor:
    """(B,) times -> (B, 1, ..., 1) in ``like``'s dtype, ready to multiply a (B, ...) tensor."""
    return t.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


class FlowMatchingBatch(NamedTuple):
    """One training draw: the model input ``x_t`` at times ``t`` (B,), the ``noise`` used and the ``target``."""

    x_t: Tensor
    t: Tensor
    noise: Tensor
    target: Tensor


class FlowMatching:
    """Linear-interpolant flow matching with velocity targets.

    Args (keyword-only):
        time_sampling: "uniform" (t ~ U(0, 1)) or "logit-normal" (t = sigmoid(z), z ~ N(mean, std)).
        logit_mean, logit_std: parameters of the logit-normal distribution (ignored for "uniform").

    Typical use::

        fm = FlowMatching()
        loss, logs = fm.loss(model, x0, generator=gen, y=labels)

    When the model's output is needed for more than this loss (e.g. hidden states for representation
    alignment), call ``draw`` and ``prediction_loss`` directly.
    """

    def __init__(self, *, time_sampling: str = "uniform", logit_mean: float = 0.0, logit_std: float = 1.0):
        if time_sampling not in TIME_SAMPLINGS:
            raise ValueError(f"time_sampling must be one of {', '.join(TIME_SAMPLINGS)}, got {time_sampling!r}")
        if not logit_std > 0:
            raise ValueError(f"logit_std must be positive, got {logit_std}")
        self.time_sampling = time_sampling
        self.logit_mean = float(logit_mean)
        self.logit_std = float(logit_std)

    def __repr__(self) -> str:
        if self.time_sampling == "uniform":
            return "FlowMatching(time_sampling='uniform')"
        return f"FlowMatching(time_sampling='logit-normal', logit_mean={self.logit_mean}, logit_std={self.logit_std})"

    # -- the path ---------------------------------------------------------------------------------------

    def sample_time(self, batch: int, device: torch.device | str,
                    generator: torch.Generator | None = None) -> Tensor:
        """Training times (batch,), float32 on ``device``, in [0, 1)."""
        if self.time_sampling == "uniform":
            return random_uniform((batch,), device=device, dtype=torch.float32, generator=generator)
        z = random_normal((batch,), device=device, dtype=torch.float32, generator=generator)
        return torch.sigmoid(self.logit_mean + self.logit_std * z)

    @staticmethod
    def interpolate(x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """x_t = (1 - t) x0 + t noise, with t (B,) broadcast over the other dimensions of x0 (B, ...)."""
        t = _broadcast_time(t, x0)
        return (1 - t) * x0 + t * noise

    @staticmethod
    def target(x0: Tensor, noise: Tensor) -> Tensor:
        """The velocity of the path, d x_t / dt = noise - x0 (independent of t)."""
        return noise - x0

    # -- the loss ---------------------------------------------------------------------------------------

    def draw(self, x0: Tensor, *, noise: Tensor | None = None, t: Tensor | None = None,
             generator: torch.Generator | None = None) -> FlowMatchingBatch:
        """Draw noise and times for a batch of data latents x0 (B, ...) and build x_t and the target.

        ``noise`` (same shape as x0) and ``t`` (B,) may be given to fix them; whatever is missing is drawn
        with ``generator``, the noise first, then the times.
        """
        batch = x0.shape[0]
        if noise is None:
            noise = random_normal(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        elif noise.shape != x0.shape:
            raise ValueError(f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
        if t is None:
            t = self.sample_time(batch, x0.device, generator)
        elif t.shape != (batch,):
            raise ValueError(f"t must have shape ({batch},), got {tuple(t.shape)}")
        return FlowMatchingBatch(x_t=self.interpolate(x0, noise, t), t=t, noise=noise,
                                 target=self.target(x0, noise))

    @staticmethod
    def prediction_loss(prediction: Tensor, target: Tensor) -> Tensor:
        """Per-sample mean squared error (B,), computed in float32 (safe under bf16/fp16 autocast)."""
        if prediction.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(prediction.shape)} differs from target shape "
                             f"{tuple(target.shape)}")
        return (prediction.float() - target.float()).pow(2).flatten(1).mean(dim=1)

    def loss(self, model_fn: Callable[..., Tensor], x0: Tensor, *, noise: Tensor | None = None,
             t: Tensor | None = None, generator: torch.Generator | None = None,
             **model_kwargs: Any) -> tuple[Tensor, dict[str, Tensor]]:
        """Flow-matching loss of ``model_fn(x_t, t, **model_kwargs) -> velocity`` on data latents x0.

        Args:
            model_fn: the denoiser; must return a tensor shaped like x0.
            x0: data latents (B, ...).
            noise, t: optional fixed noise (shape of x0) and times (B,); drawn with ``generator`` if None.
            generator: source of the noise and times.
            **model_kwargs: passed to ``model_fn`` (e.g. ``y=labels``).

        Returns:
            ``(loss, logs)``: the batch-mean loss (scalar, float32, differentiable) and detached values to
            log: ``flow_matching`` (the loss) and ``t_mean``.
        """
        batch = self.draw(x0, noise=noise, t=t, generator=generator)
        prediction = model_fn(batch.x_t, batch.t, **model_kwargs)
        if not isinstance(prediction, Tensor):
            raise TypeError("model_fn must return the velocity tensor; for models that also return hidden "
                            "states, call FlowMatching.draw and FlowMatching.prediction_loss directly")
        loss = self.prediction_loss(prediction, batch.target).mean()
        logs = {"flow_matching": loss.detach(), "t_mean": batch.t.detach().float().mean()}
        return loss, logs
