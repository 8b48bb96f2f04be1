"""What every diffusion objective shares: a Gaussian path x_t = alpha(t) x0 + sigma(t) noise and a regression loss.

Time runs from t = 0 (data) to t = 1 (noise). A concrete objective says how times are drawn for training
(``sample_time``), what the path is (``alpha_sigma``), what the network predicts (``prediction``, ``target``)
and how a network output converts back to the clean-data and noise estimates (``to_x0_noise``), which is all
a sampler needs to work with it (``docs/diffusion.md``).

Randomness comes from an optional ``torch.Generator``. It may live on another device than the data (e.g. a
CPU generator for a CUDA model): draws are then made on the generator's device and moved, so a seed gives
the same numbers on every device. Noise is drawn first, then times.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor

PREDICTIONS = ("velocity", "noise", "x0", "v")


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


def broadcast_time(t: Tensor | float, like: Tensor) -> Tensor:
    """Times (B,) or a scalar -> (B, 1, ..., 1) in ``like``'s dtype and device, ready to multiply a (B, ...) tensor."""
    t = torch.as_tensor(t, device=like.device)
    if t.ndim == 0:
        return t.to(like.dtype)
    return t.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


class PathBatch(NamedTuple):
    """One training draw: the model input ``x_t`` at times ``t`` (B,), the ``noise`` used and the ``target``."""

    x_t: Tensor
    t: Tensor
    noise: Tensor
    target: Tensor


class GaussianPathObjective:
    """Base of the built-in objectives; subclasses set ``prediction``, ``log_name`` and the methods below."""

    prediction: str = ""
    log_name: str = "diffusion"
    t_min: float = 0.0
    t_max: float = 1.0

    # -- to be defined by each objective ---------------------------------------------------------------

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def sample_time(self, batch: int, device: torch.device | str,
                    generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError

    def target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        raise NotImplementedError

    def to_x0_noise(self, output: Tensor, x_t: Tensor, t: Tensor | float) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------------------

    def path(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """x_t = alpha(t) x0 + sigma(t) noise, with t (B,) broadcast over the other dimensions."""
        alpha, sigma = self.alpha_sigma(torch.as_tensor(t, device=x0.device, dtype=torch.float64))
        return broadcast_time(alpha, x0) * x0 + broadcast_time(sigma, x0) * noise

    def draw(self, x0: Tensor, *, noise: Tensor | None = None, t: Tensor | None = None,
             generator: torch.Generator | None = None) -> PathBatch:
        """Draw noise and times for data latents x0 (B, ...) and build x_t and the target.

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
        return PathBatch(x_t=self.path(x0, noise, t), t=t, noise=noise, target=self.target(x0, noise, t))

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
        """The objective's loss of ``model_fn(x_t, t, **model_kwargs)`` on data latents x0.

        Args:
            model_fn: the denoiser; must return a tensor shaped like x0.
            x0: data latents (B, ...).
            noise, t: optional fixed noise (shape of x0) and times (B,); drawn with ``generator`` if None.
            generator: source of the noise and times.
            **model_kwargs: passed to ``model_fn`` (e.g. ``y=labels``).

        Returns:
            ``(loss, logs)``: the batch-mean loss (scalar, float32, differentiable) and detached values to
            log: ``<log_name>`` (the loss) and ``t_mean``.
        """
        batch = self.draw(x0, noise=noise, t=t, generator=generator)
        prediction = model_fn(batch.x_t, batch.t, **model_kwargs)
        if not isinstance(prediction, Tensor):
            raise TypeError("model_fn must return the prediction tensor; for models that also return hidden "
                            "states, call draw and prediction_loss directly")
        loss = self.prediction_loss(prediction, batch.target).mean()
        logs = {self.log_name: loss.detach(), "t_mean": batch.t.detach().float().mean()}
        return loss, logs
