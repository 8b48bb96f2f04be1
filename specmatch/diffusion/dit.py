"""A small diffusion transformer (DiT / SiT) that predicts a velocity on latents.

The architecture follows facebookresearch/DiT and its flow-matching twin SiT (also the backbone of REPA):

* the latent (B, C, H, W) is cut into p x p patches, each projected to a token of width D
  (``timm.layers.PatchEmbed``), plus a fixed 2-D sin-cos position embedding;
* the time t and the optional class label are embedded and summed into one conditioning vector c (B, D);
* every block is pre-norm attention + MLP whose LayerNorms are modulated by c (shift, scale) and whose
  residual branches are multiplied by a gate predicted from c ("adaLN-Zero");
* a final modulated LayerNorm and a linear layer map each token back to a p x p x C patch.

The modulation layers and the final linear layer start at zero, so a fresh model outputs exactly zero and
every block starts as the identity; this is what makes DiT training stable without warm-up tricks.

Time: t is continuous in [0, 1] (0 = data, 1 = noise). It is multiplied by ``time_scale`` (1000 by default,
DiT's discrete-step range) before the sinusoidal embedding, so the sinusoid's frequencies span the same
range they were designed for. Note that SiT and REPA feed the raw t in [0, 1] (``time_scale=1``).

Class labels: with ``num_classes > 0`` the label table has one extra row, index ``num_classes``, the "null"
class used for classifier-free guidance. The engine replaces training labels by the null class
(``[train.denoiser] class_dropout``); the network never drops labels itself.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from timm.layers import Attention, Mlp, PatchEmbed
from torch import Tensor, nn

from specmatch.denoisers.common import condition
from specmatch.denoisers.presets import DIT_PRESETS

# Width of the sinusoidal time features fed to the time MLP (DiT's value).
TIME_FREQUENCY_SIZE = 256


# ---------------------------------------------------------------------------------------------------------
# Fixed embeddings
# ---------------------------------------------------------------------------------------------------------


def sincos_1d_embedding(positions: Tensor, dim: int) -> Tensor:
    """The 1-D sin-cos embedding of MAE/DiT: ``[sin(p * w_k), cos(p * w_k)]`` with w_k = 10000^(-2k/dim).

    Args:
        positions: (M,) positions (any float dtype; computed in float64 for accuracy).
        dim: even output width.

    Returns:
        (M, dim) float64 tensor: the sines in the first half, the cosines in the second.
    """
    if dim % 2 != 0:
        raise ValueError(f"sin-cos embedding width must be even, got {dim}")
    k = torch.arange(dim // 2, dtype=torch.float64, device=positions.device)
    omega = 1.0 / 10000 ** (k / (dim / 2))
    angles = positions.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def sincos_2d_position_embedding(dim: int, grid_size: int, *, device: torch.device | str | None = None,
                                 dtype: torch.dtype = torch.float32) -> Tensor:
    """The fixed 2-D sin-cos position embedding of MAE/DiT/SiT for a square grid of tokens.

    Tokens are ordered row-major (row i, column j -> index i * grid_size + j), as ``PatchEmbed`` flattens
    them. The first ``dim / 2`` channels encode the column j, the last ``dim / 2`` the row i (the MAE
    reference builds its grid with ``meshgrid(w, h)``, so its "h" half actually holds the column).

    Returns:
        (grid_size ** 2, dim) tensor.
    """
    if dim % 4 != 0:
        raise ValueError(f"the 2-D sin-cos position embedding needs a width divisible by 4, got {dim}")
    coords = torch.arange(grid_size, dtype=torch.float64, device=device)
    rows = coords.repeat_interleave(grid_size)  # i for each token
    cols = coords.repeat(grid_size)  # j for each token
    emb = torch.cat([sincos_1d_embedding(cols, dim // 2), sincos_1d_embedding(rows, dim // 2)], dim=1)
    return emb.to(dtype)


def timestep_features(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """GLIDE/DiT sinusoidal features of (already scaled) times: ``[cos(t * f_k), sin(t * f_k)]``.

    Args:
        t: (B,) times, fractional values allowed.
        dim: output width.

    Returns:
        (B, dim) float32 tensor (a zero column is appended when ``dim`` is odd).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None, :]
    features = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        features = torch.cat([features, torch.zeros_like(features[:, :1])], dim=-1)
    return features


# ---------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN modulation of tokens x (B, N, D) by per-sample shift and scale (B, D)."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class TimestepEmbedder(nn.Module):
    """Continuous time t (B,) in [0, 1] -> conditioning vector (B, D): sinusoid of ``time_scale * t``, then MLP."""

    def __init__(self, hidden_size: int, *, time_scale: float = 1000.0,
                 frequency_size: int = TIME_FREQUENCY_SIZE):
        super().__init__()
        self.time_scale = time_scale
        self.frequency_size = frequency_size
        self.mlp = nn.Sequential(
            nn.Linear(frequency_size, hidden_size),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size),
        )

    def forward(self, t: Tensor) -> Tensor:
        features = timestep_features(t * self.time_scale, self.frequency_size)
        # The features are computed in float32; match the weights so a model cast to bf16 also runs.
        return self.mlp(features.to(self.mlp[0].weight.dtype))


