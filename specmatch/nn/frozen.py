"""The one frozen-module base shared by the perceptual losses and the alignment teachers."""

from torch import nn


class FrozenModule(nn.Module):
    """A module that stays in eval mode and keeps its parameters out of every optimiser.

    Subclasses build their layers, then call ``_freeze()``.
    """

    def _freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True):  # noqa: D102 - dropout/batch-norm must never switch on, whatever the caller
        return super().train(False)
