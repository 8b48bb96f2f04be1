"""Built-in evaluation metrics, registered like a third party's (kind ``metric``; see docs/evaluation.md).

Per-image metrics (reconstruction pairs): ``psnr``, ``psnr-uint8``, ``ssim``, ``l1``, ``lpips``. Set metrics (on
the feature network's statistics of two image sets): ``fid``, ``kid``, ``precision-recall``; on feature streams
of networks the user provides (``specmatch.FeatureStream``): ``sfid``, ``inception-score``, ``fd-dinov2``.
"""

import attrs

from specmatch import Facts, FileNeed, MetricSpec, ParamError, hookimpl, param
from specmatch.metrics.weights_files import (DINOV2_MODEL, LPIPS_VGG_LINEAR_FILE, PYTORCH_FID_FILE,
                                             PYTORCH_FID_SHA256_PREFIX, VGG16_FILE)


def build_psnr(params, ctx):
    from specmatch.metrics.builtin import PerImage
    from specmatch.metrics.reconstruction import psnr

    return PerImage(psnr)


def build_psnr_uint8(params, ctx):
    from specmatch.metrics.builtin import PerImage
    from specmatch.metrics.reconstruction import psnr_uint8

    return PerImage(psnr_uint8)


def build_ssim(params, ctx):
    from specmatch.metrics.builtin import PerImage
    from specmatch.metrics.reconstruction import ssim

    return PerImage(ssim)


def build_l1(params, ctx):
    from specmatch.metrics.builtin import PerImage, l1

    return PerImage(l1)


def build_fid(params, ctx):
    from specmatch.metrics.builtin import Frechet

    return Frechet()


@attrs.frozen(kw_only=True)
class KIDParams:
    subset_size: int = param(0, doc="features per subset (clipped to the kept subsets; 0 = "
                                    "evaluation.kid_subset_size)", ge=0)
    num_subsets: int = param(100, doc="random subset pairs averaged (torch-fidelity: 100)", ge=1)


def build_kid(params: KIDParams, ctx):
    from specmatch.metrics.builtin import KernelDistance

    evaluation = ctx.upstream.get("evaluation")
    size = params.subset_size or (evaluation.kid_subset_size if evaluation is not None else 1000)
    return KernelDistance(subset_size=size, num_subsets=params.num_subsets)


@attrs.frozen(kw_only=True)
class PrecisionRecallParams:
    k: int = param(3, doc="nearest neighbour defining each feature's ball (Kynkaanniemi et al.: 3)", ge=1)


def build_precision_recall(params: PrecisionRecallParams, ctx):
    from specmatch.metrics.builtin import PrecisionRecall

    return PrecisionRecall(k=params.k)


# -- sFID and Inception Score: pytorch-fid's full Inception network from the user's file ----------------------

SPATIAL_STREAM, LOGITS_STREAM = "inception-spatial", "inception-logits"


@attrs.frozen(kw_only=True)
class FullInceptionParams:
    weights: str = param("", doc=f"pytorch-fid's Inception weights file {PYTORCH_FID_FILE} (a state dict with the "
                                 "logits and mixed_6 features; never downloaded)", path=True)
    sha256: str = param(PYTORCH_FID_SHA256_PREFIX, doc="expected sha256 of the file, or a prefix of it (default: the "
                                                       "8 hex digits its name carries); '' = not checked")


@attrs.frozen(kw_only=True)
class InceptionScoreParams(FullInceptionParams):
    splits: int = param(10, doc="consecutive blocks of item indices the score is averaged over (ADM, "
                                "Salimans et al.: 10)", ge=1)


def _weights_facts(name: str):
    def facts(params):
        if not params.weights:
            raise ParamError("weights", f"{name} needs pytorch-fid's Inception weights file {PYTORCH_FID_FILE}: set "
                                        f"[evaluation.metric_params.{name}] weights = \"path/to/{PYTORCH_FID_FILE}\" "
                                        f"(specmatch never downloads it)")
        return Facts(files=[FileNeed(param="weights", path=params.weights,
                                     what=f"pytorch-fid Inception weights ({PYTORCH_FID_FILE})")])
    return facts


