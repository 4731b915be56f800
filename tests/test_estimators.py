"""analysis/estimators.py: the IQM and the intervals, checked against scipy and by their coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from ganablate.analysis import estimators


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 9, 13])
def test_iqm_is_scipys_quarter_trimmed_mean(n):
    x = np.random.default_rng(n).lognormal(size=n)
    assert estimators.iqm(x) == pytest.approx(sps.trim_mean(x, 0.25))


def test_intervals_cover_95_percent_at_six_seeds_on_normal_data():
    rng = np.random.default_rng(2024)
    hits = {"mean": 0, "median": 0}
    for _ in range(2000):
        x = rng.normal(10.0, 2.0, size=6)
        low, high = estimators.mean_interval(x, 0.95)
        hits["mean"] += low <= 10.0 <= high
        low, high = estimators.median_interval(x, 0.95)
        hits["median"] += low <= 10.0 <= high
    assert all(v / 2000 >= 0.93 for v in hits.values()), hits


def test_fieller_interval_covers_the_ratio_of_paired_means_and_is_nan_when_unbounded():
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(1000):
        b = rng.normal(1.0, 0.3, size=6)
        a = 0.25 * b + rng.normal(0, 0.1, size=6)
        low, high = estimators.fieller_interval(a, b, 0.95)
        hits += low <= 0.25 <= high
    assert hits / 1000 >= 0.93
    low, high = estimators.fieller_interval(np.arange(1.0, 7), np.array([0.1, -0.2, 0.15, -0.1, 0.05, -0.1]), 0.95)
    assert math.isnan(low) and math.isnan(high)
