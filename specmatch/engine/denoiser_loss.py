"""The denoiser objective plus scheduled denoiser regularizer terms (REPA), with what they read.

One step on a batch of normalised latents ``x0``:

1. labels are dropped to the null class with probability ``class_dropout`` (the engine's job, seeded, so
   every denoiser family gets classifier-free guidance the same way);
2. the objective draws times and noise and calls the denoiser once; when a term reads hidden states the call
   asks for the shared tap (``return_hidden_at``), and the hidden states and times are kept for the terms;
3. every active term's ``loss`` on one :class:`DenoiserRegularizerInputs`;
4. total = objective + sum_i w_i(step) * L_i.

The terms are ``nn.Module``s held with the denoiser in one :class:`TrainableDenoiser`, so one optimizer,
one DDP wrapper and one checkpoint cover both; only the denoiser is kept after training.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch import nn

from specmatch.core.components import DenoiserRegularizerInputs
from specmatch.nn import batch_noise

from .contracts import check_regularizer_loss
from .schedule import term_weight


@attrs.frozen
class TermSlot:
    """A built denoiser regularizer with its recipe knobs."""

    name: str
    config: Any  # LossTermConfig
    needs: frozenset
    provider: Any = None  # the spec's Provider, named in contract errors


class TrainableDenoiser(nn.Module):
    """The denoiser and its terms' modules; ``forward`` returns ``(prediction, hidden at tap or None)``."""

    def __init__(self, denoiser: nn.Module, terms: list[nn.Module], slots: list[TermSlot], tap: int | None):
        super().__init__()
        self.denoiser = denoiser
        self.terms = nn.ModuleList(terms)
        self.slots = slots
        self.tap = tap

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        kwargs = {} if y is None else {"y": y}
        if self.tap is None:
            return self.denoiser(x, t, **kwargs), None
        return self.denoiser(x, t, return_hidden_at=self.tap, **kwargs)


def drop_labels(y: torch.Tensor, p: float, null_class: int, generator: torch.Generator) -> torch.Tensor:
    """Each label becomes ``null_class`` with probability ``p`` (drawn with ``generator`` on its device)."""
    if p <= 0:
        return y
    draws = batch_noise.rand(y.shape, generator=generator, device=y.device)
    return torch.where(draws < p, torch.full_like(y, null_class), y)


def denoiser_loss(model: nn.Module, terms: TrainableDenoiser, objective: Any, x0: torch.Tensor,
                  y: torch.Tensor | None, *, step: int, generator: torch.Generator,
                  features: torch.Tensor | None = None, images: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """The step's total loss and its logged parts. ``model`` is ``terms`` as prepared (maybe DDP-wrapped);
    (The denoiser's output shape is checked by a forward hook the engine installs, ``engine/contracts.py``.)"""
    seen: dict[str, torch.Tensor | None] = {}

    def denoise(x_t, t, **kwargs):  # what the objective calls: a plain denoiser
        prediction, hidden = model(x_t, t, **kwargs)
        seen["hidden"], seen["t"] = hidden, t
        return prediction

    kwargs = {} if y is None else {"y": y}
    loss, parts = objective.loss(denoise, x0, generator=generator, **kwargs)
    parts = dict(parts)
    for slot, term in zip(terms.slots, terms.terms):
        cfg = slot.config
        weight = term_weight(cfg.weight, step, start_step=cfg.start_step, warmup_steps=cfg.warmup_steps,
                             end_step=cfg.end_step)
        if weight <= 0:
            continue
        inputs = DenoiserRegularizerInputs(x0=x0, t=seen.get("t"), step=step, hidden=seen.get("hidden"),
                                           features=features, images=images)
        out = term.loss(inputs)
        value, extra = out if isinstance(out, tuple) else (out, {})
        check_regularizer_loss(slot.name, value, slot.provider, kind="denoiser regularizer")
        loss = loss + weight * value
        parts[slot.name] = value
        parts.update({f"{slot.name}/{k}": v for k, v in extra.items()})
    return loss, parts