def _full_inception(params, ctx, name: str):
    from specmatch.metrics.inception_full import load_full_inception

    if not params.weights:
        _weights_facts(name)(params)  # raises the ParamError validate reports
    return load_full_inception(ctx.resolve_path(params.weights), sha256=params.sha256,
                               what=f"evaluation.metric_params.{name}.weights")


def build_sfid(params: FullInceptionParams, ctx):
    from specmatch import FeatureStream
    from specmatch.metrics.builtin import StreamFrechet
    from specmatch.metrics.inception_full import NAME, SPATIAL_DIM
    from specmatch.metrics.streaming import StreamMoments

    net = _full_inception(params, ctx, "sfid")
    stream = FeatureStream(name=SPATIAL_STREAM, network=net, output="spatial", network_name=NAME,
                           accumulator=StreamMoments.factory(SPATIAL_DIM, NAME))
    return StreamFrechet("sfid", (stream,))


def build_inception_score(params: InceptionScoreParams, ctx):
    from specmatch import FeatureStream
    from specmatch.metrics.builtin import InceptionScore
    from specmatch.metrics.inception_full import NAME, NUM_LOGITS
    from specmatch.metrics.streaming import SplitSoftmaxKL

    net = _full_inception(params, ctx, "inception-score")
    stream = FeatureStream(name=f"{LOGITS_STREAM}-{params.splits}", network=net, output="logits", network_name=NAME,
                           accumulator=SplitSoftmaxKL.factory(params.splits, NUM_LOGITS), sets=("fake",))
    return InceptionScore((stream,))


# -- FD-DINOv2 ------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class FDDinov2Params:
    weights: str = param("", doc="local DINOv2 weights (.safetensors/.pth: the timm hub file or the original "
                                 "DINOv2 checkpoint); never downloaded", path=True)
    model: str = param(DINOV2_MODEL, doc="timm name of the network (Stein et al. use ViT-L/14: "
                                         "vit_large_patch14_dinov2.lvd142m)")
    sha256: str = param("", doc="expected sha256 of the weights file ('' = not checked; recorded anyway)")
    input_size: int = param(224, doc="side the images are resized to, bicubic (dgm-eval: 224)", ge=14, le=2048)


def fd_dinov2_facts(params: FDDinov2Params):
    if not params.weights:
        raise ParamError("weights", f"fd-dinov2 needs a local DINOv2 weights file for {params.model}: set "
                                    "[evaluation.metric_params.fd-dinov2] weights = \"path/to/model.safetensors\" "
                                    "(specmatch never downloads it)")
    return Facts(files=[FileNeed(param="weights", path=params.weights, what=f"DINOv2 weights ({params.model})")])


def build_fd_dinov2(params: FDDinov2Params, ctx):
    from specmatch import FeatureStream
    from specmatch.metrics.builtin import StreamFrechet
    from specmatch.metrics.dinov2 import DINOv2ClassToken
    from specmatch.metrics.streaming import StreamMoments

    fd_dinov2_facts(params)
    net = DINOv2ClassToken(params.model, ctx.resolve_path(params.weights), sha256=params.sha256 or None,
                           input_size=params.input_size)
    stream = FeatureStream(name="dinov2-cls", network=net, output="cls", network_name=net.name,
                           accumulator=StreamMoments.factory(net.feature_dim, net.name))
    return StreamFrechet("fd_dinov2", (stream,))


# -- rLPIPS ---------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LPIPSParams:
    variant: str = param("lpips", doc="'lpips': LPIPS v0.1 (Zhang et al. 2018) from the two files below; "
                                      "'shift-tolerant': ST-LPIPS, whose weights ship with stlpips-pytorch",
                         choices=("lpips", "shift-tolerant"))
    net: str = param("vgg", doc="backbone (rLPIPS as the field reports it: vgg)", choices=("vgg", "alex"))
    backbone: str = param("", doc=f"torchvision's ImageNet backbone file ({VGG16_FILE} for vgg; '' = the torch hub "
                                  "cache's checkpoints folder); variant lpips only", path=True)
    linear: str = param("", doc=f"LPIPS v0.1's linear-layer weights of the backbone ({LPIPS_VGG_LINEAR_FILE} for "
                                "vgg); variant lpips only", path=True)


