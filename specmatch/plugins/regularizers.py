"""Built-in latent regularizers: KL (SD-VAE), ESM and DSM (Spectrum Matching), VA-VAE, EQ-VAE and scale
equivariance. Each is a small ``nn.Module`` (built inside its factory) following
:class:`specmatch.LatentRegularizer`; the math lives in ``specmatch.spectral`` and ``specmatch.losses``.
"""

from typing import Optional

import attrs

from specmatch import Facts, ParamError, RegularizerSpec, hookimpl, param


# -- parameter records -----------------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class ESMParams:
    delta: float = param(1.0, doc="tilt of the image spectrum by (k+1)^delta (0: match the image itself)",
                         ge=-16, le=16)
    n_bins: int = param(16, doc="radial frequency bins", ge=1, le=4096)
    center: str = param("mean", doc="subtract each channel's spatial mean first", choices=("mean", "none"))
    remove_dc: bool = param(True, doc="zero the DC coefficient's power")
    log_power: bool = param(True, doc="compare log(1 + power) profiles")
    loss: str = param("kl", doc="KL(target || latent) or MSE of the distributions", choices=("kl", "l2"))
    blur: str = param("reference", doc="image low-pass before resizing: 'reference' = the authors' rule "
                                       "(Gaussian 7/1.2, skipped when the latent is 32 wide), or 'none'",
                      choices=("reference", "none"))


@attrs.frozen(kw_only=True)
class DSMParams:
    block_size: int = param(8, doc="DCT block side b (image and latent sides must be multiples)", ge=1, le=1024)
    mask_levels: tuple[int, ...] = param((0, 8, 10, 12), doc="levels k: zero u+v >= 2(b-1)-(k-1); 0 = no mask",
                                         ge=0)
    probabilities: Optional[tuple[float, ...]] = param(None, doc="probability of each level (omit: uniform)",
                                                       ge=0)


@attrs.frozen(kw_only=True)
class VAVAEParams:
    margin_cos: float = param(0.5, doc="cosine margin m2 of the per-token term", ge=0, le=2)
    margin_dist: float = param(0.25, doc="margin m1 of the distance-matrix term", ge=0, le=2)
    cos_weight: float = param(1.0, doc="weight of the margin cosine term", ge=0)
    dist_weight: float = param(1.0, doc="weight of the margin distance-matrix term", ge=0)


@attrs.frozen(kw_only=True)
class EQVAEParams:
    p_prior: float = param(0.5, doc="probability of the equivariance branch", ge=0, le=1)
    p_prior_s: float = param(0.25, doc="else: probability of reconstructing a downscaled image", ge=0, le=1)
    min_scale_32: int = param(8, doc="smallest scale in 32nds (scales 8/32 ... 31/32)", ge=1, le=31)
    rotations: tuple[int, ...] = param((1, 2, 3), doc="rot90 multiples to draw from (0 = none)", ge=0, le=3)


@attrs.frozen(kw_only=True)
class ScaleEquivarianceParams:
    factors: tuple[int, ...] = param((2, 4), doc="downsampling factors drawn uniformly per step (divisors of "
                                                 "the latent side)", ge=2)
    antialias: bool = param(True, doc="antialiased bilinear downsampling")


# -- facts (what validate checks; no torch) --------------------------------------------------------------

def dsm_facts(params: DSMParams) -> Facts:
    p = params
    if not p.mask_levels:
        raise ParamError("mask_levels", "expected at least one level")
    if p.probabilities is not None and len(p.probabilities) != len(p.mask_levels):
        raise ParamError("probabilities", f"expected {len(p.mask_levels)} values (one per mask level); got "
                                          f"{len(p.probabilities)}")
    if p.probabilities is not None and sum(p.probabilities) <= 0:
        raise ParamError("probabilities", "expected a positive sum")

    def check_latent(shape):
        if shape[1] % p.block_size or shape[2] % p.block_size:
            raise ParamError("block_size", f"the latent side {shape[1]} is not a multiple of block_size "
                                           f"{p.block_size}")

    return Facts(check_latent=check_latent)


