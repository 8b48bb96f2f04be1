"""Built-in perceptual distances and discriminators for autoencoder reconstruction losses."""

import attrs

from specmatch import DiscriminatorSpec, Facts, FileNeed, PerceptualSpec, hookimpl, param


@attrs.frozen(kw_only=True)
class STLPIPSParams:
    net: str = param("alex", doc="backbone whose bundled weights ship with stlpips-pytorch",
                     choices=("alex", "vgg"))


def build_stlpips(params: STLPIPSParams, ctx):
    from specmatch.losses.perceptual import STLPIPS

    return STLPIPS(net=params.net)


@attrs.frozen(kw_only=True)
class LPIPSParams:
    net: str = param("vgg", doc="LPIPS backbone", choices=("vgg", "alex"))
    weights: str = param("", doc="local backbone weights file ('' = the user's torch hub cache)", path=True)


def lpips_facts(params: LPIPSParams) -> Facts:
    # the torch hub cache ('') is looked up when built; an explicit file is checked by validate
    return Facts(files=[FileNeed(param="weights", path=params.weights, what=f"LPIPS {params.net} backbone "
                                                                            f"weights")] if params.weights else [])


def build_lpips(params: LPIPSParams, ctx):
    from specmatch.losses.perceptual import LPIPS

    return LPIPS(net=params.net, weights=str(ctx.resolve_path(params.weights)) if params.weights else None)


@attrs.frozen(kw_only=True)
class PatchGANParams:
    base_channels: int = param(64, doc="channels of the first layer", ge=1, le=4096)
    n_layers: int = param(3, doc="strided conv blocks", ge=1, le=16)
    conv_std: float = param(0.2, doc="conv init std (the authors' code uses 0.2)", gt=0)


def build_patchgan(params: PatchGANParams, ctx):
    from specmatch.nn.discriminator import PatchGAN, init_patchgan_weights

    model = PatchGAN(base_channels=params.base_channels, n_layers=params.n_layers)
    init_patchgan_weights(model, conv_std=params.conv_std)
    return model


@hookimpl
def specmatch_perceptual_losses():
    yield PerceptualSpec(name="stlpips", factory=build_stlpips, params=STLPIPSParams, aliases=("st-lpips",),
                         summary="shift-tolerant LPIPS (stlpips-pytorch, bundled weights); reported as ST-LPIPS")
    yield PerceptualSpec(name="lpips", factory=build_lpips, params=LPIPSParams, facts=lpips_facts,
                         summary="LPIPS (lpips package); backbone weights from a local file, never downloaded")


@hookimpl
def specmatch_discriminators():
    yield DiscriminatorSpec(name="patchgan", factory=build_patchgan, params=PatchGANParams,
                            summary="PatchGAN (pix2pix/taming) with hinge loss; 256^2 -> 30x30 logits")
