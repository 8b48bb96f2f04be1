"""Built-in diffusion components: a DiT denoiser, three objectives (flow matching, DDPM noise prediction,
v-prediction) and five samplers (Euler, Heun, Euler-Maruyama, DDIM, DPM-Solver++ 2M)."""

from typing import Optional

import attrs

from specmatch import DenoiserSpec, Facts, ObjectiveSpec, ParamError, SamplerSpec, hookimpl, param
from specmatch.denoisers.presets import DIT_PRESETS as DIT_PRESET_SIZES

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
    shift: float = param(1.0, doc="time shift s (SD3): t' = s t / (1 + (s - 1) t), applied to training times and "
                                  "sampler steps; 1 = none", gt=0, le=1e4)
    shift_base_dim: Optional[int] = param(None, doc="derive the shift from the latent instead: s = sqrt(C*h*w / "
                                                    "shift_base_dim) (then leave shift at 1)", ge=1)


def flow_matching_facts(params: FlowMatchingParams) -> Facts:
    from specmatch.diffusion.compatibility import ObjectiveFacts

    if params.shift_base_dim is not None and params.shift != 1.0:
        raise ParamError("shift_base_dim", f"give either shift ({params.shift}) or shift_base_dim, not both")
    return ObjectiveFacts(continuous_time=True)


def build_flow_matching(params: FlowMatchingParams, ctx):
    from specmatch.diffusion.flow_matching import FlowMatching, shift_for_dimension

    flow_matching_facts(params)
    shift = params.shift
    if params.shift_base_dim is not None:
        shape = ctx.upstream.get("latent_shape")
        if shape is None:
            raise ParamError("shift_base_dim", "needs the latent shape, which is not known yet")
        c, h, w = shape
        shift = shift_for_dimension(c * h * w, params.shift_base_dim)
    return FlowMatching(time_sampling=params.time_sampling, logit_mean=params.logit_mean,
                        logit_std=params.logit_std, shift=shift)


@attrs.frozen(kw_only=True)
class DDPMParams:
    time: str = param("discrete", doc="train at the 1000 steps t = n/1000 (U-ViT) or at any t in [1/1000, 1]",
                      choices=("discrete", "continuous"))


def ddpm_facts(params: DDPMParams) -> Facts:
    from specmatch.diffusion.compatibility import ObjectiveFacts

    return ObjectiveFacts(continuous_time=params.time == "continuous", continuous_fix='params.time = "continuous"')


def build_ddpm(params: DDPMParams, ctx):
    from specmatch.diffusion.ddpm import DDPMNoise

    return DDPMNoise(time=params.time)


def v_prediction_facts(params) -> Facts:
    from specmatch.diffusion.compatibility import ObjectiveFacts

    return ObjectiveFacts(continuous_time=True)


def build_v_prediction(params, ctx):
    from specmatch.diffusion.v_prediction import VPrediction

    return VPrediction()


@attrs.frozen(kw_only=True)
class ODESamplerParams:
    steps: int = param(50, doc="steps from noise to data (network evaluations: docs/diffusion.md)", ge=1,
                       le=100_000)
    t_end: float = param(0.0, doc="last time before the final step to t = 0 (0: uniform steps down to 0)", ge=0,
                         lt=1)
    cfg_scale: float = param(1.0, doc="classifier-free guidance scale (1 = off; other values need a "
                                      "class-conditional denoiser)", ge=0, le=1e4)
    guidance_low: float = param(0.0, doc="guidance applies for guidance_low <= t <= guidance_high (t = 1 noise)",
                                ge=0, le=1)
    guidance_high: float = param(1.0, doc="upper end of the guidance interval (REPA: 0.7)", ge=0, le=1)


@attrs.frozen(kw_only=True)
class EulerMaruyamaParams(ODESamplerParams):
    steps: int = param(250, doc="steps from noise to data, the last one without noise (REPA: 250)", ge=1,
                       le=100_000)
    t_end: float = param(0.04, doc="last time before the final noiseless step to t = 0 (REPA: 0.04)", ge=0, lt=1)


@attrs.frozen(kw_only=True)
class DDIMParams(ODESamplerParams):
    eta: float = param(0.0, doc="0: deterministic DDIM; 1: ancestral (DDPM) noise", ge=0, le=1)


@attrs.frozen(kw_only=True)
class DPMSolverParams(ODESamplerParams):
    spacing: str = param("time", doc="steps uniform in time (U-ViT) or in log-SNR", choices=("time", "logsnr"))


