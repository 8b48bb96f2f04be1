"""Perceptual distances for autoencoder training and evaluation.

- :class:`STLPIPS`: shift-tolerant LPIPS (Ghildyal & Liu, "Shift-tolerant perceptual similarity metric",
  ECCV 2022) from the ``stlpips-pytorch`` package, whose wheel bundles complete weights (backbone and linear
  calibration) for AlexNet and VGG. It runs offline and is reported as **ST-LPIPS**, never as LPIPS.
- :class:`LPIPS`: standard LPIPS (Zhang et al. 2018) from the ``lpips`` package. The package ships only the
  linear calibration layers; the ImageNet VGG/AlexNet backbone must come from a local torchvision checkpoint
  (a file the user names, or the user's torch hub cache). Nothing is downloaded: a missing file raises
  :class:`~specmatch.core.errors.WeightsError`.
- :class:`LPIPSFromFiles`: the same LPIPS v0.1 network without the ``lpips`` package: the architecture of
  ``stlpips-pytorch`` (a copy of lpips' with its shift-tolerant variants added), the backbone from torchvision's
  file and the linear layers from LPIPS's own ``vgg.pth``/``alex.pth``, both files the user provides.
- :class:`LPIPSMetric`: one of these as the per-image ``lpips`` evaluation metric (rLPIPS).

All take images in [-1, 1], shape (B, 3, H, W), and return one distance per sample, shape (B,). They are
frozen (parameters never require grad, eval mode even when a parent calls ``.train()``) while gradients still
flow to the inputs, so they serve as losses.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Iterator, Optional, Union

import torch
from torch import Tensor, nn

from specmatch.core.errors import WeightsError
from specmatch.nn.frozen import FrozenModule

__all__ = ["STLPIPS", "LPIPS", "LPIPSFromFiles", "LPIPSMetric", "load_stlpips", "stlpips_weights_path"]

_STLPIPS_NETS = ("alex", "vgg")

# stlpips-pytorch imports these at module level but never uses them on the paths specmatch calls.
_JUNK_IMPORTS = {"IPython": ("embed",), "torchsummary": ("summary",)}


# ---------------------------------------------------------------------------------------------------------------
# ST-LPIPS
# ---------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _stub_missing_modules() -> Iterator[None]:
    """Temporarily provide empty stand-ins for the unused modules stlpips-pytorch imports.

    Only modules that are not installed are stubbed, and the stubs are removed again afterwards; the already
    imported stlpips modules keep their references to the dummy functions, which they never call.
    """

    def _unused(*args, **kwargs):
        raise RuntimeError("stub: stlpips-pytorch's debugging helpers are not available in specmatch")

    inserted = {}
    for name, attributes in _JUNK_IMPORTS.items():
        if name in sys.modules or importlib.util.find_spec(name) is not None:
            continue
        stub = types.ModuleType(name)
        for attribute in attributes:
            setattr(stub, attribute, _unused)
        sys.modules[name] = inserted[name] = stub
    try:
        yield
    finally:
        for name, stub in inserted.items():
            if sys.modules.get(name) is stub:
                del sys.modules[name]


def _import_stlpips():
    if importlib.util.find_spec("stlpips_pytorch") is None:
        raise WeightsError(
            "ST-LPIPS needs the 'stlpips-pytorch' package (it bundles the weights): "
            "pip install --no-deps stlpips-pytorch==0.0.2")
    with _stub_missing_modules():
        return importlib.import_module("stlpips_pytorch.stlpips")


def stlpips_weights_path(net: str = "alex") -> Path:
    """Path of the weights file bundled in the stlpips-pytorch wheel for ``net`` (no import of the package)."""
    if net not in _STLPIPS_NETS:
        raise WeightsError(f"ST-LPIPS backbone must be one of {_STLPIPS_NETS}, got {net!r}")
    spec = importlib.util.find_spec("stlpips_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "ST-LPIPS needs the 'stlpips-pytorch' package (it bundles the weights): "
            "pip install --no-deps stlpips-pytorch==0.0.2")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "vST0.0" / f"{net}_shift_tolerant.pth"
    if not path.is_file():
        raise WeightsError(f"ST-LPIPS weights for '{net}' are missing from the stlpips-pytorch install: {path} "
                           "(reinstall stlpips-pytorch==0.0.2)")
    return path


def load_stlpips(net: str = "alex") -> nn.Module:
    """Build the package's ``LPIPS(net, variant="shift_tolerant")`` and load its bundled weights, checked.

    The package itself loads with ``strict=False``, which would hide a missing tensor; here every parameter and
    buffer of the model must come from the file (``lins.*`` are aliases of ``lin0``...``lin4``). Returns the
    module frozen and in eval mode, on the CPU.
    """
    path = stlpips_weights_path(net)
    stlpips = _import_stlpips()
    model = stlpips.LPIPS(pretrained=False, net=net, variant="shift_tolerant", verbose=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("lins.")]
    if missing or result.unexpected_keys:
        raise WeightsError(f"{path} does not match the ST-LPIPS '{net}' model: missing {missing[:5]}, "
                           f"unexpected {list(result.unexpected_keys)[:5]}")
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


class STLPIPS(FrozenModule):
    """Shift-tolerant LPIPS distance, reported as "ST-LPIPS".

    ``STLPIPS(net="alex")(x, y)`` with x, y in [-1, 1], (B, 3, H, W) -> (B,) distances. Identical images give 0;
    on 256 px photos (alex) noise sigma 0.1 gives about 0.32, a 2 px shift 0.017, a different photo 0.77.
    """

    name = "ST-LPIPS"

    def __init__(self, net: str = "alex"):
        super().__init__()
        self.net = net
        self.weights_path = stlpips_weights_path(net)
        self.model = load_stlpips(net)
        self._freeze()

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if x.shape != y.shape:
            raise ValueError(f"ST-LPIPS inputs differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
        return self.model(x, y).reshape(x.shape[0])

    def describe(self) -> dict:
        return {"name": self.name, "net": self.net, "weights": str(self.weights_path),
                "package": "stlpips-pytorch 0.0.2 (BSD-2-Clause)"}


# ---------------------------------------------------------------------------------------------------------------
# LPIPS (needs a local ImageNet backbone)
# ---------------------------------------------------------------------------------------------------------------

# torchvision checkpoint names, as torch.hub stores them under <hub dir>/checkpoints/.
_TORCHVISION_BACKBONE_FILES = {"vgg": "vgg16-397923af.pth", "alex": "alexnet-owt-7be5be79.pth"}


def _default_backbone_path(net: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / _TORCHVISION_BACKBONE_FILES[net]


class LPIPS(FrozenModule):
    """Standard LPIPS (``lpips`` package) with the ImageNet backbone read from a local torchvision checkpoint.

    Args:
        net: "vgg" (the Spectrum Matching code's choice) or "alex".
        weights: path of the torchvision ImageNet checkpoint of that backbone (``vgg16-397923af.pth`` or
            ``alexnet-owt-7be5be79.pth``). ``None`` looks in the user's torch hub cache
            (``torch.hub.get_dir()/checkpoints/``). Never downloaded.

    Raises:
        WeightsError: the ``lpips`` package is not installed, or the backbone file is missing or does not fit.
    """

    name = "LPIPS"

    def __init__(self, net: str = "vgg", weights: Optional[Union[str, Path]] = None):
        super().__init__()
        if net not in _TORCHVISION_BACKBONE_FILES:
            raise WeightsError(f"LPIPS backbone must be one of {tuple(_TORCHVISION_BACKBONE_FILES)}, got {net!r}")
        path = Path(weights).expanduser() if weights else _default_backbone_path(net)
        problems = []
        if not path.is_file():
            where = "given" if weights else "looked up in the torch hub cache"
            problems.append(f"the ImageNet {net} backbone checkpoint was not found at {path} ({where}); place the "
                            f"torchvision file {_TORCHVISION_BACKBONE_FILES[net]} there or pass weights=<path>. "
                            "specmatch never downloads weights")
        if importlib.util.find_spec("lpips") is None:
            problems.append("the 'lpips' package is not installed (pip install lpips)")
        if problems:
            raise WeightsError("LPIPS is not available: " + "; ".join(problems) +
                               ". Without them use ST-LPIPS (stlpips), whose weights ship with its package.")
        self.net = net
        self.weights_path = path
        self.model = self._build(net, path)
        self._freeze()

    @staticmethod
    def _build(net: str, path: Path) -> nn.Module:
        import lpips  # optional dependency

        # pnet_rand=True: build the backbone without torchvision's download; pretrained=True: the linear
        # calibration layers, which ship inside the lpips wheel.
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # unreadable or not a checkpoint
            raise WeightsError(f"cannot read the LPIPS {net} backbone checkpoint {path}: {exc}") from exc
        _load_backbone(model.net, state, path, net)
        return model.eval()

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if x.shape != y.shape:
            raise ValueError(f"LPIPS inputs differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
        return self.model(x, y).reshape(x.shape[0])

    def describe(self) -> dict:
        return {"name": self.name, "net": self.net, "backbone_weights": str(self.weights_path), "package": "lpips"}


def _load_backbone(backbone: nn.Module, state, path: Path, net: str) -> None:
    """Load a torchvision ImageNet checkpoint into lpips' sliced backbone (``sliceK.<i>`` = ``features.<i>``)."""
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} is not a torchvision ImageNet {net} checkpoint (no state dict)")
    tensors, missing = {}, []
    for key in backbone.state_dict():
        source = "features." + key.split(".", 1)[1]
        if source in state:
            tensors[key] = state[source]
        else:
            missing.append(source)
    if missing:
        raise WeightsError(f"{path} is not a torchvision ImageNet {net} checkpoint: missing {missing[:4]}")
    try:
        backbone.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path} does not fit the LPIPS {net} backbone: {exc}") from exc


