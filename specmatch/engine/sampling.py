"""Generation: the sampling context a sampler runs in, per-sample noise, and sharded generation of index ranges.

Sample i of a run is a function of (run seed, i) alone (EDM2's approach): its starting noise, every step's
noise and its class label are drawn from generators seeded with (seed, i, k), so a sample does not depend on
the batch size, on the number of processes, or on which other samples are generated with it. Process r of
w takes the indices r, r + w, ... of the requested range; the results are gathered back in index order.

Classifier-free guidance is applied here, once, for every sampler: within the sampler's guidance interval
the network runs on the doubled batch (labels, then the null class) and its output is combined as
uncond + scale (cond - uncond) before the objective converts it. (The conversion to x0, noise and velocity
is affine in the output, so guiding the output guides all three alike.)
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import torch
from torch import Tensor

from .runtime import derive_seed


class Predictions(NamedTuple):
    """What ``SamplingContext.predict`` returns, all shaped like x: the clean-data and noise estimates and the
    probability-flow velocity dx/dt = alpha'(t) x0 + sigma'(t) noise."""

    x0: Tensor
    noise: Tensor
    velocity: Tensor


class PerSampleNoise:
    """``noise(k)``: (B, *shape) standard normal; row j is draw k of sample ``indices[j]``, seeded from (seed, i, k).

    Draws are made on the CPU in float32 (the same numbers on every device and dtype) and moved.
    """

    def __init__(self, seed: int, indices: Sequence[int], shape: tuple[int, ...], *, device, dtype):
        self.seed, self.indices, self.shape = seed, list(indices), tuple(shape)
        self.device, self.dtype = device, dtype

    def __call__(self, k: int) -> Tensor:
        rows = [torch.randn(self.shape, generator=torch.Generator().manual_seed(
            derive_seed(self.seed, "sample-noise", i, k))) for i in self.indices]
        return torch.stack(rows).to(self.device, self.dtype)


def sample_labels(seed: int, indices: Sequence[int], num_classes: int) -> Tensor:
    """The class label of each sample index, uniform over 0..num_classes-1, drawn from (seed, i)."""
    return torch.tensor([int(torch.randint(num_classes, (), generator=torch.Generator().manual_seed(
        derive_seed(seed, "sample-label", i)))) for i in indices], dtype=torch.long)


class SamplingContext:
    """Everything a sampler may use for one batch (the sampler contract, ``docs/plugins.md``)."""

    def __init__(self, *, denoiser: Callable[..., Tensor], objective, noise: Callable[[int], Tensor],
                 shape: tuple[int, ...], device, dtype: torch.dtype = torch.float32, labels: Tensor | None = None,
                 null_class: int | None = None, guidance=None):
        self.denoiser, self.objective, self.noise = denoiser, objective, noise
        self.shape, self.device, self.dtype = tuple(shape), torch.device(device), dtype
        self.labels = None if labels is None else labels.to(self.device)
        self.null_class = null_class
        self.t_min, self.t_max = float(objective.t_min), float(objective.t_max)
        self.scale, self.low, self.high = ((float(guidance.scale), float(guidance.low), float(guidance.high))
                                           if guidance is not None else (1.0, 0.0, 1.0))
        if self.scale != 1.0 and (self.labels is None or null_class is None):
            raise ValueError("classifier-free guidance (cfg_scale != 1) needs class labels and a conditional "
                             "denoiser with a null class")
        self._schedule: dict[float, tuple[float, float, float, float]] = {}
        self.calls = 0  # network evaluations (a guided one counts once, on the doubled batch)

    def shift_time(self, t: float) -> float:
        shift = getattr(self.objective, "shift_time", None)
        return t if shift is None else float(shift(t))

    def _schedule_at(self, t: float) -> tuple[float, float, float, float]:
        """(alpha, sigma, d alpha/dt, d sigma/dt) at t, float64, cached."""
        if t not in self._schedule:
            time = torch.tensor(t, dtype=torch.float64, requires_grad=True)
            with torch.enable_grad():
                alpha, sigma = self.objective.alpha_sigma(time)
                alpha, sigma = torch.as_tensor(alpha, dtype=torch.float64), torch.as_tensor(sigma, dtype=torch.float64)
                d_alpha = torch.autograd.grad(alpha, time, retain_graph=True, allow_unused=True)[0]
                d_sigma = torch.autograd.grad(sigma, time, allow_unused=True)[0]
            self._schedule[t] = (float(alpha), float(sigma), float(d_alpha) if d_alpha is not None else 0.0,
                                 float(d_sigma) if d_sigma is not None else 0.0)
        return self._schedule[t]

    def alpha_sigma(self, t: float) -> tuple[float, float]:
        t = float(t)
        if t in self._schedule:
            return self._schedule[t][:2]
        alpha, sigma = self.objective.alpha_sigma(torch.tensor(t, dtype=torch.float64))  # no derivative needed
        return float(alpha), float(sigma)

    def guided_at(self, t: float) -> bool:
        return self.scale != 1.0 and self.low <= t <= self.high

    def output(self, x: Tensor, t: float) -> Tensor:
        """The network's (guided) output at one time for the whole batch."""
        batch = x.shape[0]
        t_batch = torch.full((batch,), t, device=x.device, dtype=self.dtype)
        self.calls += 1
        if self.labels is None:
            return self.denoiser(x, t_batch)
        if not self.guided_at(t):
            return self.denoiser(x, t_batch, y=self.labels)
        null = torch.full_like(self.labels, self.null_class)
        cond, uncond = self.denoiser(torch.cat([x, x]), torch.cat([t_batch, t_batch]),
                                     y=torch.cat([self.labels, null])).chunk(2)
        return uncond + self.scale * (cond - uncond)

    def predict(self, x: Tensor, t: float) -> Predictions:
        t = float(t)
        output = self.output(x, t)
        x0, noise = self.objective.to_x0_noise(output, x, torch.tensor(t, dtype=torch.float64))
        _, _, d_alpha, d_sigma = self._schedule_at(t)
        return Predictions(x0=x0, noise=noise, velocity=d_alpha * x0 + d_sigma * noise)


