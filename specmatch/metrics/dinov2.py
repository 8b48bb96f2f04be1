"""FD-DINOv2's feature network: the class token of a DINOv2 ViT from a local weights file, through timm.

Stein et al. (2023, "Exposing flaws of generative model evaluation metrics", dgm-eval) replace Inception by
DINOv2 ViT-L/14; the field's diffusion papers (e.g. EDM2) report FD-DINOv2 with ViT-L/14 too, while the issue
of this project asks for ViT-B/14, the REPA teacher. Either is a timm name away. Preprocessing follows
dgm-eval (``dgm_eval/models/dinov2.py``): torchvision's ``Resize((224, 224), BICUBIC)`` of the PIL image (PIL's
bicubic, antialiased when shrinking, values clipped to 8-bit range), then ImageNet mean/std. Here: bicubic
``F.interpolate`` with ``antialias=True`` (torch's match of PIL's filter) on the [-1, 1] tensor, clamped back
to [-1, 1]. The feature is the final normalised class token (what DINOv2's hub model returns, its
``x_norm_clstoken``; timm's ``forward_head(..., pre_logits=True)``).

The model is built and loaded by ``specmatch.alignment.teachers.TimmTeacher`` (the REPA and VA-VAE loader:
local file only, sha256 check, timm's checkpoint converter for the original DINOv2 ``.pth``); this class only
takes the class token instead of the patch tokens.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from specmatch.alignment.teachers import TimmTeacher

INPUT_SIZE = 224
PREPROCESSING = ("clamp [-1, 1] -> bicubic resize to 224x224 (antialiased, clamped) -> [0, 1] -> ImageNet mean/std "
                 "(dgm-eval)")


def resize_like_pil(images: Tensor, size: tuple[int, int]) -> Tensor:
    """[-1, 1] images resized as PIL's bicubic resize of their 8-bit files would be (antialiased when shrinking,
    clipped to the value range)."""
    x = F.interpolate(images.float().clamp(-1.0, 1.0), size=size, mode="bicubic", align_corners=False,
                      antialias=True)
    return x.clamp(-1.0, 1.0)


class DINOv2ClassToken(TimmTeacher):
    """Images (B, 3, H, W) in [-1, 1] -> ``{"cls": (B, D)}`` float32 (D = 768 for ViT-B/14).

    Arguments as ``TimmTeacher``; ``input_size`` defaults to 224 and ``interpolation`` to bicubic.
    """

    def __init__(self, model_name: str, weights_path, *, sha256: str | None = None, input_size: int = INPUT_SIZE,
                 model_kwargs: dict | None = None):
        super().__init__(model_name, weights_path, sha256=sha256, input_size=input_size, interpolation="bicubic",
                         normalize=True, model_kwargs=model_kwargs)
        self.name = f"{model_name} class token"

    def _features(self, x: Tensor) -> Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"{self.name}: expected images (B, 3, H, W) in [-1, 1], got {tuple(images.shape)}")
        x = images.float().clamp(-1.0, 1.0)
        if tuple(x.shape[-2:]) != self.input_size:
            x = resize_like_pil(x, self.input_size)
        return {"cls": self._features(self._preprocess(x)).float()}
