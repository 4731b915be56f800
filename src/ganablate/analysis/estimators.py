"""Estimators over arrays, rliable-style: pure functions that never know what a variant is.

Every test and interval comes from scipy or statsmodels except three written here, which neither offers: the
interquartile mean, Fieller's interval for a ratio of paired means, and Holm's adjustment of many simulated
families at once (power.py; checked against statsmodels). The tests of a per-seed contrast d (log ratios) against a
margin are one function each: analysis/verdicts.py's hypotheses name them. Random draws are seeded per group key, so
the same runs.csv always gives byte-identical tables whatever other groups it holds.
"""

from __future__ import annotations

import math
import warnings
import zlib

import numpy as np
import pandas as pd
from scipy import stats

BOOTSTRAP_BATCH = 1000  # bounds the bootstrap's memory; results depend on it, so it is fixed


def iqm(x, axis: int = -1):
    """Interquartile mean: the mean after cutting floor(n/4) values from each end (rliable's definition)."""
    x = np.sort(np.asarray(x, dtype=float), axis=axis)
    n = x.shape[axis]
    return np.take(x, np.arange(n // 4, n - n // 4), axis=axis).mean(axis=axis)


def group_rng(seed: int, key: tuple) -> np.random.Generator:
    # A group's random draws depend on its key only, not on which other groups the table holds.
    return np.random.default_rng([seed, zlib.crc32("/".join(map(str, key)).encode())])


def bootstrap_ci(
    samples: tuple, statistic, resamples: int, confidence: float, seed: int, key: tuple
) -> tuple[float, float]:
    """BCa, or percentile where BCa is undefined; only for the IQM, which has no exact interval. The resamples are
    drawn from the stream (seed, key), so that each interval is the same whatever else is computed."""
    if any(len(s) < 2 for s in samples):
        return math.nan, math.nan
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BCa's degenerate-data warning is acted on below
            ci = stats.bootstrap(
                samples,
                statistic,
                n_resamples=resamples,
                confidence_level=confidence,
                method=method,
                vectorized=True,
                batch=BOOTSTRAP_BATCH,
                rng=group_rng(seed, key),
            ).confidence_interval
        if np.isfinite(ci.low) and np.isfinite(ci.high):
            return float(ci.low), float(ci.high)
    return math.nan, math.nan


def mean_interval(x, confidence: float) -> tuple[float, float]:
    """Student-t interval of the mean (exact coverage for normal data at any n >= 2)."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    if np.ptp(x) == 0:
        return float(x[0]), float(x[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's precision warning for nearly identical values: the CI is still right
        ci = stats.ttest_1samp(x, 0.0).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def median_interval(x, confidence: float) -> tuple[float, float]:
    """Distribution-free interval of the median from order statistics (scipy's quantile_test); NaN where the
    sample is too small to reach the confidence (n = 5 reaches 94%, so 95% needs n >= 6)."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    ci = stats.quantile_test(x, q=float(np.median(x)), p=0.5).confidence_interval(confidence)
    low, high = float(ci.low), float(ci.high)
    return (low, high) if np.isfinite(low) and np.isfinite(high) else (math.nan, math.nan)


def wilson_interval(count: float, n: int, confidence: float) -> tuple[float, float]:
    """Wilson's interval of a proportion count / n (statsmodels), exactly 0 (or 1) at none (or all): the formula
    leaves float dust there."""
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(count, n, alpha=1 - confidence, method="wilson")
    return (0.0 if count == 0 else float(low)), (1.0 if count == n else float(high))


def fieller_interval(a, b, confidence: float) -> tuple[float, float]:
    """Fieller's interval for mean(a) / mean(b) of paired samples (neither scipy nor statsmodels has it).
    NaN when mean(b) is not distinguishable from 0 at this confidence: the interval is then unbounded."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(a)
    if n < 2:
        return math.nan, math.nan
    cov = np.cov(a, b, ddof=1) / n  # covariance matrix of the two means
    t2 = stats.t.ppf(0.5 + confidence / 2, n - 1) ** 2
    ma, mb = a.mean(), b.mean()
    qa, qb, qc = mb * mb - t2 * cov[1, 1], ma * mb - t2 * cov[0, 1], ma * ma - t2 * cov[0, 0]
    disc = qb * qb - qa * qc
    if qa <= 0 or disc < 0:
        return math.nan, math.nan
    root = math.sqrt(disc)
    return (qb - root) / qa, (qb + root) / qa


def holm(p: pd.Series, family: pd.Series) -> pd.Series:
    """Holm-adjusted p over the rows in `family` (statsmodels), each member counted: an untestable one (NaN) as
    p = 1, so that the family keeps its declared size (as power.holm_adjusted simulates it); NaN outside it and for
    the untestable members."""
    from statsmodels.stats.multitest import multipletests

    adjusted = pd.Series(math.nan, index=p.index)
    family = family.astype(bool)
    if family.any():
        given = p[family].astype(float)
        adjusted[family] = multipletests(given.fillna(1.0), method="holm")[1]
        adjusted[family & ~np.isfinite(p.astype(float))] = math.nan
    return adjusted


def tost(d, margin: float) -> float:
    """Paired TOST of the contrast's mean within +-log(1 + margin) (statsmodels): the larger one-sided p."""
    from statsmodels.stats.weightstats import DescrStatsW

    bound = math.log1p(margin)
    return float(DescrStatsW(d).ttost_mean(-bound, bound)[0])


def noninferiority(d, margin: float, better: str) -> float:
    """One-sided t-test of H0: the contrast is worse than a ratio of 1 + margin in the metric's direction (a mean
    log ratio >= log(1 + margin) for a lower-is-better metric, <= -log(1 + margin) for a higher-is-better one)."""
    bound = math.log1p(margin)
    if better == "higher":
        return float(stats.ttest_1samp(d, -bound, alternative="greater").pvalue)
    return float(stats.ttest_1samp(d, bound, alternative="less").pvalue)


def _beyond(d, margin: float) -> tuple[float, float]:
    """One-sided t-tests that the contrast lies beyond the margin: (above +log(1 + margin), below -log(1 + margin))."""
    bound = math.log1p(margin)
    above = float(stats.ttest_1samp(d, bound, alternative="greater").pvalue)
    below = float(stats.ttest_1samp(d, -bound, alternative="less").pvalue)
    return above, below


def beyond_equivalence(d, margin: float) -> float:
    """That the contrast lies beyond the margin on the side of the estimate (rejected: the 1 - 2 alpha interval lies
    wholly outside the margin)."""
    return min(_beyond(d, margin))


def beyond_noninferiority(d, margin: float, better: str) -> float:
    """That the contrast lies beyond the margin on the worse side (H0: the ratio is within 1 + margin)."""
    above, below = _beyond(d, margin)
    return below if better == "higher" else above


def equivalence_bound(low: float, high: float) -> float:
    """The smallest margin (on the ratio) an interval of the mean log ratio lies within, on both sides."""
    return math.expm1(max(abs(low), abs(high)))


def noninferiority_bound(low: float, high: float, better: str) -> float:
    """The smallest margin an interval meets on the worse side only: negative when the whole interval is better."""
    return math.expm1(-low if better == "higher" else high)


def tost_rows(d: np.ndarray, margin: float) -> np.ndarray:
    """The paired TOST's p (the larger one-sided p) within +-log(1 + margin) on every row of d at once."""
    bound = math.log1p(margin)
    high = stats.ttest_1samp(d, bound, axis=-1, alternative="less").pvalue
    low = stats.ttest_1samp(d, -bound, axis=-1, alternative="greater").pvalue
    return np.maximum(low, high)


def noninferiority_rows(d: np.ndarray, margin: float) -> np.ndarray:
    """The one-sided non-inferiority p (H0: mean log ratio >= log(1 + margin)) on every row of d at once."""
    return stats.ttest_1samp(d, math.log1p(margin), axis=-1, alternative="less").pvalue


def mcnemar_p(a, b) -> float:
    """Exact McNemar test of two paired arms' failures: a and b per seed, 1 failed, 0 not, NaN not run (seeds that
    ran both count)."""
    from statsmodels.stats.contingency_tables import mcnemar

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    both = np.isfinite(a) & np.isfinite(b)
    a, b = a[both].astype(bool), b[both].astype(bool)
    if not both.any():
        return math.nan
    return float(mcnemar([[0, int((a & ~b).sum())], [int((~a & b).sum()), 0]], exact=True).pvalue)
