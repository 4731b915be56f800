"""analysis/cells.py: the per-cell summary and failure tables, their intervals checked against scipy's and
statsmodels'."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint

from ganablate.analysis import cells
from ganablate.study.plan import Plan
from tests.synthetic_runs import FEED_NORM_FID, JOINT, feed_norm_study, runs_table


def test_summary_and_failures_are_per_cell_with_t_and_wilson_intervals():
    runs = runs_table(FEED_NORM_FID, diverged={(("joint", "batch"), 2)})
    plan = Plan.from_config(feed_norm_study())
    summary = cells.summary_table(runs, plan)
    row = summary[(summary["feed"] == "joint") & (summary["norm"] == "batch")].iloc[0]
    kept = np.delete(np.array(JOINT), 2)
    ci = sps.ttest_1samp(kept, 0).confidence_interval(0.95)
    assert (row["n"], row["n_failed"]) == (5, 1)
    assert (row["mean_ci_low"], row["mean_ci_high"]) == pytest.approx((ci.low, ci.high))
    failures = cells.failures_table(runs, plan)
    assert list(failures.columns[:2]) == ["feed", "norm"]
    joint = failures[(failures["feed"] == "joint") & (failures["norm"] == "batch")].iloc[0]
    assert joint["n_failed"] == 1 and joint["failure_rate"] == pytest.approx(1 / 6)
    assert (joint["rate_ci_low"], joint["rate_ci_high"]) == pytest.approx(proportion_confint(1, 6, method="wilson"))
