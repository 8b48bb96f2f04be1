"""Built-in diffusion components: a DiT denoiser, the flow-matching objective and ODE samplers."""

from typing import Optional

import attrs

from specmatch import DenoiserSpec, ObjectiveSpec, SamplerSpec, hookimpl, param

DIT_PRESET_NAMES = ("dit-micro", "dit-tiny", "dit-s", "dit-b")


@attrs.frozen(kw_only=True)
class DiTParams:
    preset: str = param("dit-tiny", doc="size preset; the fields below override it", choices=DIT_PRESET_NAMES)
    patch_size: int = param(1, doc="latent patch size (the latent side must be a multiple)", ge=1)
    hidden_size: Optional[int] = param(None, doc="token width", ge=8)
    depth: Optional[int] = param(None, doc="transformer blocks", ge=1)
    num_heads: Optional[int] = param(None, doc="attention heads", ge=1)
    mlp_ratio: Optional[float] = param(None, doc="MLP width / token width", gt=0)
    class_dropout: float = param(0.1, doc="label dropout for classifier-free guidance", ge=0, le=1)


def build_dit(params: DiTParams, ctx):
    from specmatch.diffusion.dit import build_dit as _build

    c, h, w = ctx.upstream["latent_shape"]
    overrides = {k: getattr(params, k) for k in ("hidden_size", "depth", "num_heads", "mlp_ratio")
                 if getattr(params, k) is not None}
    return _build(params.preset, input_size=h, in_channels=c, patch_size=params.patch_size,
                  num_classes=ctx.upstream.get("num_classes", 0), class_dropout=params.class_dropout, **overrides)


@attrs.frozen(kw_only=True)
class FlowMatchingParams:
    time_sampling: str = param("uniform", doc="t ~ U(0,1) or logit-normal", choices=("uniform", "logit-normal"))
    logit_mean: float = param(0.0, doc="logit-normal mean")
    logit_std: float = param(1.0, doc="logit-normal std", gt=0)


def build_flow_matching(params: FlowMatchingParams, ctx):
    from specmatch.diffusion.flow_matching import FlowMatching

    return FlowMatching(time_sampling=params.time_sampling, logit_mean=params.logit_mean,
                        logit_std=params.logit_std)


@attrs.frozen(kw_only=True)
class ODESamplerParams:
    steps: int = param(50, doc="integration steps", ge=1)
    cfg_scale: float = param(1.0, doc="classifier-free guidance scale (1 = off)", ge=0)


def _sampler(kind: str):
    def build(params: ODESamplerParams, ctx):
        from functools import partial

        from specmatch.diffusion import samplers

        fn = {"euler": samplers.euler_sample, "heun": samplers.heun_sample}[kind]
        return partial(fn, steps=params.steps, cfg_scale=params.cfg_scale)

    return build


@hookimpl
def specmatch_denoisers():
    yield DenoiserSpec(name="dit", factory=build_dit, params=DiTParams, alignable=True,
                       summary="DiT with adaLN-Zero (timm layers); unconditional or class-conditional")


@hookimpl
def specmatch_objectives():
    yield ObjectiveSpec(name="flow-matching", factory=build_flow_matching, params=FlowMatchingParams,
                        summary="linear interpolant x_t = (1-t) x + t eps, velocity target eps - x (SiT/REPA)")


@hookimpl
def specmatch_samplers():
    yield SamplerSpec(name="euler", factory=_sampler("euler"), params=ODESamplerParams,
                      summary="Euler ODE sampler from t=1 (noise) to t=0")
    yield SamplerSpec(name="heun", factory=_sampler("heun"), params=ODESamplerParams,
                      summary="Heun (2nd order) ODE sampler")
