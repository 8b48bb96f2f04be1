"""The full FID Inception network of pytorch-fid, from the user's weights file: pool features, the spatial
features of sFID and the 1008-way logits of the Inception Score, in one forward pass.

The bundled TorchScript network (``inception.py``) returns only the 2048-d pool features. sFID and IS need two
more outputs, which only the complete network has. pytorch-fid's weights file
``pt_inception-2015-12-05-6726825d.pth`` (the TF 2015 Inception graph of the FID paper, converted) is a state
dict of torchvision's ``Inception3(num_classes=1008, aux_logits=False)`` in which some blocks pool differently
from torchvision's ImageNet model. specmatch never downloads it; the user gives its path in the recipe.

The architecture is torchvision's ``Inception3`` with four block variants written here (the facts are
pytorch-fid's ``FIDInceptionA/C/E_1/E_2``):

* ``Mixed_5b/5c/5d`` (A), ``Mixed_6b..6e`` (C), ``Mixed_7b`` (E_1): the pool branch averages without counting
  the zero padding (``count_include_pad=False``), as TensorFlow's average pooling does;
* ``Mixed_7c`` (E_2): the pool branch takes the maximum instead of the average (a bug of the TF graph that
  the FID statistics inherited).

Outputs, for images in [-1, 1] prepared exactly as for the bundled network (``InceptionFeatures.preprocess``):

* ``pool`` (B, 2048): the average-pooled ``Mixed_7c`` output, TF's ``pool_3`` (FID's features);
* ``spatial`` (B, 2023): TF's ``mixed_6/conv`` (``Mixed_6d.branch1x1`` after its ReLU, 17 x 17 x 192), first
  7 channels, flattened in TensorFlow's NHWC order (row, column, channel) as ADM's evaluator does
  (``spatial[..., :7]`` then a reshape), so statistics match ADM's ``mu_s``/``sigma_s``;
* ``logits`` (B, 1008): ``pool @ fc.weight.T`` without the bias. ADM's evaluator multiplies the pool features
  by the graph's ``softmax/logits`` weight matrix alone, and torch-fidelity's ``logits_unbiased`` (the default
  feature of torchmetrics' ``InceptionScore``) does the same; both take the softmax over all 1008 outputs
  (classes 1..1000 plus 8 unused ones), so specmatch does too.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from specmatch.core.errors import WeightsError

from .inception import FEATURE_DIM, PREPROCESSING, InceptionFeatures, file_sha256
from .weights_files import PYTORCH_FID_FILE, PYTORCH_FID_SHA256_PREFIX
NUM_LOGITS = 1008
SPATIAL_CHANNELS = 7  # ADM: spatial[..., :7]
SPATIAL_GRID = 17
SPATIAL_DIM = SPATIAL_GRID * SPATIAL_GRID * SPATIAL_CHANNELS  # 2023
NAME = "pytorch-fid inception-v3 (full, pt_inception-2015-12-05)"


def _fid_block(base: type, pool: str) -> type:
    """A torchvision Inception block whose pool branch pools as the TF graph does.

    torchvision's blocks return ``[..., branch_pool]`` from ``_forward``; the pool branch is recomputed here
    with TF's pooling (one extra 1x1 convolution, cheap next to the block) instead of repeating the block.
    """

    def _forward(self, x: Tensor) -> list[Tensor]:
        outputs = base._forward(self, x)
        if pool == "max":
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        outputs[-1] = self.branch_pool(pooled)
        return outputs

    return type(f"FID{base.__name__}_{pool}", (base,), {"_forward": _forward})


def build_fid_inception() -> nn.Module:
    """pytorch-fid's FID Inception architecture, randomly initialised (load a state dict into it)."""
    from torchvision.models.inception import Inception3, InceptionA, InceptionC, InceptionE

    net = Inception3(num_classes=NUM_LOGITS, aux_logits=False, transform_input=False, init_weights=False)
    avg_a, avg_c, avg_e, max_e = (_fid_block(InceptionA, "avg"), _fid_block(InceptionC, "avg"),
                                  _fid_block(InceptionE, "avg"), _fid_block(InceptionE, "max"))
    net.Mixed_5b, net.Mixed_5c, net.Mixed_5d = avg_a(192, 32), avg_a(256, 64), avg_a(288, 64)
    net.Mixed_6b, net.Mixed_6c = avg_c(768, channels_7x7=128), avg_c(768, channels_7x7=160)
    net.Mixed_6d, net.Mixed_6e = avg_c(768, channels_7x7=160), avg_c(768, channels_7x7=192)
    net.Mixed_7b, net.Mixed_7c = avg_e(1280), max_e(2048)
    return net


