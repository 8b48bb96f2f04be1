"""The study statistics against values worked out by hand (formulas in plain Python, quantiles from a t table)."""

import math

import pytest

from specmatch.study.stats import correlations, direction, holm, mean_interval, summarize

T975_DF2 = 4.302652729911275  # Student t, 97.5 % quantile, 2 degrees of freedom (standard table)
T975_DF3 = 3.182446305284263


def t_two_sided_p_df2(t: float) -> float:
    """Student t with 2 degrees of freedom has the closed-form CDF 1/2 + t / (2 sqrt(t^2 + 2))."""
    return 1 - abs(t) / math.sqrt(t * t + 2)


def by_hand(values):
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, sd


BASE = {0: {"gen_fid": 10.0, "recon_psnr": 20.0}, 1: {"gen_fid": 12.0, "recon_psnr": 21.0},
        2: {"gen_fid": 11.0, "recon_psnr": 22.0}}
A = {0: {"gen_fid": 8.0, "recon_psnr": 25.0}, 1: {"gen_fid": 11.0, "recon_psnr": 25.0},
     2: {"gen_fid": 9.0, "recon_psnr": 25.0}}
B = {0: {"gen_fid": 10.0}, 1: {"gen_fid": 13.0}, 2: {"gen_fid": 11.0}, 3: {"gen_fid": 20.0}}


def table():
    rows = summarize({"base": BASE, "a": A, "b": B}, baseline="base")
    return {(r.group, r.metric): r for r in rows}


def test_mean_sd_and_student_t_interval():
    r = table()["base", "gen_fid"]
    mean, sd = by_hand([10.0, 12.0, 11.0])
    half = T975_DF2 * sd / math.sqrt(3)
    assert (r.n, r.mean, r.sd) == (3, pytest.approx(mean), pytest.approx(sd))
    assert r.ci_low == pytest.approx(mean - half) and r.ci_high == pytest.approx(mean + half)
    assert r.diff is None and r.p is None  # the baseline is not tested against itself
    four = table()["b", "gen_fid"]
    mean, sd = by_hand([10.0, 13.0, 11.0, 20.0])
    assert four.ci_high == pytest.approx(mean + T975_DF3 * sd / 2)


def test_one_seed_has_no_interval():
    mean, sd, lo, hi = mean_interval([3.0])
    assert mean == 3.0 and math.isnan(sd) and lo is None and hi is None


def test_paired_t_test_against_the_baseline():
    r = table()["a", "gen_fid"]
    diffs = [8.0 - 10.0, 11.0 - 12.0, 9.0 - 11.0]
    d_mean, d_sd = by_hand(diffs)
    t = d_mean / (d_sd / math.sqrt(3))
    assert r.diff == pytest.approx(d_mean) and r.n_pairs == 3
    assert r.diff_ci_low == pytest.approx(d_mean - T975_DF2 * d_sd / math.sqrt(3))
    assert r.p == pytest.approx(t_two_sided_p_df2(t), rel=1e-9)
    assert r.significant is True  # t = -5, p ~ 0.038


def test_unpaired_seeds_are_dropped_and_reported():
    r = table()["b", "gen_fid"]
    diffs = [0.0, 1.0, 0.0]  # seed 3 has no baseline partner
    d_mean, d_sd = by_hand(diffs)
    assert r.n == 4 and r.n_pairs == 3 and r.unpaired_seeds == (3,)
    assert r.diff == pytest.approx(d_mean)
    assert r.p == pytest.approx(t_two_sided_p_df2(d_mean / (d_sd / math.sqrt(3))), rel=1e-9)
    assert r.significant is False


def test_holm_correction_across_groups():
    rows = table()
    pa, pb = rows["a", "gen_fid"].p, rows["b", "gen_fid"].p
    assert pa < pb
    assert rows["a", "gen_fid"].p_holm == pytest.approx(2 * pa)  # smallest of two tests: times 2
    assert rows["b", "gen_fid"].p_holm == pytest.approx(max(2 * pa, pb))
    assert rows["a", "gen_fid"].significant_holm is False  # 0.075 after correction
    assert holm([0.01, None, 0.04, 0.03]) == pytest.approx([0.03, None, 0.06, 0.06])


def test_constant_differences_have_no_test():
    assert table()["a", "recon_psnr"].p is not None  # differences 5, 4, 3
    rows = summarize({"base": {0: {"x_l1": 1.0}, 1: {"x_l1": 2.0}}, "c": {0: {"x_l1": 2.0}, 1: {"x_l1": 3.0}}},
                     baseline="base")
    shifted = [r for r in rows if r.group == "c"][0]
    assert shifted.diff == pytest.approx(1.0) and shifted.p is None and shifted.significant is None


def test_ranks_follow_the_metric_direction():
    rows = table()
    # gen_fid means: a 9.33, base 11, b 13.5 (lower is better)
    assert [rows[g, "gen_fid"].rank for g in ("a", "base", "b")] == [1, 2, 3]
    # recon_psnr: a 25 > base 21 (higher is better); b has no psnr
    assert rows["a", "recon_psnr"].rank == 1 and rows["base", "recon_psnr"].rank == 2
    assert direction("gen_kid") == "lower" and direction("gen_kid_std") is None
    assert direction("gen_recall") == "higher" and direction("spectrum_kl_delta1") == "lower"
    assert direction("spectrum_latent_slope") is None
    unranked = summarize({"x": {0: {"spectrum_latent_slope": 1.0}}}, baseline=None)
    assert unranked[0].rank is None


def test_spearman_against_gfid_by_hand():
    cells = [{"d": 1.0, "gen_fid": 1.0}, {"d": 2.0, "gen_fid": 3.0}, {"d": 3.0, "gen_fid": 2.0},
             {"d": 4.0, "gen_fid": 4.0}, {"gen_fid": 9.0}]  # the last cell lacks the diagnostic
    (c,) = correlations(cells, ["d"])
    d2 = 0 + 1 + 1 + 0  # squared rank differences
    rho = 1 - 6 * d2 / (4 * (4 ** 2 - 1))
    t = rho * math.sqrt((4 - 2) / (1 - rho ** 2))  # Spearman's p-value: t with n - 2 degrees of freedom
    assert c.n == 4 and c.rho == pytest.approx(rho) and c.p == pytest.approx(t_two_sided_p_df2(t))
    assert correlations(cells[:2], ["d"]) == []  # fewer than 3 cells: no correlation
