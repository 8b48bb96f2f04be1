"""Pieces every denoiser family shares: the call checks of the denoiser contract and patch (un)folding.

The contract (docs/denoisers.md): ``forward(x, t, y=None, *, return_hidden_at=None)`` with t in [0, 1]
(1 = noise), labels 0..num_classes-1 plus the null class ``num_classes``, no label dropout inside the
network, and alignment taps k = 1..len(tap_widths).
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_input(x: Tensor, channels: int, size: tuple[int, int] | None) -> None:
    """Raise ValueError unless x is (B, channels, H, W) with (H, W) == size (any size when None)."""
    if x.ndim != 4 or x.shape[1] != channels or (size is not None and tuple(x.shape[2:]) != tuple(size)):
        side = f"{size[0]}, {size[1]}" if size is not None else "H, W"
        raise ValueError(f"x must have shape (B, {channels}, {side}), got {tuple(x.shape)}")


def check_time(t: Tensor, batch: int) -> Tensor:
    """Return t as (B,), broadcasting a scalar; raise ValueError for any other shape."""
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"t must have shape ({batch},) or be a scalar, got {tuple(t.shape)}")
    return t


def resolve_labels(y: Tensor | None, num_classes: int, batch: int, device: torch.device) -> Tensor | None:
    """The labels a network embeds: None for an unconditional network, the null class for ``y=None``.

    Raises ValueError when an unconditional network gets labels or y has the wrong shape.
    """
    if num_classes == 0:
        if y is not None:
            raise ValueError("this denoiser is unconditional (num_classes=0) but class labels y were given")
        return None
    if y is None:
        return torch.full((batch,), num_classes, dtype=torch.long, device=device)
    if y.shape != (batch,):
        raise ValueError(f"y must have shape ({batch},), got {tuple(y.shape)}")
    return y


def condition(x: Tensor, t: Tensor, y: Tensor | None, num_classes: int, time_embed, label_embed) -> Tensor:
    """The conditioning vector of an adaptive-norm network: time embedding (+ label embedding when conditional),
    after the contract's checks of t and y."""
    batch = x.shape[0]
    c = time_embed(check_time(t, batch))
    labels = resolve_labels(y, num_classes, batch, x.device)
    return c if labels is None else c + label_embed(labels)


def check_tap(index: int | None, taps: int) -> None:
    """Raise ValueError unless the tap index is None or in 1..taps."""
    if index is not None and not 1 <= index <= taps:
        raise ValueError(f"return_hidden_at must be in 1..{taps} (1-based tap index), got {index}")


def check_num_classes(num_classes: int) -> None:
    if not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be an integer >= 0 (0 = unconditional), got {num_classes!r}")


def check_transformer_size(*, input_size: int, patch_size: int, hidden_size: int, num_heads: int) -> None:
    """Raise ValueError naming the first inconsistent size of a patch transformer."""
    for name, value in (("input_size", input_size), ("patch_size", patch_size), ("hidden_size", hidden_size),
                        ("num_heads", num_heads)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if input_size % patch_size:
        raise ValueError(f"input_size ({input_size}) must be divisible by patch_size ({patch_size})")
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads})")


def unpatchify(tokens: Tensor, grid: int, patch_size: int, channels: int) -> Tensor:
    """(B, grid**2, p*p*C) patch values in row-major token order -> (B, C, grid*p, grid*p).

    The inverse of ``timm.layers.PatchEmbed`` followed by a per-token linear map: each token's values
    are ordered (row in patch, column in patch, channel), as in DiT, SiT and U-ViT.
    """
    b, p = tokens.shape[0], patch_size
    x = tokens.reshape(b, grid, grid, p, p, channels)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(b, channels, grid * p, grid * p)


class TokenTaps:
    """The alignment taps of a patch transformer (mixed into the ``nn.Module``): one tap after each of its
    ``depth`` blocks, every tap ``hidden_size`` wide, and the null class at index ``num_classes``."""

    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def tap_widths(self) -> tuple[int, ...]:
        return (self.hidden_size,) * self.depth

    @property
    def null_class(self) -> int | None:
        return self.num_classes if self.num_classes > 0 else None


class AdaLNTokens(TokenTaps):
    """What SiT and LightningDiT share with DiT: adaLN-Zero initialisation, and the checked inputs turned into
    the conditioning vector c (time + label embedding) and the position-embedded patch tokens."""

    def build_stem(self, *, input_size: int, in_channels: int, patch_size: int, hidden_size: int, num_heads: int,
                   depth: int, num_classes: int, learn_sigma: bool, time_scale: float) -> None:
        """Check the sizes, then add the parts every adaLN patch transformer here has, under DiT's names (so
        weights interchange): ``x_embedder`` (patches), ``t_embedder``, ``y_embedder`` (labels plus the null
        class, None when unconditional) and the fixed sin-cos ``pos_embed`` buffer."""
        from timm.layers import PatchEmbed
        from torch import nn

        from specmatch.diffusion.dit import TimestepEmbedder, sincos_2d_position_embedding

        check_transformer_size(input_size=input_size, patch_size=patch_size, hidden_size=hidden_size,
                               num_heads=num_heads)
        check_num_classes(num_classes)
        if hidden_size % 4:
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by 4 (2-D sin-cos position embedding)")
        if depth < 1:
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        self.input_size, self.in_channels, self.patch_size = input_size, in_channels, patch_size
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.hidden_size, self.num_classes = hidden_size, num_classes
        self.grid_size = input_size // patch_size
        self.x_embedder = PatchEmbed(input_size, patch_size, in_channels, hidden_size, bias=True)
        self.t_embedder = TimestepEmbedder(hidden_size, time_scale=time_scale)
        self.y_embedder = nn.Embedding(num_classes + 1, hidden_size) if num_classes > 0 else None
        self.register_buffer("pos_embed", sincos_2d_position_embedding(hidden_size, self.grid_size).unsqueeze(0),
                             persistent=False)

    def initialize_weights(self) -> None:
        """DiT's initialisation (the original's): see :func:`specmatch.diffusion.dit.initialize_adaln_zero`."""
        from specmatch.diffusion.dit import initialize_adaln_zero

        initialize_adaln_zero(self)

    def embed(self, x: Tensor, t: Tensor, y: Tensor | None, return_hidden_at: int | None) -> tuple[Tensor, Tensor]:
        """(c (B, D), tokens (B, N, D)) after the contract's checks of x, t, y and the tap index."""
        check_input(x, self.in_channels, (self.input_size, self.input_size))
        check_tap(return_hidden_at, self.depth)
        c = condition(x, t, y, self.num_classes, self.t_embedder, self.y_embedder)
        return c, self.x_embedder(x) + self.pos_embed.to(x.dtype)