class DiTBlock(nn.Module):
    """Pre-norm transformer block whose norms and residual gates are driven by the conditioning c (adaLN-Zero)."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads=num_heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(in_features=hidden_size, hidden_features=int(hidden_size * mlp_ratio),
                       act_layer=partial(nn.GELU, approximate="tanh"))
        # shift, scale and gate for the attention branch, then the same three for the MLP branch.
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        """x: tokens (B, N, D); c: conditioning (B, D). Returns (B, N, D)."""
        shift_attn, scale_attn, gate_attn, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_attn.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_attn, scale_attn))
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class FinalLayer(nn.Module):
    """Modulated LayerNorm + linear map from each token (D) to its patch values (patch_size**2 * out_channels)."""

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


# ---------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------


def initialize_adaln_zero(model: nn.Module) -> None:
    """DiT's initialisation, shared by the transformers built on its layout (SiT, LightningDiT): Xavier linears,
    N(0, 0.02) label and time embeddings, zero modulation and output layers.

    ``model`` has ``x_embedder.proj``, ``y_embedder`` (or None), ``t_embedder.mlp``, ``blocks`` with
    ``adaLN_modulation`` and a ``final_layer`` with ``adaLN_modulation`` and ``linear``.
    """

    def xavier_linear(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    model.apply(xavier_linear)
    # The patch projection is a linear map of the flattened patch; initialise it like one.
    weight = model.x_embedder.proj.weight.data
    nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
    nn.init.zeros_(model.x_embedder.proj.bias)
    if model.y_embedder is not None:
        nn.init.normal_(model.y_embedder.weight, std=0.02)
    nn.init.normal_(model.t_embedder.mlp[0].weight, std=0.02)
    nn.init.normal_(model.t_embedder.mlp[2].weight, std=0.02)
    # adaLN-Zero: every block starts as the identity and the model output starts at zero.
    for block in model.blocks:
        nn.init.zeros_(block.adaLN_modulation[-1].weight)
        nn.init.zeros_(block.adaLN_modulation[-1].bias)
    for layer in (model.final_layer.adaLN_modulation[-1], model.final_layer.linear):
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)


class DiT(nn.Module):
    """Diffusion transformer predicting a velocity (B, C, H, W) from a noisy latent x_t, time t and label y.

    Args (keyword-only):
        input_size: latent side H = W.
        in_channels: latent channels C.
        patch_size: side of a square patch; tokens N = (input_size / patch_size) ** 2.
        hidden_size: token width D (divisible by ``num_heads`` and by 4 for the position embedding).
        depth: number of transformer blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / D.
        num_classes: 0 for an unconditional model; otherwise labels are 0..num_classes-1 and index
            ``num_classes`` is the null class.
        learn_sigma: predict 2C channels as DiT does (the second half, a variance, is discarded); only
            useful for loading checkpoints with that layout.
        time_scale: factor applied to t before the sinusoidal embedding (1000; SiT/REPA use 1).
    """

    def __init__(self, *, input_size: int, in_channels: int, patch_size: int = 2, hidden_size: int = 384,
                 depth: int = 12, num_heads: int = 6, mlp_ratio: float = 4.0, num_classes: int = 0,
                 learn_sigma: bool = False, time_scale: float = 1000.0):
        super().__init__()
        _check_config(input_size=input_size, in_channels=in_channels, patch_size=patch_size,
                      hidden_size=hidden_size, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
                      num_classes=num_classes)
        self.input_size = input_size
        self.in_channels = in_channels
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.patch_size = patch_size
        self.num_heads = num_heads
        self.num_classes = num_classes
        self.learn_sigma = learn_sigma
        self._hidden_size = hidden_size
        self._grid_size = input_size // patch_size

        self.x_embedder = PatchEmbed(input_size, patch_size, in_channels, hidden_size, bias=True)
        self.t_embedder = TimestepEmbedder(hidden_size, time_scale=time_scale)
        # One extra row: the null class (index num_classes) for classifier-free guidance.
        self.y_embedder = nn.Embedding(num_classes + 1, hidden_size) if num_classes > 0 else None
        # Fixed, so a buffer (moves with .to(), never trained); rebuilt from the config, so not saved.
        self.register_buffer(
            "pos_embed", sincos_2d_position_embedding(hidden_size, self._grid_size).unsqueeze(0), persistent=False
        )
        self.blocks = nn.ModuleList([DiTBlock(hidden_size, num_heads, mlp_ratio) for _ in range(depth)])
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)
        self.initialize_weights()

    # -- properties -------------------------------------------------------------------------------------

    @property
    def num_tokens(self) -> int:
        """Number of tokens N = (input_size / patch_size) ** 2."""
        return self._grid_size ** 2

    @property
    def hidden_size(self) -> int:
        """Token width D."""
        return self._hidden_size

    @property
    def depth(self) -> int:
        """Number of transformer blocks."""
        return len(self.blocks)

    @property
    def tap_widths(self) -> tuple[int, ...]:
        """Width of each alignment tap: the tokens after block k = 1..depth, all ``hidden_size`` wide."""
        return (self._hidden_size,) * len(self.blocks)

    @property
    def null_class(self) -> int | None:
        """Label index of the null class (``num_classes``), or None for an unconditional model."""
        return self.num_classes if self.num_classes > 0 else None

    # -- initialisation ---------------------------------------------------------------------------------

    def initialize_weights(self) -> None:
        initialize_adaln_zero(self)

    # -- forward ----------------------------------------------------------------------------------------

    def unpatchify(self, tokens: Tensor) -> Tensor:
        """(B, N, p*p*C_out) patch values -> (B, C_out, H, W)."""
        b, p, g, c = tokens.shape[0], self.patch_size, self._grid_size, self.out_channels
        x = tokens.reshape(b, g, g, p, p, c)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(b, c, g * p, g * p)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None, *,
                return_hidden_at: int | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """Predict the velocity.

        Args:
            x: noisy latent (B, C, H, W) with H = W = input_size.
            t: (B,) or scalar time in [0, 1] (0 = data, 1 = noise).
            y: (B,) long labels in [0, num_classes] (num_classes = null class); None for unconditional
                models, or to ask a conditional model for its null-class prediction.
            return_hidden_at: block index k in 1..depth; also return the tokens after block k.

        Returns:
            velocity (B, C, H, W), or ``(velocity, hidden)`` with hidden (B, N, D) when
            ``return_hidden_at`` is given.
        """
        expected = (self.in_channels, self.input_size, self.input_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"x must have shape (B, {expected[0]}, {expected[1]}, {expected[2]}), "
                             f"got {tuple(x.shape)}")
        if return_hidden_at is not None and not 1 <= return_hidden_at <= self.depth:
            raise ValueError(f"return_hidden_at must be in 1..{self.depth} (1-based block index), "
                             f"got {return_hidden_at}")

        tokens = self.x_embedder(x) + self.pos_embed.to(x.dtype)
        c = condition(x, t, y, self.num_classes, self.t_embedder, self.y_embedder)
        hidden = None
        for index, block in enumerate(self.blocks, start=1):
            tokens = block(tokens, c)
            if index == return_hidden_at:
                hidden = tokens
        out = self.unpatchify(self.final_layer(tokens, c))
        if self.learn_sigma:
            out = out[:, : self.in_channels]
        return out if return_hidden_at is None else (out, hidden)


def _check_config(*, input_size: int, in_channels: int, patch_size: int, hidden_size: int, depth: int,
                  num_heads: int, mlp_ratio: float, num_classes: int) -> None:
    """Raise ValueError naming the first inconsistent DiT setting."""
    for name, value in (("input_size", input_size), ("in_channels", in_channels), ("patch_size", patch_size),
                        ("hidden_size", hidden_size), ("depth", depth), ("num_heads", num_heads)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if input_size % patch_size != 0:
        raise ValueError(f"input_size ({input_size}) must be divisible by patch_size ({patch_size})")
    if hidden_size % num_heads != 0:
        raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads})")
    if hidden_size % 4 != 0:
        raise ValueError(f"hidden_size ({hidden_size}) must be divisible by 4 (2-D sin-cos position embedding)")
    if mlp_ratio <= 0:
        raise ValueError(f"mlp_ratio must be positive, got {mlp_ratio}")
    if not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be an integer >= 0 (0 = unconditional), got {num_classes!r}")


def build_dit(preset: str | None = None, **overrides: Any) -> DiT:
    """Build a ``DiT`` from a named size preset, with any constructor argument overridden.

    ``input_size`` and ``in_channels`` must be given. Example: ``build_dit("dit-tiny", input_size=8,
    in_channels=4, patch_size=1)``. With ``preset=None`` the ``DiT`` defaults (DiT-S size) apply.
    """
    if preset is None:
        settings: dict[str, Any] = {}
    elif preset in DIT_PRESETS:
        settings = dict(DIT_PRESETS[preset])
    else:
        raise ValueError(f"unknown DiT preset {preset!r}; known presets: {', '.join(sorted(DIT_PRESETS))}")
    settings.update(overrides)
    missing = [name for name in ("input_size", "in_channels") if name not in settings]
    if missing:
        raise ValueError(f"build_dit needs {' and '.join(missing)} (the latent shape)")
    return DiT(**settings)