def _read_state(path: Path, what: str):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable or not a checkpoint
        raise WeightsError(f"cannot read the {what} {path}: {exc}") from exc


class LPIPSFromFiles(FrozenModule):
    """LPIPS v0.1 (Zhang et al. 2018) from two local files, without the ``lpips`` package.

    Args:
        backbone: torchvision's ImageNet checkpoint of the backbone (``vgg16-397923af.pth``); ``None`` looks in
            the torch hub cache (``torch.hub.get_dir()/checkpoints/``).
        linear: LPIPS v0.1's linear calibration layers for that backbone (the ``lpips`` package's
            ``weights/v0.1/vgg.pth``: ``lin0.model.1.weight`` ... ``lin4.model.1.weight``).
        net: "vgg" or "alex".

    Images in [-1, 1], (B, 3, H, W) -> (B,) distances. Raises ``WeightsError`` naming a missing or unfit file.
    """

    name = "LPIPS"

    def __init__(self, *, linear: Union[str, Path], backbone: Optional[Union[str, Path]] = None, net: str = "vgg"):
        super().__init__()
        import warnings

        if net not in _TORCHVISION_BACKBONE_FILES:
            raise WeightsError(f"LPIPS backbone must be one of {tuple(_TORCHVISION_BACKBONE_FILES)}, got {net!r}")
        backbone_path = Path(backbone).expanduser() if backbone else _default_backbone_path(net)
        linear_path = Path(linear).expanduser()
        for path, what in ((backbone_path, f"torchvision ImageNet {net} checkpoint "
                                           f"({_TORCHVISION_BACKBONE_FILES[net]})"),
                           (linear_path, f"LPIPS v0.1 linear layers for {net} ({net}.pth of the lpips package)")):
            if not path.is_file():
                raise WeightsError(f"LPIPS: the {what} was not found at {path}; specmatch never downloads weights")
        stlpips = _import_stlpips()
        with warnings.catch_warnings():  # stlpips builds torchvision's network with the old `pretrained=` argument
            warnings.simplefilter("ignore", UserWarning)
            model = stlpips.LPIPS(pretrained=False, net=net, variant="", pnet_rand=True, verbose=False)
        _load_backbone(model.net, _read_state(backbone_path, f"{net} backbone checkpoint"), backbone_path, net)
        linear_state = _read_state(linear_path, "LPIPS linear layers")
        wanted = {k for k in model.state_dict() if k.startswith("lin") and not k.startswith("lins.")}
        if not isinstance(linear_state, dict) or set(linear_state) != wanted:
            got = sorted(linear_state)[:5] if isinstance(linear_state, dict) else type(linear_state).__name__
            raise WeightsError(f"{linear_path} is not LPIPS v0.1's {net} linear-layer file: expected the keys "
                               f"{sorted(wanted)[:3]}..., got {got}")
        try:
            model.load_state_dict(linear_state, strict=False)
        except RuntimeError as exc:
            raise WeightsError(f"{linear_path} does not fit LPIPS {net}: {exc}") from exc
        self.net, self.weights_path, self.linear_path = net, backbone_path, linear_path
        self.model = model.eval()
        self._freeze()

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if x.shape != y.shape:
            raise ValueError(f"LPIPS inputs differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
        return self.model(x, y).reshape(x.shape[0])

    def describe(self) -> dict:
        return {"name": self.name, "net": self.net, "backbone_weights": str(self.weights_path),
                "linear_weights": str(self.linear_path), "package": "stlpips-pytorch (LPIPS v0.1 architecture)"}


class LPIPSMetric:
    """A perceptual distance as a per-image evaluation metric: ``per_image(real, fake) -> (B,)`` float32.

    The module follows the batches' device (the engine hands metrics batches on the evaluation device)."""

    def __init__(self, module: nn.Module):
        self.module = module
        self._device = torch.device("cpu")

    @classmethod
    def from_files(cls, *, linear, backbone=None, net: str = "vgg") -> "LPIPSMetric":
        return cls(LPIPSFromFiles(linear=linear, backbone=backbone, net=net))

    @classmethod
    def shift_tolerant(cls, net: str = "vgg") -> "LPIPSMetric":
        return cls(STLPIPS(net))

    def describe(self) -> dict:
        return self.module.describe()

    @torch.no_grad()
    def per_image(self, real: Tensor, fake: Tensor) -> Tensor:
        if real.device != self._device:
            self.module.to(real.device)
            self._device = real.device
        return self.module(fake.float().clamp(-1, 1), real.float().clamp(-1, 1)).float()
