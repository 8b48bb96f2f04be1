"""The weights files users provide for the metrics whose networks specmatch does not bundle (plain data, no torch,
so ``validate`` and ``components info`` can name them)."""

#: pytorch-fid's FID Inception weights (a state dict with logits and the mixed_6 features): sFID and IS
PYTORCH_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
#: torch.hub names a release file ``<name>-<first 8 hex digits of its sha256>``; pytorch-fid's follows it
PYTORCH_FID_SHA256_PREFIX = "6726825d"

#: FD-DINOv2's network (Stein et al. 2023; dgm-eval): DINOv2 ViT-B/14, in timm's name
DINOV2_MODEL = "vit_base_patch14_dinov2.lvd142m"

#: LPIPS (Zhang et al. 2018) with a VGG-16: torchvision's ImageNet backbone and LPIPS v0.1's linear layers
VGG16_FILE = "vgg16-397923af.pth"
LPIPS_VGG_LINEAR_FILE = "vgg.pth (lpips package, weights/v0.1/vgg.pth)"