def lpips_facts(params: LPIPSParams):
    if params.variant != "lpips":
        return Facts()
    if not params.linear:
        raise ParamError("linear", f"lpips needs LPIPS v0.1's {params.net} linear-layer weights (for vgg: "
                                   f"{LPIPS_VGG_LINEAR_FILE}): set [evaluation.metric_params.lpips] linear = "
                                   f"\"path/to/{params.net}.pth\", or variant = \"shift-tolerant\" (weights bundled)")
    files = [FileNeed(param="linear", path=params.linear, what=f"LPIPS {params.net} linear layers")]
    if params.backbone:
        files.append(FileNeed(param="backbone", path=params.backbone, what=f"torchvision ImageNet {params.net}"))
    return Facts(files=files)


def build_lpips(params: LPIPSParams, ctx):
    from specmatch.losses.perceptual import LPIPSMetric

    lpips_facts(params)
    if params.variant == "shift-tolerant":
        return LPIPSMetric.shift_tolerant(params.net)
    return LPIPSMetric.from_files(backbone=ctx.resolve_path(params.backbone) if params.backbone else None,
                                  linear=ctx.resolve_path(params.linear), net=params.net)


@hookimpl
def specmatch_metrics():
    return [
        MetricSpec(name="psnr", factory=build_psnr, per_image=True,
                   summary="PSNR in dB on float images in [-1, 1] (data range 2), mean over images"),
        MetricSpec(name="psnr-uint8", factory=build_psnr_uint8, per_image=True,
                   summary="PSNR in dB on 8-bit levels (as a saved PNG), mean over images"),
        MetricSpec(name="ssim", factory=build_ssim, per_image=True,
                   summary="SSIM (torchmetrics, Gaussian window 11, data range 2), mean over images"),
        MetricSpec(name="l1", factory=build_l1, per_image=True, summary="mean absolute pixel error"),
        MetricSpec(name="fid", factory=build_fid,
                   summary="Frechet distance of the feature Gaussians (Heusel et al. 2017)"),
        MetricSpec(name="kid", factory=build_kid, params=KIDParams, needs_features=True,
                   summary="kernel inception distance, unbiased MMD^2 with the cubic kernel (Binkowski et al. "
                           "2018), on the kept feature subsets"),
        MetricSpec(name="precision-recall", factory=build_precision_recall, params=PrecisionRecallParams,
                   needs_features=True,
                   summary="improved precision and recall, k-NN balls (Kynkaanniemi et al. 2019), on the kept "
                           "feature subsets"),
        MetricSpec(name="sfid", factory=build_sfid, params=FullInceptionParams, facts=_weights_facts("sfid"),
                   summary="spatial FID (Nash et al. 2021, as ADM's evaluator): Frechet distance of the first 7 "
                           "channels of Inception's mixed_6/conv (17x17x7 = 2023-d); needs pytorch-fid's weights"),
        MetricSpec(name="inception-score", factory=build_inception_score, params=InceptionScoreParams,
                   facts=_weights_facts("inception-score"),
                   summary="Inception Score (Salimans et al. 2016) of the generated images, 1008-way softmax, "
                           "mean over splits; needs pytorch-fid's weights"),
        MetricSpec(name="fd-dinov2", factory=build_fd_dinov2, params=FDDinov2Params, facts=fd_dinov2_facts,
                   summary="Frechet distance of DINOv2 class tokens (Stein et al. 2023, dgm-eval); needs a local "
                           "DINOv2 file"),
        MetricSpec(name="lpips", factory=build_lpips, params=LPIPSParams, facts=lpips_facts, per_image=True,
                   summary="LPIPS (Zhang et al. 2018) of reconstructions, VGG, mean over images (rLPIPS); needs "
                           "local VGG and LPIPS weights, or the bundled ST-LPIPS"),
    ]
