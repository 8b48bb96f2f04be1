"""Built-in diffusion components: a DiT denoiser, the flow-matching objective and ODE samplers."""

from typing import Optional

import attrs

from specmatch import DenoiserSpec, Facts, ObjectiveSpec, ParamError, SamplerSpec, hookimpl, param

#: Sizes of specmatch.diffusion.dit.DIT_PRESETS as plain data, so validating imports no torch (a test keeps
#: the two equal).
DIT_PRESET_SIZES = {
    "dit-micro": {"hidden_size": 64, "depth": 2, "num_heads": 2},
    "dit-tiny": {"hidden_size": 192, "depth": 6, "num_heads": 3},
    "dit-s": {"hidden_size": 384, "depth": 12, "num_heads": 6},
    "dit-b": {"hidden_size": 768, "depth": 12, "num_heads": 12},
}
DIT_PRESET_NAMES = tuple(DIT_PRESET_SIZES)


@attrs.frozen(kw_only=True)
class DiTParams:
    preset: str = param("dit-tiny", doc="size preset; the fields below override it", choices=DIT_PRESET_NAMES)
    patch_size: int = param(1, doc="latent patch size (the latent side must be a multiple)", ge=1, le=64)
    hidden_size: Optional[int] = param(None, doc="token width (a multiple of 4 and of num_heads)", ge=8, le=16384)
    depth: Optional[int] = param(None, doc="transformer blocks", ge=1, le=1024)
    num_heads: Optional[int] = param(None, doc="attention heads", ge=1, le=1024)
    mlp_ratio: Optional[float] = param(None, doc="MLP width / token width", gt=0, le=64)


def _dit_size(params: DiTParams) -> dict:
    size = dict(DIT_PRESET_SIZES[params.preset])
    size.update({k: getattr(params, k) for k in ("hidden_size", "depth", "num_heads") if getattr(params, k)})
    return size


def dit_facts(params: DiTParams) -> Facts:
    """Depth (the alignment taps); the width rules and the patch grid DiT checks when it is built."""
    size = _dit_size(params)
    key = "hidden_size" if params.hidden_size is not None else "num_heads"
    if size["hidden_size"] % size["num_heads"]:
        raise ParamError(key, f"hidden_size {size['hidden_size']} is not divisible by num_heads {size['num_heads']}")
    if size["hidden_size"] % 4:
        raise ParamError("hidden_size", f"expected a multiple of 4 (2-D sin-cos position embedding); got "
                                        f"{size['hidden_size']}")

    def check_latent(shape: tuple[int, int, int]) -> None:
        _, h, w = shape
        if h != w:
            raise ParamError("", f"DiT needs a square latent; got {h}x{w}")
        if h % params.patch_size:
            raise ParamError("patch_size", f"expected a divisor of the latent side {h}; got {params.patch_size}")

    return Facts(depth=size["depth"], check_latent=check_latent)


def build_dit(params: DiTParams, ctx):
    from specmatch.diffusion.dit import build_dit as _build

    c, h, w = ctx.upstream["latent_shape"]
    dit_facts(params).check_latent((c, h, w))  # bad values are the user's: ParamError, not a deep ValueError
    overrides = {k: getattr(params, k) for k in ("hidden_size", "depth", "num_heads", "mlp_ratio")
                 if getattr(params, k) is not None}
    return _build(params.preset, input_size=h, in_channels=c, patch_size=params.patch_size,
                  num_classes=ctx.upstream.get("num_classes", 0), **overrides)


@attrs.frozen(kw_only=True)
class FlowMatchingParams:
    time_sampling: str = param("uniform", doc="t ~ U(0,1) or logit-normal", choices=("uniform", "logit-normal"))
    logit_mean: float = param(0.0, doc="logit-normal mean")
    logit_std: float = param(1.0, doc="logit-normal std", gt=0, le=1e6)


def build_flow_matching(params: FlowMatchingParams, ctx):
    from specmatch.diffusion.flow_matching import FlowMatching

    return FlowMatching(time_sampling=params.time_sampling, logit_mean=params.logit_mean,
                        logit_std=params.logit_std)


@attrs.frozen(kw_only=True)
class ODESamplerParams:
    steps: int = param(50, doc="integration steps", ge=1, le=100_000)
    cfg_scale: float = param(1.0, doc="classifier-free guidance scale (1 = off; other values need a "
                                      "class-conditional denoiser)", ge=0)


def ode_sampler_facts(params: ODESamplerParams) -> Facts:
    return Facts(needs_labels="cfg_scale" if params.cfg_scale != 1 else "")


def _sampler(kind: str):
    def build(params: ODESamplerParams, ctx):
        from functools import partial

        from specmatch.diffusion import samplers

        fn = {"euler": samplers.euler_sample, "heun": samplers.heun_sample}[kind]
        return partial(fn, steps=params.steps, cfg_scale=params.cfg_scale)

    return build


@hookimpl
def specmatch_denoisers():
    yield DenoiserSpec(name="dit", factory=build_dit, params=DiTParams, alignable=True, facts=dit_facts,
                       summary="DiT with adaLN-Zero (timm layers); unconditional or class-conditional")


@hookimpl
def specmatch_objectives():
    yield ObjectiveSpec(name="flow-matching", factory=build_flow_matching, params=FlowMatchingParams,
                        default_for_kind=True,
                        summary="linear interpolant x_t = (1-t) x + t eps, velocity target eps - x (SiT/REPA)")


@hookimpl
def specmatch_samplers():
    yield SamplerSpec(name="euler", factory=_sampler("euler"), params=ODESamplerParams,
                      facts=ode_sampler_facts, default_for_kind=True,
                      summary="Euler ODE sampler from t=1 (noise) to t=0")
    yield SamplerSpec(name="heun", factory=_sampler("heun"), params=ODESamplerParams,
                      facts=ode_sampler_facts,
                      summary="Heun (2nd order) ODE sampler")