#: sampler name -> (class in specmatch.diffusion.samplers, what it integrates in t: "" if nothing)
SAMPLERS = {
    "euler": ("EulerSampler", "Euler steps"),
    "heun": ("HeunSampler", "Heun steps"),
    "euler-maruyama": ("EulerMaruyamaSampler", "Euler-Maruyama steps"),
    "ddim": ("DDIMSampler", ""),
    "dpmpp-2m": ("DPMSolverPP2M", ""),
}


def _sampler_facts(name: str):
    def facts(params) -> Facts:
        from specmatch.diffusion.compatibility import SamplerFacts

        if params.guidance_low > params.guidance_high:
            raise ParamError("guidance_low", f"expected guidance_low <= guidance_high ({params.guidance_high}); "
                                             f"got {params.guidance_low}")
        return SamplerFacts(needs_labels="cfg_scale" if params.cfg_scale != 1 else "",
                            integrates_time=SAMPLERS[name][1])

    return facts


def _sampler(name: str):
    def build(params, ctx):
        from specmatch.diffusion import samplers

        _sampler_facts(name)(params)
        return getattr(samplers, SAMPLERS[name][0])(**attrs.asdict(params))

    return build


@hookimpl
def specmatch_validate_recipe(recipe):
    """A sampler that integrates dx/dt cannot follow an objective trained at discrete steps only."""
    from specmatch.core.errors import ParamError as _ParamError
    from specmatch.core.errors import Problem
    from specmatch.core.facts_check import param_path
    from specmatch.diffusion.compatibility import pair_problems

    if getattr(recipe.recipe, "denoiser", None) is None:
        return []
    comps = {kind: recipe.component(kind) for kind in ("sampler", "objective")}
    if any(comp is None for comp in comps.values()):
        return []
    try:
        facts = {kind: comp.spec.facts_for(comp.params) for kind, comp in comps.items()}
    except _ParamError:  # reported by the facts checks already
        return []
    return [Problem(param_path(comps[where], key), message)
            for where, key, message in pair_problems(facts["sampler"], facts["objective"])]


@hookimpl
def specmatch_denoisers():
    yield DenoiserSpec(name="dit", factory=build_dit, params=DiTParams, alignable=True, facts=dit_facts,
                       summary="DiT with adaLN-Zero (timm layers); unconditional or class-conditional")


@hookimpl
def specmatch_objectives():
    yield ObjectiveSpec(name="flow-matching", factory=build_flow_matching, params=FlowMatchingParams,
                        facts=flow_matching_facts, default_for_kind=True,
                        summary="linear interpolant x_t = (1-t) x + t eps, velocity target eps - x (SiT/REPA); "
                                "uniform or logit-normal times, optional SD3 time shift")
    yield ObjectiveSpec(name="ddpm", factory=build_ddpm, params=DDPMParams, facts=ddpm_facts,
                        summary="noise prediction on Stable Diffusion's 1000-step linear-beta schedule (U-ViT)")
    yield ObjectiveSpec(name="v-prediction", factory=build_v_prediction, facts=v_prediction_facts,
                        summary="v = alpha eps - sigma x on the continuous cosine schedule")


@hookimpl
def specmatch_samplers():
    yield SamplerSpec(name="euler", factory=_sampler("euler"), params=ODESamplerParams,
                      facts=_sampler_facts("euler"), default_for_kind=True,
                      summary="Euler ODE sampler from t=1 (noise) to t=0")
    yield SamplerSpec(name="heun", factory=_sampler("heun"), params=ODESamplerParams,
                      facts=_sampler_facts("heun"), summary="Heun (2nd order) ODE sampler")
    yield SamplerSpec(name="euler-maruyama", factory=_sampler("euler-maruyama"), params=EulerMaruyamaParams,
                      facts=_sampler_facts("euler-maruyama"),
                      summary="Euler-Maruyama SDE sampler (REPA: 250 steps, last step to t=0 without noise)")
    yield SamplerSpec(name="ddim", factory=_sampler("ddim"), params=DDIMParams, facts=_sampler_facts("ddim"),
                      summary="DDIM (eta = 0 deterministic, eta > 0 stochastic)")
    yield SamplerSpec(name="dpmpp-2m", factory=_sampler("dpmpp-2m"), params=DPMSolverParams,
                      facts=_sampler_facts("dpmpp-2m"),
                      summary="DPM-Solver++ 2M, data-prediction multistep in log-SNR (U-ViT)")
