"""PatchGAN discriminator and its hinge loss (the authors' ``modules/discriminator.py``; method.md s4.2-4.3).

The discriminator maps images (B, in_channels, H, W) in [-1, 1] to a grid of real/fake logits, one per
overlapping patch: a 256x256 input gives (B, 1, 30, 30). For multi-GPU training convert its BatchNorm layers
with ``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` (the authors use SyncBN).

The adaptive GAN weight lives in ``specmatch.nn.adaptive``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from specmatch.nn.autoencoder import ArchitectureError

NORMS = ("batch", "none")


def init_patchgan_weights(module: nn.Module, conv_std: float = 0.2) -> None:
    """Initialise a PatchGAN in place: conv weights ~ N(0, conv_std), BatchNorm weight ~ N(1, 0.02), bias 0.

    ``conv_std = 0.2`` is the authors' value (ten times the usual pix2pix/taming 0.02). Conv biases keep
    PyTorch's default init, as in taming's ``weights_init``. Use as ``model.apply(init_patchgan_weights)``
    or call it on the whole model (it walks all submodules).
    """
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.normal_(layer.weight, 0.0, conv_std)
        elif isinstance(layer, nn.modules.batchnorm._BatchNorm):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


class PatchGAN(nn.Module):
    """pix2pix/taming NLayerDiscriminator.

    conv4x4 s2 (in -> base) + LeakyReLU 0.2; then ``n_layers`` blocks of conv4x4 (no bias) + norm + LeakyReLU
    0.2 with the width doubling each block (capped at 8 x base), stride 2 except the last block (stride 1);
    finally conv4x4 s1 -> 1 logit channel. Every conv has padding 1. Weights are initialised with
    ``init_patchgan_weights(conv_std)``.

    Args:
        in_channels: image channels.
        base_channels: width of the first conv (64).
        n_layers: number of normalised blocks (3).
        norm: "batch" (BatchNorm2d) or "none" (no normalisation; the block convs then get biases).
        conv_std: std of the conv weight init (0.2, the authors' value).
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, n_layers: int = 3, norm: str = "batch",
                 conv_std: float = 0.2):
        super().__init__()
        if norm not in NORMS:
            raise ArchitectureError(f"PatchGAN norm must be one of {NORMS}, got {norm!r}")
        if n_layers < 1 or base_channels < 1 or in_channels < 1:
            raise ArchitectureError("PatchGAN needs in_channels, base_channels and n_layers of at least 1")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base_channels, 4, stride=2, padding=1),
                                   nn.LeakyReLU(0.2)]
        width = base_channels
        for index in range(1, n_layers + 1):
            out_width = base_channels * min(2 ** index, 8)
            stride = 1 if index == n_layers else 2
            layers += [nn.Conv2d(width, out_width, 4, stride=stride, padding=1, bias=norm == "none"),
                       nn.BatchNorm2d(out_width) if norm == "batch" else nn.Identity(),
                       nn.LeakyReLU(0.2)]
            width = out_width
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.layers = nn.Sequential(*layers)
        init_patchgan_weights(self, conv_std)

    def forward(self, x: Tensor) -> Tensor:
        """Images (B, in_channels, H, W) -> patch logits (B, 1, h, w); 256x256 gives 30x30."""
        return self.layers(x)


def hinge_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """Discriminator hinge loss: ``mean relu(1 - real) + mean relu(1 + fake)`` (a scalar).

    This is the authors' trainer (method.md s4.3): a plain sum of the two means. taming/LDM's
    ``hinge_d_loss`` multiplies the same sum by 0.5; specmatch follows the authors.
    """
    return F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean()
