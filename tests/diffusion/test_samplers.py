"""Samplers against closed-form answers on Gaussian data (tests/diffusion/gaussian_oracle.py).

Each objective gets its exact network; each ODE sampler must converge to the exact probability-flow endpoint at
its order (the log-error slope over step counts), the SDE sampler must reproduce the data's mean and variance,
and guidance must move samples as the closed form says, only inside its interval.
"""

from __future__ import annotations

import math

import pytest
import torch

from specmatch.diffusion import samplers as S
from specmatch.diffusion.ddpm import DDPMNoise
from specmatch.diffusion.flow_matching import FlowMatching
from specmatch.diffusion.v_prediction import VPrediction
from specmatch.engine.sampling import SamplingContext

from .gaussian_oracle import GaussianData, rms

SHAPE = (2, 2, 2)
OBJECTIVES = {"flow-matching": FlowMatching(), "flow-matching-shift3": FlowMatching(shift=3.0),
              "v-prediction": VPrediction(), "ddpm": DDPMNoise(), "ddpm-continuous": DDPMNoise(time="continuous")}


def gaussian_data() -> GaussianData:
    mu = torch.tensor([0.5, -1.0, 0.2, 1.5, -0.3, 0.0, 0.8, -1.2]).view(SHAPE)
    return GaussianData(mu, torch.linspace(0.3, 1.5, 8).view(SHAPE))


def context(data, objective, start, *, step_noise=None, labels=None, null_class=None, guidance=None,
            mu_of_label=None):
    def noise(k):
        return start if k == 0 else step_noise(k)

    return SamplingContext(denoiser=data.network(objective, mu_of_label), objective=objective, noise=noise,
                           shape=start.shape, device="cpu", dtype=torch.float64, labels=labels,
                           null_class=null_class, guidance=guidance)


def exact_endpoint(data, objective, start):
    """The probability flow from t_max to the last time lo > 0 the network sees, then its x0 estimate."""
    low = objective.t_min
    end = data.flow(objective, start, objective.t_max, low)
    return end if low == 0 else data.posterior(objective, end, low)[0]


