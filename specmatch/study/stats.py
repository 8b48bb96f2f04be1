"""Statistics over seeds: mean, standard deviation and a 95 % Student-t interval per group and metric; paired
differences against the baseline with a paired t-test (and Holm's correction across groups); ranks; and across
all cells the Spearman rank correlation of every diagnostic with gFID.

The methods are stated in docs/study.md "Statistics". With three seeds a paired t-test has two degrees of
freedom and little power: only large, consistent differences reach p < 0.05.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, Sequence

import attrs
import numpy as np
from scipy import stats as st

ALPHA = 0.05
CONFIDENCE = 0.95
GENERATION_PREFIX = "gen_"  # metrics of the generated samples (engine/stages/evaluation.py)
GFID = GENERATION_PREFIX + "fid"  # generation FID in metrics.json


def direction(metric: str) -> str | None:
    """"lower" or "higher" is better, or None where the name says nothing (such metrics are not ranked)."""
    name = metric.lower()
    if name.endswith("_std") or name.startswith("time_"):
        return None
    if any(word in name for word in ("psnr", "ssim", "precision", "recall")):
        return "higher"
    if any(word in name for word in ("fid", "kid", "lpips", "kl_delta", "loss")) or name.endswith("_l1"):
        return "lower"
    return None


@attrs.frozen(kw_only=True)
class GroupStats:
    group: str
    metric: str
    n: int
    mean: float
    sd: float  # sample standard deviation (ddof=1); nan for one seed
    ci_low: float | None  # None: fewer than two seeds, no interval
    ci_high: float | None
    diff: float | None = None  # mean paired difference group - baseline (None for the baseline itself)
    diff_ci_low: float | None = None
    diff_ci_high: float | None = None
    n_pairs: int = 0
    p: float | None = None  # paired t-test, two-sided
    p_holm: float | None = None  # Holm-adjusted across the groups compared with the baseline on this metric
    significant: bool | None = None  # p < 0.05 (uncorrected); None when there is no test
    significant_holm: bool | None = None
    rank: int | None = None  # 1 = best by direction(metric); None when the direction is unknown
    unpaired_seeds: tuple[int, ...] = ()  # seeds of this group or the baseline without a partner, dropped


@attrs.frozen(kw_only=True)
class Correlation:
    diagnostic: str
    rho: float
    p: float
    n: int


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float | None,
                                                                                    float | None]:
    """(mean, sd, ci_low, ci_high): mean +- t_{(1+c)/2, n-1} * sd / sqrt(n); no interval for n < 2."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean()) if x.size else math.nan
    if x.size < 2:
        return mean, math.nan, None, None
    sd = float(x.std(ddof=1))
    half = float(st.t.ppf((1 + confidence) / 2, x.size - 1)) * sd / math.sqrt(x.size)
    return mean, sd, mean - half, mean + half


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (None entries stay None and do not count as tests)."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None and math.isfinite(p))
    m, out, running = len(tested), list(p_values), 0.0
    for k, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - k) * p))
        out[i] = running
    return out


def summarize(values: dict[str, dict[int, dict[str, float]]], baseline: str | None) -> list[GroupStats]:
    """values: group -> seed -> metric -> number. One GroupStats per group and metric the group has."""
    metrics = sorted({m for seeds in values.values() for row in seeds.values() for m in row})
    out: list[GroupStats] = []
    for metric in metrics:
        rows = []
        for group in values:
            by_seed = {s: row[metric] for s, row in values[group].items() if metric in row}
            if not by_seed:
                continue
            mean, sd, lo, hi = mean_interval(list(by_seed.values()))
            fields = dict(group=group, metric=metric, n=len(by_seed), mean=mean, sd=sd, ci_low=lo, ci_high=hi)
            if baseline is not None and group != baseline and baseline in values:
                fields.update(_paired(by_seed, {s: r[metric] for s, r in values[baseline].items() if metric in r}))
            rows.append(fields)
        adjusted = holm([r.get("p") for r in rows])
        for r, p_holm in zip(rows, adjusted):
            if r.get("p") is not None:
                r["p_holm"], r["significant_holm"] = p_holm, bool(p_holm < ALPHA)
        _rank(rows, direction(metric))
        out.extend(GroupStats(**r) for r in rows)
    return out


def _paired(group: dict[int, float], base: dict[int, float]) -> dict:
    seeds = sorted(set(group) & set(base))
    unpaired = tuple(sorted(set(group) ^ set(base)))
    diffs = [group[s] - base[s] for s in seeds]
    result: dict = {"n_pairs": len(seeds), "unpaired_seeds": unpaired}
    if not diffs:
        return result
    mean, _, lo, hi = mean_interval(diffs)
    result.update(diff=mean, diff_ci_low=lo, diff_ci_high=hi)
    # identical differences at every seed (up to rounding) leave the t statistic undefined: no test
    if len(seeds) >= 2 and max(diffs) - min(diffs) > 1e-12 * max(1.0, abs(mean)):
        p = float(st.ttest_rel([group[s] for s in seeds], [base[s] for s in seeds]).pvalue)
        if math.isfinite(p):
            result.update(p=p, significant=bool(p < ALPHA))
    return result


def _rank(rows: list[dict], better: str | None) -> None:
    ranked = [r for r in rows if better and math.isfinite(r["mean"])]
    if not ranked:
        return
    keys = [r["mean"] if better == "lower" else -r["mean"] for r in ranked]
    for r, rank in zip(ranked, st.rankdata(keys, method="min")):
        r["rank"] = int(rank)


def correlations(cells: Iterable[dict[str, float]], diagnostics: Iterable[str], target: str = GFID,
                 min_n: int = 3) -> list[Correlation]:
    """Spearman's rho (and its p-value) between each diagnostic and ``target`` over all cells having both."""
    cells = list(cells)
    out = []
    for name in sorted(set(diagnostics)):
        pairs = [(c[name], c[target]) for c in cells if name in c and target in c]
        if len(pairs) < min_n:
            continue
        x, y = zip(*pairs)
        if len(set(x)) < 2 or len(set(y)) < 2:  # a constant has no ranks to correlate
            continue
        result = st.spearmanr(x, y)
        out.append(Correlation(diagnostic=name, rho=float(result.statistic), p=float(result.pvalue),
                               n=len(pairs)))
    return out


def by_group(cell_values: Iterable[tuple[str, int, dict[str, float]]]) -> dict[str, dict[int, dict[str, float]]]:
    """(group, seed, values) triples to group -> seed -> values (the input of ``summarize``)."""
    out: dict[str, dict[int, dict[str, float]]] = defaultdict(dict)
    for group, seed, vals in cell_values:
        out[group][seed] = vals
    return dict(out)
