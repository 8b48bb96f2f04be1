"""FD-DINOv2's feature network: the class token of a DINOv2 ViT from a local weights file, through timm.

Stein et al. (2023, "Exposing flaws of generative model evaluation metrics", dgm-eval) replace Inception by
DINOv2 ViT-L/14; the field's diffusion papers (e.g. EDM2) report FD-DINOv2 with ViT-L/14 too, while the issue
of this project asks for ViT-B/14, the REPA teacher. Either is a timm name away. Preprocessing follows
dgm-eval: images resized to 224 x 224 with bicubic interpolation, then ImageNet mean/std; the feature is the
final normalised class token (DINOv2's ``x_norm_clstoken``, timm's ``forward_head(..., pre_logits=True)``).

The model is built and loaded by ``specmatch.alignment.teachers.TimmTeacher`` (the REPA and VA-VAE loader:
local file only, sha256 check, timm's checkpoint converter for the original DINOv2 ``.pth``); this class only
takes the class token instead of the patch tokens.
"""

from __future__ import annotations

from torch import Tensor

from specmatch.alignment.teachers import TimmTeacher

INPUT_SIZE = 224
PREPROCESSING = "clamp [-1, 1] -> bicubic resize to 224x224 -> [0, 1] -> ImageNet mean/std (dgm-eval)"


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
        return {"cls": super().forward(images.clamp(-1.0, 1.0))}