def errors(sampler_class, objective, steps, **kw):
    data = gaussian_data()
    start = torch.randn(32, *SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    reference = exact_endpoint(data, objective, start)
    return [rms(sampler_class(steps=n, **kw)(context(data, objective, start)), reference) for n in steps]


def slope(steps, errs) -> float:
    """Least-squares slope of -log(error) against log(steps): the observed order."""
    x = torch.log(torch.tensor(steps, dtype=torch.float64))
    y = -torch.log(torch.tensor(errs, dtype=torch.float64))
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


# (sampler, kwargs, objectives, step counts, (lowest, highest) accepted order)
ORDER_CASES = [
    ("euler", S.EulerSampler, {}, ["flow-matching", "flow-matching-shift3", "v-prediction"], (0.9, 1.1)),
    ("heun", S.HeunSampler, {}, ["flow-matching", "flow-matching-shift3", "v-prediction"], (1.85, 2.2)),
    ("ddim", S.DDIMSampler, {}, ["flow-matching", "v-prediction", "ddpm"], (0.9, 1.1)),
    # lambda-uniform steps on a finite lambda range: the textbook order
    ("dpm-solver++ logsnr", S.DPMSolverPP2M, {"spacing": "logsnr"}, ["ddpm"], (1.9, 2.1)),
]


@pytest.mark.parametrize("name,cls,kw,objectives,order", ORDER_CASES, ids=[c[0] for c in ORDER_CASES])
def test_ode_samplers_converge_at_their_order(name, cls, kw, objectives, order):
    steps = [16, 32, 64] if "logsnr" in name else [16, 32, 64, 128]
    for objective in objectives:
        errs = errors(cls, OBJECTIVES[objective], steps, **kw)
        observed = slope(steps, errs)
        assert order[0] < observed < order[1], (objective, errs, observed)
        assert errs[-1] < 0.05, (objective, errs)


def test_dpm_solver_is_second_order_away_from_infinite_log_snr():
    """Time-uniform steps on paths from pure noise (lambda = -inf) to data (+inf): the first and last steps span
    an unbounded lambda range, so the order tends to 2 from below; it is clearly above DDIM's 1."""
    steps = [32, 64, 128, 256]
    for objective in ("flow-matching", "v-prediction"):
        errs = errors(S.DPMSolverPP2M, OBJECTIVES[objective], steps)
        assert slope(steps, errs) > 1.45, (objective, errs)
        ddim = errors(S.DDIMSampler, OBJECTIVES[objective], [64])[0]
        assert errs[1] < 0.1 * ddim, (objective, errs, ddim)


def test_continuous_ddpm_converges_with_the_samplers_that_integrate_time():
    """Its schedule is piecewise log-linear (1000 knots): first order at these steps, but it converges."""
    for cls in (S.EulerSampler, S.HeunSampler):
        errs = errors(cls, OBJECTIVES["ddpm-continuous"], [16, 64, 256])
        assert errs[2] < errs[1] < errs[0] and errs[2] < 0.01, (cls, errs)


def test_one_step_to_data_is_the_clean_estimate():
    """Every deterministic sampler with one step returns the exact x0 estimate at t_max."""
    data = gaussian_data()
    start = torch.randn(8, *SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for objective in (OBJECTIVES["flow-matching"], OBJECTIVES["v-prediction"], OBJECTIVES["ddpm"]):
        expected = data.posterior(objective, start, objective.t_max)[0]
        for cls in (S.EulerSampler, S.HeunSampler, S.DDIMSampler, S.DPMSolverPP2M):
            torch.testing.assert_close(cls(steps=1)(context(data, objective, start)), expected)


# ---------------------------------------------------------------------------------------------------------
# Stochastic samplers: the data distribution
# ---------------------------------------------------------------------------------------------------------


def sample_moments(sampler, objective, n=10000, seed=0):
    data = gaussian_data()
    gen = torch.Generator().manual_seed(seed)
    start = torch.randn(n, *SHAPE, generator=gen, dtype=torch.float64)
    x = sampler(context(data, objective, start,
                        step_noise=lambda k: torch.randn(n, *SHAPE, generator=gen, dtype=torch.float64)))
    return data, x.mean(0), x.var(0), n


def assert_moments(data, mean, var, n, expected_var=None, bias=0.0):
    """Within 5 standard errors of the mean (s / sqrt n) and of the variance (var sqrt(2 / n)), plus ``bias``
    (relative) for the discretisation."""
    expected_var = data.s ** 2 if expected_var is None else expected_var
    assert ((mean - data.mu).abs() < 5 * data.s / math.sqrt(n)).all(), (mean, data.mu)
    assert ((var - expected_var).abs() < expected_var * (5 * math.sqrt(2 / n) + bias)).all(), (var, expected_var)


# Paths that start at pure noise (alpha(t_max) = 0): the samplers' N(0, 1) start is the exact marginal there.
# (DDPM's alpha(1) = 0.068: its samples inherit that start mismatch, up to 0.07 |mu| on the mean.)
@pytest.mark.parametrize("objective", ["flow-matching", "flow-matching-shift3", "v-prediction"])
def test_euler_maruyama_reproduces_mean_and_variance(objective):
    # t_end = 0.01: REPA's noiseless last step from 0.04 biases the variance by itself (next test)
    assert_moments(*sample_moments(S.EulerMaruyamaSampler(steps=100, t_end=0.01), OBJECTIVES[objective]),
                   bias=0.02)


@pytest.mark.slow
def test_euler_maruyama_with_repa_settings_matches_its_closed_form():
    """REPA's setting (250 steps, last step from t = 0.04 to 0 with the drift and no noise) on flow matching.

    From the exact marginal N(a mu, V) at t = lo (a = 1 - lo, V = a^2 s^2 + lo^2) the last step maps
    x to mu + (x - a mu)(1 - 2 lo^2 / V + lo a s^2 / V): the variance it leaves is V times that factor
    squared, 5% below s^2 for s = 0.3.
    """
    data = gaussian_data()
    lo = 0.04
    a, s2 = 1 - lo, data.s ** 2
    v = a * a * s2 + lo * lo
    expected = v * (1 - 2 * lo * lo / v + lo * a * s2 / v) ** 2
    assert (expected - s2).abs().max() > 0.04 * s2.min()  # the effect is larger than the tolerance below
    assert_moments(*sample_moments(S.EulerMaruyamaSampler(), OBJECTIVES["flow-matching"], n=20000),
                   expected_var=expected, bias=0.01)


def test_euler_maruyama_is_stochastic_and_differs_from_the_flow():
    data = gaussian_data()
    objective = OBJECTIVES["flow-matching"]
    start = torch.randn(256, *SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    x = S.EulerMaruyamaSampler(steps=100)(context(
        data, objective, start, step_noise=lambda k: torch.randn(start.shape, generator=gen, dtype=torch.float64)))
    assert rms(x, data.flow(objective, start, 1.0, 0.0)) > 0.1


def test_ddim_with_eta_one_reproduces_mean_and_variance():
    """Ancestral steps use the posterior of a point estimate of x0, which loses variance at O(1/steps) (markedly
    on the cosine path at 100 steps); on the linear path 100 steps stay within the 2% allowed here."""
    data, mean, var, n = sample_moments(S.DDIMSampler(steps=100, eta=1.0), OBJECTIVES["flow-matching"])
    assert_moments(data, mean, var, n, bias=0.02)


# ---------------------------------------------------------------------------------------------------------
# Classifier-free guidance
# ---------------------------------------------------------------------------------------------------------
#
# Class c's data is N(mu_c, s^2) and the null class's N(mu_u, s^2), with the same s. The exact network output of
# a Gaussian is affine in x with a slope that depends on s only, so the guided output uncond + w (cond - uncond)
# is exactly the output for the Gaussian N(mu_u + w (mu_c - mu_u), s^2): guided samples follow its flow.

MU_COND = torch.tensor([1.0, -0.5, 0.3, 0.0, 2.0, -1.0, 0.5, 0.1]).view(SHAPE)
MU_NULL = torch.zeros(SHAPE)
NULL = 5


def class_mean(y):
    mus = torch.stack([MU_COND if int(label) != NULL else MU_NULL for label in y]).double()
    return mus


def guided_endpoint(data, objective, start, scale, low, high):
    """Piecewise exact flow: conditional above high, guided in [low, high], conditional below low."""
    mu_c, mu_g = MU_COND.double(), (MU_NULL + scale * (MU_COND - MU_NULL)).double()
    x = data.flow(objective, start, 1.0, high, mu_c)
    x = data.flow(objective, x, high, low, mu_g)
    return data.flow(objective, x, low, 0.0, mu_c)


@pytest.mark.parametrize("low,high", [(0.0, 1.0), (0.0, 0.7), (0.3, 0.6)])
def test_guidance_moves_samples_as_the_closed_form(low, high):
    data = gaussian_data()
    objective = OBJECTIVES["flow-matching"]
    start = torch.randn(16, *SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    labels = torch.zeros(16, dtype=torch.long)
    scale = 1.8
    ctx = context(data, objective, start, labels=labels, null_class=NULL, guidance=S.Guidance(scale, low, high),
                  mu_of_label=class_mean)
    x = S.HeunSampler(steps=200)(ctx)
    expected = guided_endpoint(data, objective, start, scale, low, high)
    unguided = data.flow(objective, start, 1.0, 0.0, MU_COND.double())
    full = guided_endpoint(data, objective, start, scale, 0.0, 1.0)
    assert rms(x, expected) < 0.01, rms(x, expected)
    assert rms(expected, unguided) > 0.1  # the test can tell guided from unguided
    if (low, high) != (0.0, 1.0):
        assert rms(expected, full) > 0.05  # ... and the interval from full guidance


def test_guided_mean_in_the_linear_regime():
    """Full-interval guidance samples N(mu_u + w (mu_c - mu_u), s^2): check the sample mean."""
    data = gaussian_data()
    objective = OBJECTIVES["v-prediction"]
    n = 2000
    start = torch.randn(n, *SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ctx = context(data, objective, start, labels=torch.zeros(n, dtype=torch.long), null_class=NULL,
                  guidance=S.Guidance(3.0, 0.0, 1.0), mu_of_label=class_mean)
    x = S.DPMSolverPP2M(steps=25)(ctx)
    expected_mean = (MU_NULL + 3.0 * (MU_COND - MU_NULL)).double()
    assert ((x.mean(0) - expected_mean).abs() < 5 * data.s / math.sqrt(n) + 0.01).all()


def test_guidance_runs_the_doubled_batch_only_inside_the_interval():
    calls = []
    data = gaussian_data()
    network = data.network(OBJECTIVES["flow-matching"], class_mean)

    def recording(x, t, y=None):
        calls.append((x.shape[0], round(float(t[0]), 6), None if y is None else y.tolist()))
        return network(x, t, y)

    start = torch.randn(2, *SHAPE, dtype=torch.float64)
    ctx = SamplingContext(denoiser=recording, objective=OBJECTIVES["flow-matching"], noise=lambda k: start,
                          shape=start.shape, device="cpu", dtype=torch.float64, labels=torch.tensor([0, 1]),
                          null_class=NULL, guidance=S.Guidance(3.0, 0.0, 0.5))
    S.EulerSampler(steps=4)(ctx)
    assert [(b, t) for b, t, _ in calls] == [(2, 1.0), (2, 0.75), (4, 0.5), (4, 0.25)]
    assert calls[2][2] == [0, 1, NULL, NULL] and calls[0][2] == [0, 1]


def test_guidance_needs_labels_and_a_valid_interval():
    start = torch.zeros(2, *SHAPE)
    with pytest.raises(ValueError, match="needs class labels"):
        SamplingContext(denoiser=lambda x, t: x, objective=FlowMatching(), noise=lambda k: start, shape=start.shape,
                        device="cpu", guidance=S.Guidance(2.0))
    with pytest.raises(ValueError, match="guidance interval"):
        S.EulerSampler(guidance_low=0.8, guidance_high=0.2)
    with pytest.raises(ValueError, match="steps"):
        S.HeunSampler(steps=0)
    with pytest.raises(ValueError, match="t_end"):
        S.EulerSampler(t_end=1.0)
    with pytest.raises(ValueError, match="eta"):
        S.DDIMSampler(eta=2.0)


def test_time_grid():
    assert S.time_grid(4, 0.0) == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    assert S.time_grid(3, 0.2) == pytest.approx([1.0, 0.6, 0.2, 0.0])
    # an objective trained from t_min = 0.001 on: steps down to t_min, then the step to data
    assert S.time_grid(3, 0.0, t_min=0.001) == pytest.approx([1.0, 0.5005, 0.001, 0.0])
    assert S.time_grid(2, 0.0, shift_time=FlowMatching(shift=3.0).shift_time) == pytest.approx([1.0, 0.75, 0.0])
