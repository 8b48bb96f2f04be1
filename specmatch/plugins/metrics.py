"""Built-in evaluation metrics, registered like a third party's (kind ``metric``; see docs/evaluation.md).

Per-image metrics (reconstruction pairs): ``psnr``, ``psnr-uint8``, ``ssim``, ``l1``. Set metrics (on the
feature network's statistics of two image sets): ``fid``, ``kid``, ``precision-recall``.
"""

import attrs

from specmatch import MetricSpec, hookimpl, param


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
    ]
