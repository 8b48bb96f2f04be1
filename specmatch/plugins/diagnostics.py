"""Built-in diffusability diagnostics (kind ``diagnostic``), registered like a third party's: a spec, a params
class and a lazy factory each; the implementations are in ``specmatch/diagnostics/`` (docs/evaluation.md,
section "Diagnostics")."""

import attrs

from specmatch import DiagnosticSpec, Facts, ParamError, hookimpl, param

_BATCH = "images encoded or decoded at a time"
_FRECHET = "also compute rFID with the Inception network (needs the bundled file; false: PSNR only)"
_NETWORK = "TorchScript feature network file for rFID ('' = the bundled Inception network)"


@attrs.frozen(kw_only=True)
class LatentSpectrumParams:
    deltas: tuple[float, ...] = param((0.0, 1.0), doc="delta-targets: image spectrum tilted by (k+1)^delta; "
                                                      "KL(target || latent) for each", ge=0)
    n_bins: int = param(16, doc="radial frequency bins", ge=2)
    batch_size: int = param(32, doc=_BATCH, ge=1)


def latent_spectrum_facts(params: LatentSpectrumParams) -> Facts:
    if not params.deltas:
        raise ParamError("deltas", "expected at least one delta")
    return Facts()


def build_latent_spectrum(params: LatentSpectrumParams, ctx):
    from specmatch.diagnostics.latent_spectrum import LatentSpectrum

    latent_spectrum_facts(params)
    return LatentSpectrum(deltas=params.deltas, n_bins=params.n_bins, batch_size=params.batch_size, seed=ctx.seed)


@attrs.frozen(kw_only=True)
class LowpassRFIDParams:
    levels: tuple[int, ...] = param((4,), doc="DSM mask levels k to sweep (the k highest of the 2b-1 DCT "
                                              "anti-diagonals of each block are zeroed; 0 = no low-pass)",
                                    ge=0, le=15)
    block_size: int = param(8, doc="DCT block size b (DSM's 8); must divide the image and latent sides", ge=1)
    frechet: bool = param(True, doc=_FRECHET)
    feature_network: str = param("", doc=_NETWORK, path=True)
    batch_size: int = param(32, doc=_BATCH, ge=1)


def lowpass_rfid_facts(params: LowpassRFIDParams) -> Facts:
    if not params.levels:
        raise ParamError("levels", "expected at least one mask level")
    top = 2 * params.block_size - 1
    for i, k in enumerate(params.levels):
        if k > top:
            raise ParamError(f"levels[{i}]", f"mask level {k} is above 2 * block_size - 1 = {top}")
    return Facts()


def build_lowpass_rfid(params: LowpassRFIDParams, ctx):
    from specmatch.diagnostics.lowpass_rfid import LowpassRFID

    lowpass_rfid_facts(params)
    return LowpassRFID(levels=params.levels, block_size=params.block_size, frechet=params.frechet,
                       feature_network=params.feature_network, batch_size=params.batch_size)


@attrs.frozen(kw_only=True)
class NoisedReconstructionParams:
    sigmas: tuple[float, ...] = param((0.0, 0.1, 0.2, 0.5, 1.0), doc="noise levels, in units of each latent "
                                                                     "channel's std over the analysed images", ge=0)
    frechet: bool = param(True, doc=_FRECHET)
    feature_network: str = param("", doc=_NETWORK, path=True)
    batch_size: int = param(32, doc=_BATCH, ge=1)


def noised_reconstruction_facts(params: NoisedReconstructionParams) -> Facts:
    if not params.sigmas:
        raise ParamError("sigmas", "expected at least one sigma")
    return Facts()


def build_noised_reconstruction(params: NoisedReconstructionParams, ctx):
    from specmatch.diagnostics.noised_reconstruction import NoisedReconstruction

    noised_reconstruction_facts(params)
    return NoisedReconstruction(sigmas=params.sigmas, seed=ctx.seed, frechet=params.frechet,
                                feature_network=params.feature_network, batch_size=params.batch_size)


