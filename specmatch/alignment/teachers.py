"""Frozen feature teachers ("alignment targets") for VA-VAE's VF loss and REPA.

Every teacher maps images in [-1, 1], shape (B, 3, H, W), to a float32 feature map (B, D, gh, gw) without
gradient, and exposes:

- ``name``, ``feature_dim`` (D), ``is_stand_in`` (True when it is *not* the foundation model a paper used);
- ``grid``: the token grid (gh, gw) at the teacher's fixed input size (for a teacher that runs at the image's
  own resolution, the grid of the last input; ``grid_for((H, W))`` answers for any size);
- ``describe()``: name, source file, sha256, stand-in flag, licence note, feature_dim, grid, input size, layer.

Teachers are ``nn.Module``s (so ``.to(device)`` moves them), frozen, and stay in eval mode.

Loading rules. Weights are only ever read from local files: a path the user names (optionally with its sha256)
or a file bundled inside an installed package. Nothing is downloaded; a missing file raises
:class:`~specmatch.core.errors.WeightsError` naming the path.

- :class:`TimmTeacher`: any timm model (VA-VAE: DINOv2 ViT-L/14 ``vit_large_patch14_dinov2.lvd142m``; REPA:
  DINOv2 ViT-B/14) from a local ``.safetensors``/``.pth`` file; patch tokens reshaped to a grid.
- :class:`STLPIPSStandInTeacher`: **stand-in**: conv features of the ST-LPIPS AlexNet, whose weights ship with
  ``stlpips-pytorch``. The offline teacher for tests and CPU recipes; not a foundation model.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from specmatch.core.errors import SpecmatchError, WeightsError
from specmatch.nn.frozen import FrozenModule

__all__ = [
    "FrozenTeacher",
    "TimmTeacher",
    "STLPIPSStandInTeacher",
    "sha256_file",
]

PathLike = Union[str, Path]


def sha256_file(path: PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file (one implementation, shared with the FID network loader)."""
    from specmatch.metrics.inception import file_sha256

    return file_sha256(path, chunk_bytes)


def _as_size(size: Union[None, int, Sequence[int]]) -> Optional[tuple[int, int]]:
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    size = tuple(int(s) for s in size)
    return size[-2:] if len(size) >= 2 else (size[0], size[0])


