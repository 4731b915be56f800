"""Estimators over arrays, rliable-style: pure functions that never know what a variant is.

Every test and interval comes from scipy or statsmodels except three written here, which neither offers: the
interquartile mean, Fieller's interval for a ratio of paired means, and Holm's adjustment of many simulated
families at once (power.py; checked against statsmodels). Random draws are seeded per group key, so the same
runs.csv always gives byte-identical tables whatever other groups it holds.
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


def bootstrap_ci(samples: tuple, statistic, cfg: dict, key: tuple) -> tuple[float, float]:
    """BCa, or percentile where BCa is undefined; only for the IQM, which has no exact interval."""
    if any(len(s) < 2 for s in samples):
        return math.nan, math.nan
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BCa's degenerate-data warning is acted on below
            ci = stats.bootstrap(
                samples,
                statistic,
                n_resamples=cfg["bootstrap_resamples"],
                confidence_level=cfg["confidence_level"],
                method=method,
                vectorized=True,
                batch=BOOTSTRAP_BATCH,
                rng=group_rng(cfg["seed"], key),
            ).confidence_interval
        if np.isfinite(ci.low) and np.isfinite(ci.high):
            return float(ci.low), float(ci.high)
    return math.nan, math.nan


def mean_interval(x, level: float) -> tuple[float, float]:
    """Student-t interval of the mean (exact coverage for normal data at any n >= 2)."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    if np.ptp(x) == 0:
        return float(x[0]), float(x[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's precision warning for nearly identical values: the CI is still right
        ci = stats.ttest_1samp(x, 0.0).confidence_interval(level)
    return float(ci.low), float(ci.high)


def median_interval(x, level: float) -> tuple[float, float]:
    """Distribution-free interval of the median from order statistics (scipy's quantile_test); NaN where the
    sample is too small to reach the level (n = 5 reaches 94%, so 95% needs n >= 6)."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    ci = stats.quantile_test(x, q=float(np.median(x)), p=0.5).confidence_interval(level)
    low, high = float(ci.low), float(ci.high)
    return (low, high) if np.isfinite(low) and np.isfinite(high) else (math.nan, math.nan)


def paired_interval(d, level: float) -> tuple[float, float]:
    """Paired-t interval of the mean of the per-seed differences d."""
    return mean_interval(d, level)


def wilson_interval(count: float, n: int, level: float) -> tuple[float, float]:
    """Wilson's interval of a proportion count / n (statsmodels), exactly 0 (or 1) at none (or all): the formula
    leaves float dust there."""
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(count, n, alpha=1 - level, method="wilson")
    return (0.0 if count == 0 else float(low)), (1.0 if count == n else float(high))


def fieller_interval(a, b, level: float) -> tuple[float, float]:
    """Fieller's interval for mean(a) / mean(b) of paired samples (neither scipy nor statsmodels has it).
    NaN when mean(b) is not distinguishable from 0 at this level: the interval is then unbounded."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(a)
    if n < 2:
        return math.nan, math.nan
    cov = np.cov(a, b, ddof=1) / n  # covariance matrix of the two means
    t2 = stats.t.ppf(0.5 + level / 2, n - 1) ** 2
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
