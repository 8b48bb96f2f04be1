"""Built-in alignment targets (teachers): timm models from local weights, and an offline stand-in."""

import attrs

from specmatch import AlignmentSpec, Facts, FileNeed, hookimpl, param


@attrs.frozen(kw_only=True)
class TimmTeacherParams:
    model: str = param("vit_large_patch14_dinov2.lvd142m", doc="timm model name (VA-VAE: DINOv2 ViT-L/14)")
    weights: str = param(doc="local weights file (.safetensors/.pth); nothing is downloaded", path=True)
    sha256: str = param("", doc="expected sha256 of the weights file ('' = not checked)")
    input_size: int = param(0, doc="teacher input side (0 = the model's pretrained config)", ge=0, le=8192)
    normalize: bool = param(True, doc="apply the model's mean/std (VA-VAE feeds [-1, 1] images: false)")
    interpolation: str = param("", doc="resize mode to the input size ('' = the model's config)",
                               choices=("", "bilinear", "bicubic"))


#: Feature widths of the DINOv2 ViTs (timm names start with these), for ``components info`` and checks.
DINOV2_WIDTHS = {"vit_small_patch14_dinov2": 384, "vit_base_patch14_dinov2": 768,
                 "vit_large_patch14_dinov2": 1024, "vit_giant_patch14_dinov2": 1536}


def timm_teacher_facts(params: TimmTeacherParams) -> Facts:
    width = next((w for name, w in DINOV2_WIDTHS.items() if params.model.startswith(name)), None)
    return Facts(feature_dim=width, files=[FileNeed(param="weights", path=params.weights,
                                                    what=f"weights of the timm model {params.model!r}")])


#: Channels of the ST-LPIPS AlexNet conv stages 1..5.
ALEX_WIDTHS = (64, 192, 384, 256, 256)


def stlpips_teacher_facts(params: "STLPIPSTeacherParams") -> Facts:
    return Facts(feature_dim=ALEX_WIDTHS[params.layer - 1])


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
    yield AlignmentSpec(name="timm", factory=build_timm_teacher, params=TimmTeacherParams, facts=timm_teacher_facts,
                        summary="any timm model (e.g. DINOv2) from a local weights file; patch tokens as a grid")
    yield AlignmentSpec(name="stlpips-alex", factory=build_stlpips_teacher, params=STLPIPSTeacherParams,
                        facts=stlpips_teacher_facts,
                        stand_in=True,
                        summary="STAND-IN teacher: ST-LPIPS AlexNet conv features (offline; not DINOv2)")