@attrs.frozen(kw_only=True)
class EquivarianceParams:
    scales: tuple[float, ...] = param((0.5,), doc="downscaling factors tau (bilinear; 0.5 = 2x2 area average "
                                                  "without antialias)", gt=0, lt=1)
    rotations: tuple[int, ...] = param((1,), doc="clockwise quarter turns tau (1 = rot90)", ge=1, le=3)
    antialias: bool = param(False, doc="antialiased bilinear downscaling (false: EQ-VAE's transform)")
    batch_size: int = param(32, doc=_BATCH, ge=1)


def equivariance_facts(params: EquivarianceParams) -> Facts:
    if not params.scales and not params.rotations:
        raise ParamError("scales", "expected at least one scale or rotation")
    return Facts()


def build_equivariance(params: EquivarianceParams, ctx):
    from specmatch.diagnostics.equivariance import Equivariance

    equivariance_facts(params)
    return Equivariance(scales=params.scales, rotations=params.rotations, antialias=params.antialias,
                        batch_size=params.batch_size)


@attrs.frozen(kw_only=True)
class ChannelEigenspectrumParams:
    latent: str = param("sample", doc="posterior 'sample' (what the denoiser sees) or 'mean'",
                        choices=("sample", "mean"))
    batch_size: int = param(32, doc=_BATCH, ge=1)


def build_channel_eigenspectrum(params: ChannelEigenspectrumParams, ctx):
    from specmatch.diagnostics.channel_eigenspectrum import ChannelEigenspectrum

    return ChannelEigenspectrum(latent=params.latent, batch_size=params.batch_size, seed=ctx.seed)


@attrs.frozen(kw_only=True)
class LatentPCAParams:
    shown: int = param(8, doc="images (and their latent PCA pictures) in latent_pca.png", ge=1)
    batch_size: int = param(32, doc=_BATCH, ge=1)


def build_latent_pca(params: LatentPCAParams, ctx):
    from specmatch.diagnostics.latent_pca import LatentPCA

    return LatentPCA(shown=params.shown, batch_size=params.batch_size)


@hookimpl
def specmatch_diagnostics():
    yield DiagnosticSpec(name="latent-spectrum", factory=build_latent_spectrum, params=LatentSpectrumParams,
                         facts=latent_spectrum_facts,
                         output="spectrum.json", figures=("spectrum.png",), during_training=True,
                         summary="radial DCT band distributions of images and latents, KL to the delta-targets, "
                                 "log-log slopes (1 encoder pass per image)")
    yield DiagnosticSpec(name="lowpass-rfid", factory=build_lowpass_rfid, params=LowpassRFIDParams,
                         facts=lowpass_rfid_facts,
                         output="lowpass_rfid.json", figures=("lowpass_rfid.png",),
                         summary="FID and PSNR of decode(lowpass_k(z)) against lowpass_k(x), DSM's block-DCT mask "
                                 "(1 encoder + 1 decoder pass per level per image, Inception)")
    yield DiagnosticSpec(name="noised-reconstruction", factory=build_noised_reconstruction,
                         params=NoisedReconstructionParams, facts=noised_reconstruction_facts,
                         output="noised_reconstruction.json", figures=("noised_reconstruction.png",),
                         summary="PSNR and rFID of decode(z + sigma std_z eps) over a sigma grid "
                                 "(1 encoder + 1 decoder pass per sigma per image, Inception)")
    yield DiagnosticSpec(name="equivariance", factory=build_equivariance, params=EquivarianceParams,
                         facts=equivariance_facts,
                         output="equivariance.json",
                         summary="encoder and decoder relative errors under scale 1/2 and rot90 "
                                 "(2 encoder + 1 decoder pass per transform per image)")
    yield DiagnosticSpec(name="channel-eigenspectrum", factory=build_channel_eigenspectrum,
                         params=ChannelEigenspectrumParams, output="channel_eigenspectrum.json",
                         figures=("channel_eigenspectrum.png",),
                         during_training=True,
                         summary="eigenvalues, effective rank and condition number of the latent channel "
                                 "covariance (1 encoder pass per image)")
    yield DiagnosticSpec(name="latent-pca", factory=build_latent_pca, params=LatentPCAParams,
                         output="latent_pca.json", figures=("latent_pca.png",),
                         summary="3-component PCA of the latent as RGB (latent_pca.png), explained-variance "
                                 "ratios (1 encoder pass per image)")
