"""Built-in alignment targets (teachers): timm models from local weights, and an offline stand-in."""

import attrs

from specmatch import AlignmentSpec, hookimpl, param


@attrs.frozen(kw_only=True)
class TimmTeacherParams:
    model: str = param("vit_large_patch14_dinov2.lvd142m", doc="timm model name (VA-VAE: DINOv2 ViT-L/14)")
    weights: str = param(doc="local weights file (.safetensors/.pth); nothing is downloaded")
    sha256: str = param("", doc="expected sha256 of the weights file ('' = not checked)")
    input_size: int = param(0, doc="teacher input side (0 = the model's pretrained config)", ge=0)
    normalize: bool = param(True, doc="apply the model's mean/std (VA-VAE feeds [-1, 1] images: false)")
    interpolation: str = param("", doc="resize mode to the input size ('' = the model's config)",
                               choices=("", "bilinear", "bicubic"))


def build_timm_teacher(params: TimmTeacherParams, ctx):
    from specmatch.alignment.teachers import TimmTeacher

    return TimmTeacher(params.model, ctx.resolve_path(params.weights), sha256=params.sha256 or None,
                       input_size=params.input_size or None, normalize=params.normalize,
                       interpolation=params.interpolation or None)


@attrs.frozen(kw_only=True)
class STLPIPSTeacherParams:
    net: str = param("alex", doc="ST-LPIPS backbone", choices=("alex",))
    layer: int = param(2, doc="conv stage whose features are the target", ge=1, le=5)


def build_stlpips_teacher(params: STLPIPSTeacherParams, ctx):
    from specmatch.alignment.teachers import STLPIPSStandInTeacher

    return STLPIPSStandInTeacher(net=params.net, layer=params.layer)


@hookimpl
def specmatch_alignment_targets():
    yield AlignmentSpec(name="timm", factory=build_timm_teacher, params=TimmTeacherParams,
                        summary="any timm model (e.g. DINOv2) from a local weights file; patch tokens as a grid")
    yield AlignmentSpec(name="stlpips-alex", factory=build_stlpips_teacher, params=STLPIPSTeacherParams,
                        stand_in=True,
                        summary="STAND-IN teacher: ST-LPIPS AlexNet conv features (offline; not DINOv2)")
