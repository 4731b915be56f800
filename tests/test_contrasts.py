"""The contrast engine against independent computations (numpy, scipy, statsmodels written out here), and the
verdict rules that a generic engine must not carry over from the feed-only release."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from ganablate.analysis.cells import failed_rows
from ganablate.analysis.contrasts import contrasts_table
from ganablate.design import design_of
from tests.synthetic_runs import runs_table, study_config

RNG = np.random.default_rng(7)
SEEDS = 6


def _table(runs, config):
    design = design_of(config)
    return contrasts_table(runs, design, config, failed_rows(runs, design, config))


def _row(table: pd.DataFrame, **keys) -> pd.Series:
    rows = table
    for key, value in keys.items():
        rows = rows[rows[key] == value]
    assert len(rows) == 1, f"{len(rows)} rows match {keys}"
    return rows.iloc[0]


def _batch_study():
    """feed {split, joint} x batch {16, 64, 256} (ordered): joint's gap grows with batch size."""
    base = RNG.lognormal(4, 0.2, SEEDS)
    values = {}
    for b, size in (("16", 16), ("64", 64), ("256", 256)):
        shift = RNG.normal(0, 0.05, SEEDS) - 0.1 * math.log2(size)
        for feed, gap in (("split", 0.0), ("joint", 0.2 + 0.15 * math.log2(size / 16))):
            noise = RNG.normal(0, 0.05, SEEDS)
            values[(feed, b)] = base * np.exp(shift + gap + noise)
    config = study_config(
        {
            "feed": ["split", "joint"],
            "batch": {"sets": "train.batch_size", "levels": [16, 64, 256], "reference": 64, "ordered": True},
        },
        seeds=SEEDS,
        confirmatory=[
            {"kind": "trend", "over": "batch", "compare": {"feed": "joint"}},
            {"compare": {"feed": "joint"}},
            {"kind": "interaction", "compare": {"feed": "joint"}, "by": {"batch": [16, 256]}},
        ],
    )
    return runs_table(values, axes=["feed", "batch"]), values, config


def test_a_simple_contrast_is_scipys_paired_t_test_on_the_log_ratio():
    runs, values, config = _batch_study()
    row = _row(_table(runs, config), kind="simple", axis="feed", batch="64", metric="fid")
    a, b = np.log(values[("joint", "64")]), np.log(values[("split", "64")])
    test = stats.ttest_rel(a, b)
    ci = test.confidence_interval(0.95)
    assert row["n_pairs"] == SEEDS and row["feed"] == "*"
    assert row["ratio"] == pytest.approx(math.exp((a - b).mean()), rel=1e-12)
    assert (row["ratio_ci_low"], row["ratio_ci_high"]) == pytest.approx(
        (math.exp(ci.low), math.exp(ci.high)), rel=1e-10
    )
    assert row["p"] == pytest.approx(test.pvalue, rel=1e-10)
    assert row["pair_correlation"] == pytest.approx(stats.pearsonr(a, b).statistic, rel=1e-10)


def test_an_interaction_is_the_per_seed_difference_in_differences_of_log_metric():
    runs, values, config = _batch_study()
    row = _row(_table(runs, config), kind="interaction", by_level="256", by_level_ref="16", metric="fid")
    log = {k: np.log(v) for k, v in values.items()}
    d = (log[("joint", "256")] - log[("split", "256")]) - (log[("joint", "16")] - log[("split", "16")])
    assert row["ratio"] == pytest.approx(math.exp(d.mean()), rel=1e-12)
    assert row["p"] == pytest.approx(stats.ttest_1samp(d, 0).pvalue, rel=1e-10)
    assert row["role"] == "confirmatory" and row["feed"] == row["batch"] == "*"


def test_a_trend_is_the_per_seed_ols_slope_per_doubling_of_the_ordered_axis():
    runs, values, config = _batch_study()
    row = _row(_table(runs, config), kind="trend", axis="feed", by_axis="batch", metric="fid")
    x = np.log2([16, 64, 256])
    ratios = np.array([np.log(values[("joint", b)] / values[("split", b)]) for b in ("16", "64", "256")]).T
    slopes = np.array([np.polyfit(x, r, 1)[0] for r in ratios])
    ci = stats.ttest_1samp(slopes, 0).confidence_interval(0.95)
    assert row["ratio"] == pytest.approx(math.exp(slopes.mean()), rel=1e-10)
    assert row["ratio_ci_low"] == pytest.approx(math.exp(ci.low), rel=1e-9)
    assert row["verdict"] == "worse"  # the true slope is log(1.16) per doubling, well resolved at 6 seeds
    metric_trend = _row(_table(runs, config), kind="trend", feed="split", by_axis="batch", metric="fid")
    own = np.array(
        [np.polyfit(x, np.log([values[("split", b)][s] for b in ("16", "64", "256")]), 1)[0] for s in range(SEEDS)]
    )
    assert metric_trend["ratio"] == pytest.approx(math.exp(own.mean()), rel=1e-10)