class FrozenTeacher(FrozenModule):
    """Shared behaviour: frozen and always in eval mode (``FrozenModule``), resize-to-input-size, grids,
    ``describe()``.

    Subclasses set the descriptive attributes and implement ``_preprocess`` (images in [-1, 1] at the teacher's
    input size -> network input) and ``_features`` (network input -> (B, D, gh, gw)).
    """

    name: str = "teacher"
    is_stand_in: bool = False
    licence: str = "unknown"

    def __init__(self, *, input_size: Optional[tuple[int, int]], interpolation: str = "bilinear"):
        super().__init__()
        self.input_size = input_size
        self.interpolation = interpolation
        self.source: Optional[str] = None
        self.sha256: Optional[str] = None
        self.layer: Any = None
        self.feature_dim = 0
        self._grids: dict[tuple[int, int], tuple[int, int]] = {}
        self._last_grid: Optional[tuple[int, int]] = None

    # -- the interface -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1] -> float32 features (B, D, gh, gw), no gradient."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"{self.name}: expected images (B, 3, H, W) in [-1, 1], got {tuple(images.shape)}")
        x = images.float()
        if self.input_size is not None and tuple(x.shape[-2:]) != self.input_size:
            mode = self.interpolation
            x = F.interpolate(x, size=self.input_size, mode=mode,
                              align_corners=False if mode in ("bilinear", "bicubic") else None)
        features = self._features(self._preprocess(x)).float()
        self._last_grid = tuple(features.shape[-2:])
        return features

    @property
    def grid(self) -> Optional[tuple[int, int]]:
        """Token grid at the fixed input size (or of the last input when the teacher has none)."""
        if self.input_size is not None:
            return self.grid_for(self.input_size)
        return self._last_grid

    def grid_for(self, image_size: Union[int, Sequence[int]]) -> tuple[int, int]:
        """Token grid (gh, gw) for images of ``image_size``; found by one probe forward, then cached."""
        size = self.input_size or _as_size(image_size)
        if size not in self._grids:
            param = next(iter(self.parameters()), None)
            device = param.device if param is not None else torch.device("cpu")
            with torch.no_grad():
                probe = torch.zeros(1, 3, *size, device=device)
                self._grids[size] = tuple(self._features(self._preprocess(probe)).shape[-2:])
        return self._grids[size]

    def describe(self) -> dict:
        return {
            "name": self.name,
            "class": type(self).__name__,
            "is_stand_in": self.is_stand_in,
            "source": self.source,
            "sha256": self.sha256,
            "licence": self.licence,
            "feature_dim": self.feature_dim,
            "grid": list(self.grid) if self.grid is not None else None,
            "input_size": list(self.input_size) if self.input_size is not None else None,
            "interpolation": self.interpolation if self.input_size is not None else None,
            "layer": self.layer,
        }

    # -- for subclasses ------------------------------------------------------------------------------------------
    def _preprocess(self, x: Tensor) -> Tensor:
        return x

    def _features(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _probe_feature_dim(self) -> int:
        size = self.input_size or (64, 64)
        param = next(iter(self.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            out = self._features(self._preprocess(torch.zeros(1, 3, *size, device=device)))
        self._grids[size] = tuple(out.shape[-2:])
        return int(out.shape[1])


# ---------------------------------------------------------------------------------------------------------------
# timm models from local weights
# ---------------------------------------------------------------------------------------------------------------


class TimmTeacher(FrozenTeacher):
    """Any timm model as a frozen teacher, with weights from a local file.

    Args:
        model_name: timm architecture name, e.g. ``"vit_large_patch14_dinov2.lvd142m"`` (VA-VAE) or
            ``"vit_base_patch14_dinov2.lvd142m"`` (REPA). Its ``pretrained_cfg`` supplies the preprocessing.
        weights_path: local ``.safetensors``, ``.pth`` or ``.bin`` file, either in timm's layout (e.g. the
            ``model.safetensors`` of the timm hub repo) or one that timm's ``checkpoint_filter_fn`` converts
            (e.g. the original DINOv2 ``.pth``). Never downloaded.
        sha256: expected hex digest of the file; a mismatch raises WeightsError. ``None`` skips the check (the
            digest is still recorded by ``describe()``).
        input_size: side (or (H, W)) the images are resized to before the model. ``None`` takes
            ``model_kwargs["img_size"]`` if given, else the pretrained config's size (518 for DINOv2; VA-VAE and
            REPA use 224, i.e. 16x16 tokens).
        layer: ``None`` = final normalised tokens (``forward_features``; REPA's ``x_norm_patchtokens``); an
            integer = that block's raw output via ``forward_intermediates`` (negative counts from the end, so
            -2 is the penultimate block).
        interpolation: resize mode; ``None`` = the pretrained config's (bicubic for DINOv2).
        normalize: apply the pretrained config's mean/std (after mapping [-1, 1] to [0, 1]). VA-VAE's code
            skips this (it feeds [-1, 1] images bilinearly resized to 224); ``normalize=False,
            interpolation="bilinear"`` reproduces that.
        model_kwargs: extra ``timm.create_model`` keyword arguments (architecture overrides, e.g. for tests).

    Output: patch tokens without prefix (class/register) tokens, as (B, D, gh, gw).
    """

    def __init__(
        self,
        model_name: str,
        weights_path: PathLike,
        *,
        sha256: Optional[str] = None,
        input_size: Union[None, int, Sequence[int]] = None,
        layer: Optional[int] = None,
        interpolation: Optional[str] = None,
        normalize: bool = True,
        model_kwargs: Optional[dict] = None,
    ):
        import timm
        from timm.data import resolve_model_data_config

        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise WeightsError(
                f"weights file for timm model '{model_name}' not found: {path}. specmatch never downloads "
                "weights; download the checkpoint yourself (e.g. the model.safetensors of the timm hub repo) and "
                "give its path (and sha256) in the recipe")
        digest = sha256_file(path)
        if sha256 is not None and digest != sha256.strip().lower():
            raise WeightsError(f"sha256 mismatch for {path} (timm model '{model_name}'): expected {sha256.lower()}, "
                               f"file has {digest}")

        kwargs = dict(pretrained=False, num_classes=0, **(model_kwargs or {}))
        try:
            try:
                model = timm.create_model(model_name, dynamic_img_size=True, **kwargs)
            except TypeError:  # architectures without dynamic_img_size (CNNs) take any size anyway
                model = timm.create_model(model_name, **kwargs)
        except RuntimeError as exc:  # timm: "Unknown model (...)"
            raise SpecmatchError(f"timm cannot build model '{model_name}': {exc}") from exc
        _load_timm_weights(model, path, model_name)

        config = resolve_model_data_config(model)
        # Default size: an explicit img_size override, else the pretrained config's.
        default_size = _as_size((model_kwargs or {}).get("img_size")) or _as_size(config["input_size"])
        super().__init__(input_size=_as_size(input_size) or default_size,
                         interpolation=interpolation or _torch_interpolation(config.get("interpolation")))
        self.model = model
        self.model_name = model_name
        self.name = model_name if layer is None else f"{model_name}[block {layer}]"
        self.layer = layer
        self.normalize = normalize
        self.source = str(path)
        self.sha256 = digest
        self.licence = str(model.pretrained_cfg.get("license", "unknown (see the model card)"))
        self.register_buffer("mean", torch.tensor(config["mean"], dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(config["std"], dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        if layer is not None and not hasattr(model, "forward_intermediates"):
            raise SpecmatchError(f"timm model '{model_name}' has no forward_intermediates; use layer=None")
        self._freeze()
        self.feature_dim = self._probe_feature_dim()

    def _preprocess(self, x: Tensor) -> Tensor:
        if not self.normalize:
            return x
        return ((x + 1.0) / 2.0 - self.mean) / self.std

    def _features(self, x: Tensor) -> Tensor:
        if self.layer is not None:
            (out,) = self.model.forward_intermediates(x, indices=[self.layer], intermediates_only=True,
                                                      output_fmt="NCHW")
            return out
        out = self.model.forward_features(x)
        if out.dim() == 4:  # CNN feature map, already (B, C, h, w)
            return out
        tokens = out[:, getattr(self.model, "num_prefix_tokens", 0):]
        gh, gw = self._token_grid(x, tokens.shape[1])
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], gh, gw)

    def _token_grid(self, x: Tensor, n_tokens: int) -> tuple[int, int]:
        patch_embed = getattr(self.model, "patch_embed", None)
        if patch_embed is not None and hasattr(patch_embed, "dynamic_feat_size"):
            gh, gw = patch_embed.dynamic_feat_size(tuple(x.shape[-2:]))
        elif patch_embed is not None and getattr(patch_embed, "grid_size", None) is not None:
            gh, gw = patch_embed.grid_size
        else:
            gh = gw = int(round(n_tokens**0.5))
        if gh * gw != n_tokens:
            raise SpecmatchError(f"{self.model_name}: {n_tokens} patch tokens do not form a {gh}x{gw} grid")
        return int(gh), int(gw)


def _torch_interpolation(name: Optional[str]) -> str:
    """timm's interpolation names -> ``F.interpolate`` modes (bilinear for anything unusual)."""
    return name if name in ("bilinear", "bicubic", "nearest") else "bilinear"


def _load_timm_weights(model: nn.Module, path: Path, model_name: str) -> None:
    """Load a local checkpoint into a timm model; every model tensor must be provided."""
    from timm.models import load_state_dict

    try:
        state = load_state_dict(str(path), use_ema=False)
    except Exception as exc:  # unreadable, truncated, not a checkpoint
        raise WeightsError(f"cannot read weights {path} for timm model '{model_name}': {exc}") from exc
    # timm's per-architecture converter (e.g. original DINOv2 keys, position-embedding resizing).
    filter_fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    if filter_fn is not None:
        try:
            state = filter_fn(state, model)
        except Exception as exc:
            raise WeightsError(f"weights {path} do not fit timm model '{model_name}': {exc}") from exc
    # The teacher is built without a classifier (num_classes=0); a checkpoint's head is dropped.
    classifier = model.pretrained_cfg.get("classifier") or "head"
    classifiers = classifier if isinstance(classifier, (list, tuple)) else (classifier,)
    own = model.state_dict()
    state = {k: v for k, v in state.items()
             if k in own or not any(k == c or k.startswith(c + ".") for c in classifiers)}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch
        raise WeightsError(f"weights {path} do not fit timm model '{model_name}': {exc}") from exc
    if result.missing_keys or result.unexpected_keys:
        raise WeightsError(
            f"weights {path} do not fit timm model '{model_name}': missing {list(result.missing_keys)[:5]}"
            f"{' ...' if len(result.missing_keys) > 5 else ''}, unexpected {list(result.unexpected_keys)[:5]}"
            f"{' ...' if len(result.unexpected_keys) > 5 else ''}")


# ---------------------------------------------------------------------------------------------------------------
# Offline stand-in
# ---------------------------------------------------------------------------------------------------------------


class STLPIPSStandInTeacher(FrozenTeacher):
    """STAND-IN teacher: conv features of the shift-tolerant LPIPS AlexNet (weights bundled with stlpips-pytorch).

    Not a foundation model: it is labelled ``is_stand_in=True`` and named "stlpips-alex-conv<layer> (stand-in for
    DINOv2)" in every record, so results obtained with it are never mistaken for VA-VAE/REPA numbers.

    Args:
        net: ST-LPIPS backbone ("alex"; "vgg" also works).
        layer: 1-5, the backbone stage whose ReLU output is returned (alex widths 64, 192, 384, 256, 256). At a
            32 px input, layer 2 gives a 192 x 7 x 7 map; each stage roughly halves the grid.
        input_size: resize images to this side first (e.g. 64 for a larger grid); ``None`` = native resolution.

    Input preprocessing is LPIPS's own: images in [-1, 1] through its fixed scaling layer.
    """

    is_stand_in = True
    licence = "stlpips-pytorch 0.0.2 package (BSD-2-Clause); ST-LPIPS weights by its authors"

    def __init__(self, net: str = "alex", layer: int = 2, *,
                 input_size: Union[None, int, Sequence[int]] = None):
        from specmatch.losses.perceptual import load_stlpips, stlpips_weights_path

        if not 1 <= int(layer) <= 5:
            raise SpecmatchError(f"STLPIPSStandInTeacher: layer must be 1..5, got {layer}")
        super().__init__(input_size=_as_size(input_size), interpolation="bilinear")
        full = load_stlpips(net)
        self.scaling = full.scaling_layer
        # Keep only the stages up to `layer` (slice1 ... slice<layer>).
        self.stages = nn.Sequential(*[getattr(full.net, f"slice{i}") for i in range(1, int(layer) + 1)])
        self.layer = int(layer)
        self.net = net
        self.name = f"stlpips-{net}-conv{self.layer} (stand-in for DINOv2)"
        path = stlpips_weights_path(net)
        self.source = str(path)
        self.sha256 = sha256_file(path)
        self._freeze()
        self.feature_dim = self._probe_feature_dim()

    def _preprocess(self, x: Tensor) -> Tensor:
        return self.scaling(x)

    def _features(self, x: Tensor) -> Tensor:
        return self.stages(x)