def gather_in_order(accelerator, local: Tensor, n_total: int) -> Tensor:
    from .evaluation import gather_rows

    return gather_rows(accelerator, local, n_total)


@torch.no_grad()
def generate(accelerator, sampler: Callable, denoiser, objective, normalizer=None, *, indices: range,
             latent_shape: tuple[int, int, int], seed: int, batch_size: int, num_classes: int = 0,
             decode: bool = True, dtype: torch.dtype = torch.float32) -> Tensor:
    """Samples ``indices`` (e.g. ``range(start, stop)``), in index order, on every process.

    Each process makes its share (see the module docstring) in batches of ``batch_size``. With ``decode``
    (and a ``normalizer``), returns images in [-1, 1] decoded by ``normalizer.decode``; otherwise normalised
    latents. ``num_classes > 0`` draws a label per sample index and conditions the denoiser on it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    indices = range(indices.start, indices.stop, indices.step) if isinstance(indices, range) else indices
    mine = list(indices)[accelerator.process_index::accelerator.num_processes]
    device = accelerator.device
    guidance = getattr(sampler, "guidance", None)
    out = []
    for start in range(0, len(mine), batch_size):
        chunk = mine[start:start + batch_size]
        shape = (len(chunk), *latent_shape)
        labels = sample_labels(seed, chunk, num_classes) if num_classes else None
        ctx = SamplingContext(denoiser=denoiser, objective=objective, shape=shape, device=device, dtype=dtype,
                              noise=PerSampleNoise(seed, chunk, tuple(latent_shape), device=device, dtype=dtype),
                              labels=labels, null_class=num_classes if num_classes else None, guidance=guidance)
        z = sampler(ctx)
        if decode and normalizer is not None:
            z = normalizer.decode(z).clamp(-1, 1)
        out.append(z.float())
    if out:
        local = torch.cat(out)
    else:
        local = torch.zeros(0, *(latent_shape if not decode or normalizer is None else (3, 1, 1)), device=device)
    return gather_in_order(accelerator, local, len(indices))
