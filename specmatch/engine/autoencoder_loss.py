"""The autoencoder objective: reconstruction + scheduled regularizer terms in one ``forward``.

Order inside one step (the design's hardest case, DSM, drives it):

1. encode ``x`` -> posterior; ``z`` = sample (or mean);
2. pair transforms of active ``transforms_pair`` regularizers, in recipe order: ``(z_dec, target)``;
3. one decode: ``x_hat = decode(z_dec)``;
4. reconstruction loss (pixel + perceptual) against ``target``, which also feeds the adversarial term;
5. every active regularizer's ``loss`` on one read-only :class:`RegularizerInputs`;
6. total = rec + sum_i w_i(step) * a_i * L_i (+ adversarial), with ``a_i`` an optional adaptive factor.

Everything with gradients happens in ``forward`` so that a DDP wrapper sees a single call.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch import nn

from specmatch.core.components import PairContext, RegularizerInputs
from specmatch.core.specs import default_adaptive_layer

from .contracts import check_pair_output, check_regularizer_loss
from .schedule import term_weight


@attrs.define
class RegularizerSlot:
    """A built regularizer with its recipe knobs."""

    name: str
    config: Any  # RegularizerConfig
    needs: frozenset
    transforms_pair: bool
    index: int
    provider: Any = None  # the spec's Provider, named in contract errors


def _reference_param(autoencoder: nn.Module, layer: str) -> torch.Tensor:
    return autoencoder.encoder_last_layer if layer == "encoder.last" else autoencoder.decoder_last_layer


def adaptive_factor(main: torch.Tensor, term: torch.Tensor, param: torch.Tensor, cfg: Any) -> torch.Tensor:
    """||d main / dW|| / ||d term / dW||, clamped and detached (taming's and VA-VAE's adaptive weight)."""
    from specmatch.nn.adaptive import adaptive_weight

    return adaptive_weight(main, term, param, eps=cfg.eps, eps_mode=cfg.eps_mode, max_value=cfg.max)


class AutoencoderObjective(nn.Module):
    def __init__(self, autoencoder: nn.Module, regularizers: list[nn.Module], slots: list[RegularizerSlot], *,
                 pixel_loss: str = "l1", sample_posterior: bool = True, perceptual: nn.Module | None = None,
                 perceptual_weight: float = 0.0, teacher: Any = None, adversarial_cfg: Any = None):
        super().__init__()
        self.autoencoder = autoencoder
        # modules are registered (moved, optimised, checkpointed); plain objects are allowed when stateless
        self.regularizer_modules = nn.ModuleList([r for r in regularizers if isinstance(r, nn.Module)])
        self._regularizers = list(regularizers)
        self.slots = slots
        self.pixel_loss = pixel_loss
        self.sample_posterior = sample_posterior
        self.perceptual = perceptual
        self.perceptual_weight = perceptual_weight
        # frozen teacher kept outside the module tree: never optimised, wrapped or checkpointed
        self._teacher = (teacher,)
        self.adversarial_cfg = adversarial_cfg

    def reconstruction_loss(self, x_hat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if x_hat.shape != target.shape:
            raise RuntimeError(f"decoder output {tuple(x_hat.shape)} does not match target {tuple(target.shape)}")
        diff = x_hat.float() - target.float()
        rec = diff.abs().mean() if self.pixel_loss == "l1" else diff.pow(2).mean()
        if self.perceptual is not None and self.perceptual_weight > 0:
            rec = rec + self.perceptual_weight * self.perceptual(x_hat, target).mean()
        return rec

    def _active(self, step: int) -> list[tuple[RegularizerSlot, Any, float]]:
        weights = [term_weight(s.config.weight, step, start_step=s.config.start_step,
                               warmup_steps=s.config.warmup_steps, end_step=s.config.end_step)
                   for s in self.slots]
        return [(s, reg, w) for s, reg, w in zip(self.slots, self._regularizers, weights) if w > 0]

    def _pass(self, x, active, *, step, cpu_generator, device_generator, training):
        """encode -> (sample) -> active pair transforms, in recipe order -> one decode."""
        ae = self.autoencoder
        posterior = ae.encode(x)
        z = posterior.sample(device_generator) if self.sample_posterior else posterior.mode()
        z_dec, target = z, x
        ctx = PairContext(step=step, generator=cpu_generator, training=training,
                          downsample_factor=ae.downsample_factor, encode=ae.encode)
        for slot, reg, _ in active:
            if slot.transforms_pair:
                z_dec, target = check_pair_output(slot.name, reg.transform_pair(z_dec, target, ctx), slot.provider)
        return posterior, z, z_dec, target, ae.decode(z_dec)

    @torch.no_grad()
    def reconstruct_pair(self, x: torch.Tensor, *, step: int, cpu_generator: torch.Generator,
                         device_generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction, target) of a discriminator turn: the pass of ``forward`` and no loss term.

        The discriminator sees exactly what the generator step would reconstruct (pair transforms such as
        DSM's low-pass included) but no regularizer runs: their terms are not needed, and an adaptive factor
        cannot be taken without a graph.
        """
        _, _, _, target, x_hat = self._pass(x, self._active(step), step=step, cpu_generator=cpu_generator,
                                            device_generator=device_generator, training=True)
        return x_hat, target

    def forward(self, x: torch.Tensor, *, step: int, cpu_generator: torch.Generator,
                device_generator: torch.Generator, discriminator: nn.Module | None = None,
                training: bool = True) -> tuple[torch.Tensor, dict[str, float], torch.Tensor, torch.Tensor]:
        ae = self.autoencoder
        logs: dict[str, Any] = {}
        active = self._active(step)
        posterior, z, z_dec, target, x_hat = self._pass(x, active, step=step, cpu_generator=cpu_generator,
                                                        device_generator=device_generator, training=training)
        rec = self.reconstruction_loss(x_hat, target)
        total = rec
        logs["loss/reconstruction"] = rec

        features = None
        teacher = self._teacher[0]
        if teacher is not None and any("features" in s.needs for s, _, _ in active):
            with torch.no_grad():
                features = teacher(x)
        inputs = RegularizerInputs(x=x, posterior=posterior, z=z, z_dec=z_dec, target=target, x_hat=x_hat,
                                   step=step, generator=cpu_generator, decode=ae.decode, encode=ae.encode,
                                   reconstruction_loss=self.reconstruction_loss,
                                   downsample_factor=ae.downsample_factor, features=features)
        for slot, reg, weight in active:
            key = f"reg/{slot.index}-{slot.name}"
            if hasattr(reg, "logs"):
                logs.update({f"{key}/{k}": v for k, v in reg.logs().items()})
            if not hasattr(reg, "loss"):
                continue
            out = reg.loss(inputs)
            value, extra = (out if isinstance(out, tuple) else (out, {}))
            if value is None:
                continue
            check_regularizer_loss(slot.name, value, slot.provider)
            factor = torch.ones((), device=value.device)
            if slot.config.adaptive is not None and training:
                cfg = slot.config.adaptive
                layer = cfg.layer or default_adaptive_layer(slot.needs)
                factor = adaptive_factor(rec, value, _reference_param(ae, layer), cfg)
                logs[f"{key}/factor"] = factor
            total = total + weight * factor * value
            logs[key] = value
            logs[f"{key}/weight"] = weight
            logs.update({f"{key}/{k}": v for k, v in extra.items()})

        adv = self.adversarial_cfg
        if discriminator is not None and adv is not None and step >= adv.start_step and adv.weight > 0:
            g_loss = -discriminator(x_hat).mean()
            factor = torch.ones((), device=g_loss.device)
            if adv.adaptive is not None and training:
                factor = adaptive_factor(rec, g_loss, _reference_param(ae, adv.adaptive.layer or "decoder.last"),
                                         adv.adaptive)
            total = total + adv.weight * factor * g_loss
            logs["loss/generator"] = g_loss
            logs["loss/generator_factor"] = factor
        logs["loss/total"] = total
        return total, logs, x_hat.detach(), target.detach()


def discriminator_loss(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Hinge loss on the (possibly low-passed) target as real and the reconstruction as fake."""
    from specmatch.nn.discriminator import hinge_d_loss

    return hinge_d_loss(discriminator(real.detach()), discriminator(fake.detach()))


def to_floats(logs: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in logs.items():
        out[k] = float(v.detach().float().mean().item()) if isinstance(v, torch.Tensor) else float(v)
    return out
