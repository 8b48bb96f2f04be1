"""Latent posteriors returned by an autoencoder's ``encode``.

``DiagonalGaussian`` is the KL-regularised (SD-VAE) posterior: the encoder predicts a mean and a log-variance
per latent element. ``DeterministicPosterior`` wraps a plain autoencoder's latent in the same interface, so the
training loop never needs to know which one it holds.

Shapes: ``moments`` is (B, 2C, h, w); ``mean``, ``logvar``, ``std``, ``var`` and samples are (B, C, h, w);
``kl()`` is (B,).
"""

from __future__ import annotations

import torch
from torch import Tensor

# The authors' (and SD's) clamp: keeps exp(logvar) finite in fp16/bf16 and the KL bounded early in training.
LOGVAR_MIN = -30.0
LOGVAR_MAX = 20.0


def standard_normal_like(reference: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard-normal noise with the shape, device and dtype of ``reference``.

    When ``generator`` lives on another device than ``reference`` (e.g. a CPU generator while the model runs
    on CUDA, which ``torch.randn`` refuses), the noise is drawn on the generator's device and then moved.
    This keeps samples reproducible from the generator's seed alone, at the cost of a host-device copy.
    """
    from .batch_noise import randn  # batch-leading: the same rows however the batch is split over processes

    return randn(reference.shape, generator=generator, device=reference.device, dtype=reference.dtype)


class DiagonalGaussian:
    """A diagonal Gaussian N(mean, exp(logvar)) per latent element.

    Args:
        moments: (B, 2C, h, w); the first C channels are the mean, the last C the log-variance.
            The log-variance is clamped to [-30, 20].
    """

    def __init__(self, moments: Tensor):
        if moments.ndim < 2 or moments.shape[1] % 2 != 0:
            raise ValueError(f"moments must have an even channel count (mean and logvar), got shape "
                             f"{tuple(moments.shape)}")
        self.mean, logvar = torch.chunk(moments, 2, dim=1)
        self.logvar = logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """A reparameterised sample ``mean + std * eps`` (differentiable w.r.t. mean and logvar).

        See ``standard_normal_like`` for how a generator on another device is handled.
        """
        return self.mean + self.std * standard_normal_like(self.mean, generator)

    def mode(self) -> Tensor:
        """The most likely latent: the mean."""
        return self.mean

    def kl(self) -> Tensor:
        """KL(N(mean, var) || N(0, I)) summed over (C, h, w), one value per sample: shape (B,).

        Computed in float32 (a sum over C*h*w elements loses too much precision in bf16). Callers take the
        batch mean.
        """
        mean, logvar = self.mean.float(), self.logvar.float()
        return -0.5 * torch.sum(1.0 + logvar - mean.pow(2) - logvar.exp(), dim=tuple(range(1, mean.ndim)))


class DeterministicPosterior:
    """A point mass at ``mean``: the "posterior" of a plain (non-variational) autoencoder.

    It has the interface of ``DiagonalGaussian``: ``sample`` and ``mode`` return the mean, ``std`` and ``var``
    are zeros, and ``kl()`` returns zeros because a plain autoencoder has no KL term. ``logvar`` holds the
    clamp floor (-30) rather than -inf so that logged statistics stay finite.

    Args:
        mean: (B, C, h, w), the latent.
    """

    def __init__(self, mean: Tensor):
        self.mean = mean
        self.logvar = torch.full_like(mean, LOGVAR_MIN)
        self.std = torch.zeros_like(mean)
        self.var = torch.zeros_like(mean)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """The mean itself (no noise); ``generator`` is accepted for interface compatibility and unused."""
        return self.mean

    def mode(self) -> Tensor:
        """The mean."""
        return self.mean

    def kl(self) -> Tensor:
        """Zeros of shape (B,), float32 like ``DiagonalGaussian.kl``."""
        return torch.zeros(self.mean.shape[0], device=self.mean.device, dtype=torch.float32)