_TRUNK = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
          "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
          "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c")


def inception_outputs(net: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """``{"pool", "spatial", "logits"}`` of the network for prepared (B, 3, 299, 299) input (see the module)."""
    spatial = None
    for name in _TRUNK:
        if name == "Mixed_6d":
            # TF's mixed_6/conv: the 1x1 branch of this block (BasicConv2d ends with its ReLU)
            spatial = net.Mixed_6d.branch1x1(x)
        x = getattr(net, name)(x)
    pool = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
    spatial = spatial[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).flatten(1)  # NHWC order, as ADM
    logits = pool @ net.fc.weight.T
    return {"pool": pool, "spatial": spatial, "logits": logits}


class FullInception:
    """Callable: images (B, 3, H, W) in [-1, 1] -> ``{"pool": (B, 2048), "spatial": (B, 2023), "logits":
    (B, 1008)}`` (float32, on the images' device), from pytorch-fid's weights file.

    Args:
        path: the weights file (``pt_inception-2015-12-05-6726825d.pth``), a state dict.
        sha256: expected hex digest of the file, or a prefix of it; the default is the 8-digit prefix that
            names the file. ``""`` skips the check (tests with random weights); the digest is still recorded.
        what: how the recipe names the file, for error messages (e.g. the key path).

    Raises ``WeightsError`` naming the file when it is missing, unreadable, has another hash or does not fit.
    """

    feature_dim = FEATURE_DIM

    def __init__(self, path: str | os.PathLike, *, sha256: str = PYTORCH_FID_SHA256_PREFIX, what: str = "",
                 batch_size: int = 32):
        self.path = Path(path).expanduser()
        where = f" ({what})" if what else ""
        if not self.path.is_file():
            raise WeightsError(f"pytorch-fid's Inception weights file {PYTORCH_FID_FILE} was not found at "
                               f"{self.path}{where}; specmatch never downloads it: get it from pytorch-fid's "
                               f"release and give its path")
        self.sha256 = file_sha256(self.path)
        if sha256 and not self.sha256.startswith(sha256.strip().lower()):
            raise WeightsError(f"{self.path}{where} has sha256 {self.sha256}, expected one starting with "
                               f"{sha256.lower()} (pytorch-fid's {PYTORCH_FID_FILE}); the file is corrupt or "
                               f"another network")
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # unreadable, truncated, not a torch file
            raise WeightsError(f"cannot read {self.path}{where} as a state dict: {exc}") from exc
        net = build_fid_inception()
        try:
            net.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise WeightsError(f"{self.path}{where} is not pytorch-fid's Inception state dict: "
                               f"{str(exc)[:400]}") from exc
        self.module = net.eval().requires_grad_(False)
        self.batch_size = int(batch_size)
        self._device = torch.device("cpu")

    def describe(self) -> dict:
        return {"name": NAME, "sha256": self.sha256, "path": str(self.path), "preprocessing": PREPROCESSING}

    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        if images.device != self._device:  # the network follows the batches the engine hands it
            self.module.to(images.device)
            self._device = images.device
        parts = []
        with torch.inference_mode():
            for chunk in images.split(self.batch_size):
                parts.append(inception_outputs(self.module, InceptionFeatures.preprocess(chunk)))
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


_LOADED: dict[tuple, FullInception] = {}


def load_full_inception(path: str | os.PathLike, *, sha256: str = PYTORCH_FID_SHA256_PREFIX,
                        what: str = "") -> FullInception:
    """One ``FullInception`` per file and hash check in a process, so sFID and IS share one network (and the
    engine runs it once per batch)."""
    resolved = Path(path).expanduser().resolve()
    stat = resolved.stat() if resolved.is_file() else None
    key = (str(resolved), stat.st_size if stat else None, stat.st_mtime_ns if stat else None, sha256)
    if key not in _LOADED:
        _LOADED[key] = FullInception(resolved, sha256=sha256, what=what)
    return _LOADED[key]