def test_holm_adjusts_exactly_the_confirmatory_family():
    runs, _, config = _batch_study()
    table = _table(runs, config)
    family = table[table["role"] == "confirmatory"]
    # declared: a trend, joint vs split at each of 3 sizes, one interaction
    assert len(family) == 5 and set(family["kind"]) == {"trend", "simple", "interaction"}
    assert family["p_holm"].to_numpy() == pytest.approx(multipletests(family["p"], method="holm")[1])
    assert table.loc[table["role"] != "confirmatory", "p_holm"].isna().all()
    assert set(table.loc[table["step"] == 500, "role"]) == {"confirmatory", "control", "exploratory"}


def _pair(split, joint, diverged=frozenset()):
    config = study_config({"feed": ["split", "joint"]}, seeds=len(split))
    return _table(runs_table({("split",): split, ("joint",): joint}, axes=["feed"], diverged=diverged), config)


SPLIT = np.array([100.0, 104, 97, 101, 99, 103])


def test_no_equivalent_verdict_when_a_run_of_either_arm_failed():
    """The release before this engine called this control equivalent on the 4 surviving pairs."""
    joint = SPLIT * np.array([1.004, 0.998, 1.003, 0.999, 1.002, 1.001])
    row = _row(_pair(SPLIT, joint, diverged={(("joint",), 0), (("joint",), 3)}), metric="fid")
    assert row["p_equivalence"] < 0.05 and row["n_pairs"] == 4 and row["n_failed"] == 2
    assert row["verdict"] == "inconclusive"
    assert row["p_failures"] == pytest.approx(mcnemar([[0, 0], [2, 0]], exact=True).pvalue)


def test_equivalence_is_judged_on_the_one_minus_two_alpha_interval_and_reports_the_smallest_margin_met():
    joint = SPLIT * np.exp(np.array([0.05, 0.02, 0.07, 0.03, 0.06, 0.04]))
    row = _row(_pair(SPLIT, joint), metric="fid")
    d = np.log(joint / SPLIT)
    ci90 = stats.ttest_1samp(d, 0).confidence_interval(0.90)
    assert (row["equivalence_ci_low"], row["equivalence_ci_high"]) == pytest.approx(
        (math.exp(ci90.low), math.exp(ci90.high))
    )
    assert row["equivalence_bound"] == pytest.approx(math.expm1(max(abs(ci90.low), abs(ci90.high))))
    # TOST at margin m says equivalent exactly when the 90% CI lies within [1/(1+m), 1+m]
    assert (row["p_equivalence"] < 0.05) == (row["equivalence_bound"] < 0.10)


def test_identical_arms_are_identical_not_equivalent():
    row = _row(_pair(SPLIT, SPLIT.copy()), metric="fid")
    assert row["verdict"] == "identical"
    nearly = _row(_pair(SPLIT, SPLIT * (1 + 1e-9)), metric="fid")
    assert nearly["verdict"] != "identical"


def test_a_large_effect_is_never_equivalent_and_its_verdict_follows_the_metrics_direction():
    joint = SPLIT * 2 * np.exp(RNG.normal(0, 0.02, 6))
    config = study_config({"feed": ["split", "joint"]}, seeds=6)
    runs = pd.concat(
        [
            runs_table({("split",): x, ("joint",): y}, axes=["feed"], metric=metric)
            for metric, x, y in (("fid", SPLIT, joint), ("is", 100 / SPLIT, 100 / joint))
        ]
    )
    table = _table(runs, config)
    assert _row(table, metric="fid")["verdict"] == "worse"  # lower is better: twice the FID
    assert _row(table, metric="is")["verdict"] == "worse"  # higher is better: half the IS
    assert _row(table, metric="fid")["equivalence_bound"] > 0.5