def eqvae_facts(params: EQVAEParams) -> Facts:
    if not params.rotations:
        raise ParamError("rotations", "expected at least one rot90 multiple")
    return Facts()


def scale_equivariance_facts(params: ScaleEquivarianceParams) -> Facts:
    if not params.factors:
        raise ParamError("factors", "expected at least one factor")

    def check_latent(shape):
        for f in params.factors:
            if shape[1] % f:
                raise ParamError("factors", f"the latent side {shape[1]} is not divisible by {f}")

    return Facts(check_latent=check_latent)


# -- factories (torch imported here only) ----------------------------------------------------------------

def build_kl(params, ctx):
    from specmatch.plugins._regularizer_modules import KLRegularizer

    return KLRegularizer()


def build_esm(params: ESMParams, ctx):
    from specmatch.plugins._regularizer_modules import ESMRegularizer

    return ESMRegularizer(params)


def build_dsm(params: DSMParams, ctx):
    from specmatch.plugins._regularizer_modules import DSMRegularizer

    dsm_facts(params)
    return DSMRegularizer(params)


def build_vavae(params: VAVAEParams, ctx):
    from specmatch.plugins._regularizer_modules import VAVAERegularizer

    ae = ctx.upstream["autoencoder"]
    teacher = ctx.upstream["alignment"]
    return VAVAERegularizer(params, latent_channels=ae.latent_channels, feature_dim=teacher.feature_dim)


def build_eqvae(params: EQVAEParams, ctx):
    from specmatch.plugins._regularizer_modules import EQVAERegularizer

    eqvae_facts(params)
    return EQVAERegularizer(params)


def build_scale_equivariance(params: ScaleEquivarianceParams, ctx):
    from specmatch.plugins._regularizer_modules import ScaleEquivarianceRegularizer

    scale_equivariance_facts(params)
    return ScaleEquivarianceRegularizer(params)


@hookimpl
def specmatch_regularizers():
    # adaptive_layers: the reference layers each loss depends on (a pair transform has no loss: none)
    yield RegularizerSpec(name="kl", factory=build_kl, needs={"posterior"}, adaptive_layers={"encoder.last"},
                          summary="SD-VAE KL to N(0, I): per-sample sum over C,H,W, batch mean (paper: 1e-6)")
    yield RegularizerSpec(name="esm", factory=build_esm, params=ESMParams, adaptive_layers={"encoder.last"},
                          summary="Encoding Spectrum Matching: latent radial DCT spectrum to the image's, "
                                  "flattened by f^delta (paper: weight 0.01, delta 1, no KL)")
    yield RegularizerSpec(name="dsm", factory=build_dsm, params=DSMParams, transforms_pair=True,
                          facts=dsm_facts, adaptive_layers=(),
                          summary="Decoding Spectrum Matching: one shared block-DCT low-pass of latent and "
                                  "image; reconstruct the low-passed image (no loss term)")
    yield RegularizerSpec(name="vavae", factory=build_vavae, params=VAVAEParams, needs={"features", "encoder"},
                          aliases=("vf",), adaptive_layers={"encoder.last"},
                          summary="VA-VAE vision-foundation loss: margin cosine + margin distance matrix to "
                                  "teacher features (use adaptive weight at encoder.last)")
    yield RegularizerSpec(name="eqvae", factory=build_eqvae, params=EQVAEParams, transforms_pair=True,
                          facts=eqvae_facts, adaptive_layers=(),
                          needs={"encoder", "decoder"}, aliases=("eq-vae",),
                          summary="EQ-VAE: reconstruct scaled/rotated images from equally transformed latents")
    yield RegularizerSpec(name="scale-equivariance", factory=build_scale_equivariance,
                          params=ScaleEquivarianceParams, needs={"decoder"}, aliases=("se",),
                          facts=scale_equivariance_facts, adaptive_layers={"encoder.last", "decoder.last"},
                          summary="decode a 2x/4x downsampled latent and match the equally downsampled image")
