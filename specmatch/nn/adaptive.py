"""Adaptive loss weight: balance two loss terms by their gradient norms at one reference parameter.

Used for the GAN term (reference: the decoder's output conv; method.md s4.3) and VA-VAE's VF loss
(reference: the encoder's last conv; method.md s5.2):

    weight = scale * clamp(||d loss_main / dW|| / denominator(||d loss_other / dW||), 0, max_value)

detached. ``scale`` multiplies *after* the clamp, as in taming/LDM (``d_weight * discriminator_weight``) and
VA-VAE (``vf_weight * self.vf_weight``). ``eps_mode="max"`` uses ``max(norm, eps)`` (LDM/taming and the
authors: eps 1e-8, max 1e4); ``eps_mode="add"`` uses ``norm + eps`` (VA-VAE: eps 1e-4, max 1e8, scale 0.1).
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS_MODES = ("max", "add")


def _grad_norm(loss: Tensor, parameter: Tensor) -> Tensor:
    # retain_graph: both losses are still part of the total loss that is backpropagated afterwards.
    (grad,) = torch.autograd.grad(loss, parameter, retain_graph=True)
    return torch.linalg.vector_norm(grad.float())  # fp32: bf16 norms of large tensors are too coarse


def adaptive_weight(loss_main: Tensor, loss_other: Tensor, reference_param: Tensor, *, eps: float = 1e-8,
                    eps_mode: str = "max", max_value: float = 1e4, scale: float = 1.0) -> Tensor:
    """The detached factor to multiply ``loss_other`` by so its gradient at ``reference_param`` matches
    ``loss_main``'s in norm.

    Args:
        loss_main: scalar loss whose gradient norm sets the scale (the reconstruction loss).
        loss_other: scalar loss to be weighted (GAN or VF term); must depend on ``reference_param``.
        reference_param: the parameter both gradients are taken at (e.g. ``SDVAE.decoder_last_layer``).
        eps: denominator guard.
        eps_mode: "max" -> ``max(norm, eps)``; "add" -> ``norm + eps``.
        max_value: upper clamp of the ratio (the lower clamp is 0).
        scale: multiplies the clamped ratio.

    Returns:
        A float32 scalar tensor without gradient.
    """
    if eps_mode not in EPS_MODES:
        raise ValueError(f"eps_mode must be one of {EPS_MODES}, got {eps_mode!r}")
    main_norm = _grad_norm(loss_main, reference_param)
    other_norm = _grad_norm(loss_other, reference_param)
    denominator = other_norm.clamp_min(eps) if eps_mode == "max" else other_norm + eps
    return (scale * (main_norm / denominator).clamp(0.0, max_value)).detach()
