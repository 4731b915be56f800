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
from statsmodels.stats.weightstats import ttost_paired

from ganablate.analysis import power
from ganablate.analysis.cells import failed_rows
from ganablate.analysis.contrasts import as_cells, contrasts_of, contrasts_table, wide
from ganablate.analysis.verdicts import verdicts
from ganablate.study.plan import Plan
from tests.synthetic_runs import runs_table, study_config

RNG = np.random.default_rng(7)
SEEDS = 6


def _table(runs, config):
    plan = Plan.from_config(config)
    return contrasts_table(runs, plan, failed_rows(runs, plan))


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
    # controls only as declared (stats.controls: none here); the other simple effects are exploratory
    assert set(table.loc[table["step"] == 500, "role"]) == {"confirmatory", "exploratory"}


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


# --- the linear kind and declared hypotheses -------------------------------------------------------

FIVE = ["split", "joint", "joint_consistent", "split_g_mixed", "joint_cached_stats"]
MISMATCH = {"joint": 1, "split_g_mixed": 1, "split": -1, "joint_consistent": -1}
LINEAR = {"kind": "linear", "weights": {"feed": MISMATCH}, "within": {"norm": "batch"}}
LINEAR_NAME = "feed[joint + split_g_mixed - split - joint_consistent] | norm=batch"


def _mechanism_study(gaps=None, seeds=SEEDS, **stats):
    """The five feeds x norm {none, batch}: under batch the mismatched cells are worse; under none every feed alike."""
    rng = np.random.default_rng(11)
    gaps = gaps or {
        "split": 0.0,
        "joint": 1.0,
        "joint_consistent": 0.3,
        "split_g_mixed": 0.6,
        "joint_cached_stats": 0.31,
    }
    base = rng.lognormal(4, 0.2, seeds)
    values = {
        (f, n): base * np.exp((gaps[f] if n == "batch" else 0.0) + rng.normal(0, 0.06, seeds))
        for f in FIVE
        for n in ("none", "batch")
    }
    config = study_config({"feed": FIVE, "norm": ["none", "batch"]}, seeds=seeds, **stats)
    return values, config


def _assert_paired_t_of_a_family_of_one(row: pd.Series, d: np.ndarray) -> None:
    """The row's ratio, 95% and 90% CIs and p are scipy's one-sample t on the per-seed log differences d."""
    test = stats.ttest_1samp(d, 0.0)
    ci, ci90 = test.confidence_interval(0.95), test.confidence_interval(0.90)
    assert row["ratio"] == pytest.approx(math.exp(d.mean()), rel=1e-12)
    assert (row["ratio_ci_low"], row["ratio_ci_high"]) == pytest.approx(
        (math.exp(ci.low), math.exp(ci.high)), rel=1e-10
    )
    assert (row["equivalence_ci_low"], row["equivalence_ci_high"]) == pytest.approx(
        (math.exp(ci90.low), math.exp(ci90.high)), rel=1e-10
    )
    assert row["p"] == pytest.approx(test.pvalue, rel=1e-10)
    assert row["p_holm"] == pytest.approx(test.pvalue, rel=1e-10)  # a family of one


def _logs(values, norm="batch"):
    return {f: np.log(values[(f, norm)]) for f in FIVE}


def test_a_linear_contrast_is_the_per_seed_weighted_sum_of_log_metric_over_levels_of_one_axis():
    values, config = _mechanism_study(confirmatory=[LINEAR])
    table = _table(runs_table(values, axes=["feed", "norm"]), config)
    row = _row(table, kind="linear", metric="fid")
    log = _logs(values)
    d = log["joint"] + log["split_g_mixed"] - log["split"] - log["joint_consistent"]
    assert row["contrast"] == row["declared"] == LINEAR_NAME
    assert (row["axis"], row["level"], row["level_ref"]) == (
        "feed",
        "joint + split_g_mixed",
        "split + joint_consistent",
    )
    assert (row["feed"], row["norm"], row["role"], row["n_pairs"]) == ("*", "batch", "confirmatory", SEEDS)
    _assert_paired_t_of_a_family_of_one(row, d)
    pairs = [("joint", "split_g_mixed"), ("joint", "split"), ("joint", "joint_consistent")]
    pairs += [("split_g_mixed", "split"), ("split_g_mixed", "joint_consistent"), ("split", "joint_consistent")]
    r = np.mean([stats.pearsonr(log[a], log[b]).statistic for a, b in pairs])
    assert row["pair_correlation"] == pytest.approx(r, rel=1e-10)
    assert row["verdict"] == "worse"  # true ratio exp(1.0 + 0.6 - 0.3) = 3.7, lower is better
    assert len(table[table["kind"] == "linear"]) == 1  # declared only, within norm=batch, at one step and metric


def test_a_linear_contrast_takes_any_weights_summing_to_zero_and_names_them():
    spec = {"kind": "linear", "weights": {"feed": {"joint": 2, "split": -1, "joint_consistent": -1}}}
    values, config = _mechanism_study(contrasts=[spec])
    table = _table(runs_table(values, axes=["feed", "norm"]), config)
    for norm in ("none", "batch"):
        row = _row(table, kind="linear", norm=norm, metric="fid")
        log = _logs(values, norm)
        d = 2 * log["joint"] - log["split"] - log["joint_consistent"]
        assert row["contrast"] == f"feed[2*joint - split - joint_consistent] | norm={norm}"
        assert row["declared"] == "feed[2*joint - split - joint_consistent]"
        assert (row["level"], row["level_ref"], row["role"]) == ("2*joint", "split + joint_consistent", "exploratory")
        assert row["ratio"] == pytest.approx(math.exp(d.mean()), rel=1e-12)
        assert row["p"] == pytest.approx(stats.ttest_1samp(d, 0.0).pvalue, rel=1e-10)


NONINFERIOR = {
    "compare": {"feed": "joint_cached_stats"},
    "against": {"feed": "joint_consistent"},
    "within": {"norm": "batch"},
    "test": "noninferiority",
}


def test_a_declared_noninferiority_test_is_one_sided_at_the_margin_and_holm_adjusted_with_its_family():
    family = [LINEAR, NONINFERIOR, {"compare": {"feed": "joint"}, "within": {"norm": "batch"}}]
    values, config = _mechanism_study(confirmatory=family)
    table = _table(runs_table(values, axes=["feed", "norm"]), config)
    log = _logs(values)
    name = "feed: joint_cached_stats vs joint_consistent (non-inferiority, margin 10%) | norm=batch"
    row = _row(table, contrast=name, metric="fid")
    d = log["joint_cached_stats"] - log["joint_consistent"]
    p_ni = stats.ttest_1samp(d, math.log(1.1), alternative="less").pvalue
    ci90 = stats.ttest_1samp(d, 0.0).confidence_interval(0.90)
    assert row["p_equivalence"] == pytest.approx(p_ni, rel=1e-10)
    assert row["p"] == pytest.approx(stats.ttest_1samp(d, 0.0).pvalue, rel=1e-10)  # the difference, for reference
    assert row["equivalence_ci_high"] == pytest.approx(math.exp(ci90.high), rel=1e-10)
    assert row["equivalence_bound"] == pytest.approx(math.expm1(ci90.high), rel=1e-10)  # one-sided: the upper end
    # Holm over the family's own p: the linear and simple contrasts' two-sided p, this one's one-sided p
    members = table[table["role"] == "confirmatory"]
    assert len(members) == 3
    p_linear = stats.ttest_1samp(log["joint"] + log["split_g_mixed"] - log["split"] - log["joint_consistent"], 0).pvalue
    p_simple = stats.ttest_rel(log["joint"], log["split"]).pvalue
    expected = multipletests([p_linear, p_ni, p_simple], method="holm")[1]
    got = [_row(members, kind="linear")["p_holm"], row["p_holm"], _row(members, level="joint")["p_holm"]]
    assert got == pytest.approx(expected, rel=1e-10)
    assert row["p_holm"] < 0.05 and row["verdict"] == "non-inferior"


def test_noninferiority_follows_the_metrics_direction_and_takes_a_margin_of_its_own():
    values, config = _mechanism_study(contrasts=[NONINFERIOR | {"margin": 0.05}])
    runs = pd.concat(
        [
            runs_table(values, axes=["feed", "norm"], metric="fid"),
            runs_table({k: 100 / np.asarray(v) for k, v in values.items()}, axes=["feed", "norm"], metric="is"),
        ]
    )
    table = _table(runs, config)
    name = "feed: joint_cached_stats vs joint_consistent (non-inferiority, margin 5%) | norm=batch"
    fid, inception = _row(table, contrast=name, metric="fid"), _row(table, contrast=name, metric="is")
    d = np.log(values[("joint_cached_stats", "batch")] / values[("joint_consistent", "batch")])
    assert fid["p_equivalence"] == pytest.approx(stats.ttest_1samp(d, math.log(1.05), alternative="less").pvalue)
    # higher is better: H0 the ratio is below 1/1.05; the IS contrast is -d seed by seed, so the same p
    assert inception["p_equivalence"] == pytest.approx(
        stats.ttest_1samp(-d, -math.log(1.05), alternative="greater").pvalue
    )
    assert inception["p_equivalence"] == pytest.approx(fid["p_equivalence"], rel=1e-9)
    assert fid["role"] == "exploratory"  # declared in stats.contrasts: neither the family nor a control
    assert fid["verdict"] in ("non-inferior", "inferior", "inconclusive")


def test_no_noninferiority_or_equivalence_verdict_when_a_run_of_the_compared_cells_failed():
    specs = [NONINFERIOR, NONINFERIOR | {"test": "equivalence"}]
    values, config = _mechanism_study(seeds=8, confirmatory=specs)
    table = _table(runs_table(values, axes=["feed", "norm"]), config)
    assert set(table.loc[table["role"] == "confirmatory", "verdict"]) == {"non-inferior", "equivalent"}
    failed = runs_table(values, axes=["feed", "norm"], diverged={(("joint_cached_stats", "batch"), 5)})
    table = _table(failed, config)
    rows = table[table["role"] == "confirmatory"]
    # the survivors decide nothing: each member untestable, counted as p = 1 in Holm, and inconclusive
    assert rows["p_equivalence"].lt(0.05).all() and rows["p_holm"].isna().all() and (rows["n_failed"] == 1).all()
    assert set(rows["verdict"]) == {"inconclusive"}
    assert rows["note"].str.contains("failed runs: 1 in joint_cached_stats, 0 in joint_consistent").all()


def test_a_declared_equivalence_test_is_the_paired_tost_and_identical_arms_stay_identical():
    spec = {"compare": {"feed": "joint"}, "test": "equivalence", "margin": 0.2}
    config = study_config({"feed": ["split", "joint"]}, seeds=6, confirmatory=[spec])
    joint = SPLIT * np.exp(np.array([0.05, -0.02, 0.07, 0.03, -0.06, 0.04]))
    table = _table(runs_table({("split",): SPLIT, ("joint",): joint}, axes=["feed"]), config)
    row = _row(table, metric="fid")  # one row: the automatic control of joint vs split gives way to the declared test
    assert row["contrast"] == "feed: joint vs split (equivalence, margin 20%)"
    assert row["p_equivalence"] == pytest.approx(ttost_paired(joint, SPLIT, 1 / 1.2, 1.2, transform=np.log)[0])
    assert row["p_holm"] == row["p_equivalence"] and row["verdict"] == "equivalent"
    wide = SPLIT * np.exp(np.array([0.3, -0.2, 0.25, 0.1, -0.3, 0.2]))
    row = _row(_table(runs_table({("split",): SPLIT, ("joint",): wide}, axes=["feed"]), config), metric="fid")
    assert row["verdict"] == "inconclusive"  # its 90% interval reaches both inside and beyond the margin
    far = SPLIT * np.exp(np.array([0.5, 0.45, 0.55, 0.52, 0.48, 0.5]))
    row = _row(_table(runs_table({("split",): SPLIT, ("joint",): far}, axes=["feed"]), config), metric="fid")
    d = np.log(far / SPLIT)
    assert row["p_beyond_margin"] == pytest.approx(stats.ttest_1samp(d, math.log(1.2), alternative="greater").pvalue)
    assert row["verdict"] == "not equivalent"  # the interval wholly beyond the margin
    row = _row(_table(runs_table({("split",): SPLIT, ("joint",): SPLIT.copy()}, axes=["feed"]), config), metric="fid")
    assert row["verdict"] == "identical"


def test_power_simulates_a_declared_hypothesis_at_a_true_ratio_of_one_within_the_holm_family():
    sds, n = [0.1, 0.08], 8
    hypotheses = [("noninferiority", 0.1), ("equivalence", 0.1)]
    simulated = power.holm_power(
        "paired_t_log", math.log(1.25), sds, [n, n], 0.05, 4000, np.random.default_rng(3), hypotheses
    )
    rng, rejected = np.random.default_rng(97), np.zeros(2)
    for _ in range(1000):
        ref = rng.normal(4.0, 0.5, n)
        a, b = ref + rng.normal(0, sds[0], n), ref + rng.normal(0, sds[1], n)
        ps = [
            stats.ttest_1samp(a - ref, math.log(1.1), alternative="less").pvalue,
            ttost_paired(np.exp(b), np.exp(ref), 1 / 1.1, 1.1, transform=np.log)[0],
        ]
        for k, i in enumerate(np.argsort(ps)):  # Holm: reject in increasing p while p < alpha / (m - k)
            if ps[i] >= 0.05 / (2 - k):
                break
            rejected[i] += 1
    np.testing.assert_allclose(simulated, rejected / 1000, atol=0.05)


def _power_rows(values, config) -> pd.DataFrame:
    """power.csv of a feed x norm study's values, as `ganablate stats` computes it."""
    runs = runs_table(values, axes=["feed", "norm"])
    plan = Plan.from_config(config)
    table = contrasts_table(runs, plan, failed_rows(runs, plan))
    found, _, _ = contrasts_of(plan)
    names = plan.design.names
    logs = np.log(as_cells(wide(runs, names, "value"), names))
    return power.power_table(table, found, logs, plan)


def test_power_csv_gives_declared_hypotheses_their_own_rule_and_ratio():
    family = [LINEAR, NONINFERIOR, {"compare": {"feed": "joint"}, "within": {"norm": "batch"}}]
    values, config = _mechanism_study(confirmatory=family, power_simulations=300)
    rows = _power_rows(values, config)
    members = rows[rows["role"] == "confirmatory"]
    assert len(members) == 3 and (members["family_size"] == 3).all() and members["power"].notna().all()
    linear = _row(rows, kind="linear")
    noninferior = _row(rows, contrast=NONINFERIOR_NAME)
    assert linear["assumed_ratio"] == 1.25 and "Holm over 3, at a true ratio of 1.25" in linear["rule"]
    assert noninferior["assumed_ratio"] == 1.0
    assert noninferior["rule"] == "one-sided t for non-inferiority within +10%, Holm over 3, at a true ratio of 1"
    d = _logs(values)["joint_cached_stats"] - _logs(values)["joint_consistent"]
    assert noninferior["sd_log"] == pytest.approx(np.std(d, ddof=1))


NONINFERIOR_NAME = "feed: joint_cached_stats vs joint_consistent (non-inferiority, margin 10%) | norm=batch"


# --- a simple contrast of two cells that differ on several axes --------------------------------------------------

FIX = {"compare": {"feed": "joint", "norm": "ghost"}, "against": {"feed": "split", "norm": "batch"}}
FIX_NAME = "feed=joint, norm=ghost vs feed=split, norm=batch"
IN_JOINT = {"compare": {"norm": "ghost"}, "against": {"norm": "batch"}, "within": {"feed": "joint"}}


def _remedy_study(ghost=0.03, seeds=SEEDS, **stats):
    """feed {split, joint} x norm {batch, ghost}: joint+batch is worse; ghost brings joint near split+batch."""
    rng = np.random.default_rng(23)
    base = rng.lognormal(4, 0.2, seeds)
    shift = {("split", "batch"): 0.0, ("joint", "batch"): 0.3, ("split", "ghost"): 0.01, ("joint", "ghost"): ghost}
    values = {cell: base * np.exp(s + rng.normal(0, 0.03, seeds)) for cell, s in shift.items()}
    config = study_config({"feed": ["split", "joint"], "norm": ["batch", "ghost"]}, seeds=seeds, **stats)
    return values, config


def _fix_logs(values):
    return np.log(values[("joint", "ghost")]), np.log(values[("split", "batch")])


def test_a_contrast_of_two_cells_that_differ_on_two_axes_is_scipys_t_test_on_their_per_seed_log_ratio():
    values, config = _remedy_study(confirmatory=[FIX])
    table = _table(runs_table(values, axes=["feed", "norm"]), config)
    row = _row(table, contrast=FIX_NAME, metric="fid")
    a, b = _fix_logs(values)
    assert row["declared"] == FIX_NAME and row["kind"] == "simple"
    assert (row["axis"], row["level"], row["level_ref"]) == ("feed,norm", "joint,ghost", "split,batch")
    assert (row["feed"], row["norm"], row["role"], row["n_pairs"], row["n_failed"]) == ("*", "*", "confirmatory", 6, 0)
    _assert_paired_t_of_a_family_of_one(row, a - b)
    # the two cells share G's init, the real batches and z but not D's init (norm reseeds it): r per row, as ever
    assert row["pair_correlation"] == pytest.approx(stats.pearsonr(a, b).statistic, rel=1e-10)
    assert row["p_failures"] == pytest.approx(mcnemar([[0, 0], [0, 0]], exact=True).pvalue)
    assert len(table[table["contrast"] == FIX_NAME]) == len(table[["step", "metric"]].drop_duplicates())


def test_the_automatic_contrasts_are_the_same_with_a_contrast_of_two_cells_declared():
    values, config = _remedy_study()
    runs = runs_table(values, axes=["feed", "norm"])
    without = _table(runs, config)
    _, declared = _remedy_study(contrasts=[FIX])
    table = _table(runs, declared)
    assert set(table["contrast"]) - set(without["contrast"]) == {FIX_NAME}
    kept = table[table["contrast"] != FIX_NAME].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, without)
    assert _row(table, contrast=FIX_NAME, metric="fid")["role"] == "exploratory"  # declared in stats.contrasts


def test_a_noninferiority_test_of_two_cells_that_differ_on_two_axes_is_one_sided_and_holm_adjusted():
    values, config = _remedy_study(confirmatory=[FIX | {"test": "noninferiority"}, IN_JOINT], power_simulations=300)
    runs = runs_table(values, axes=["feed", "norm"])
    table = _table(runs, config)
    name = f"{FIX_NAME} (non-inferiority, margin 10%)"
    row = _row(table, contrast=name, metric="fid")
    a, b = _fix_logs(values)
    d = a - b
    p_ni = stats.ttest_1samp(d, math.log(1.1), alternative="less").pvalue
    ci90 = stats.ttest_1samp(d, 0.0).confidence_interval(0.90)
    assert row["p_equivalence"] == pytest.approx(p_ni, rel=1e-10)
    assert row["equivalence_bound"] == pytest.approx(math.expm1(ci90.high), rel=1e-10)
    p_in_joint = stats.ttest_rel(np.log(values[("joint", "ghost")]), np.log(values[("joint", "batch")])).pvalue
    expected = multipletests([p_ni, p_in_joint], method="holm")[1]
    got = [row["p_holm"], _row(table, contrast="norm: ghost vs batch | feed=joint", metric="fid")["p_holm"]]
    assert got == pytest.approx(expected, rel=1e-10)
    assert row["p_holm"] < 0.05 and row["verdict"] == "non-inferior"
    # power.csv: the one-sided rule at a true ratio of 1, Holm over the family, at this contrast's own spread
    plan = Plan.from_config(config)
    found, _, _ = contrasts_of(plan)
    logs = np.log(as_cells(wide(runs, plan.design.names, "value"), plan.design.names))
    rows = power.power_table(table, found, logs, plan)
    own = _row(rows, contrast=name)
    assert own["rule"] == "one-sided t for non-inferiority within +10%, Holm over 2, at a true ratio of 1"
    assert own["sd_log"] == pytest.approx(np.std(d, ddof=1)) and own["n_pairs"] == SEEDS and 0 < own["power"] <= 1
    # a failed run of either cell: McNemar on the failures, and no non-inferiority verdict
    failed = _table(runs_table(values, axes=["feed", "norm"], diverged={(("joint", "ghost"), 2)}), config)
    row = _row(failed, contrast=name, metric="fid")
    assert (row["n_failed"], row["n_pairs"], row["verdict"]) == (1, SEEDS - 1, "inconclusive")
    assert row["p_failures"] == pytest.approx(mcnemar([[0, 1], [0, 0]], exact=True).pvalue)


def test_two_cells_that_differ_on_two_axes_but_give_bitwise_equal_runs_are_identical():
    values, config = _remedy_study(confirmatory=[FIX | {"test": "noninferiority"}])
    values[("joint", "ghost")] = values[("split", "batch")].copy()
    row = _row(_table(runs_table(values, axes=["feed", "norm"]), config), metric="fid", axis="feed,norm")
    assert row["verdict"] == "identical" and "bitwise-equal" in row["note"]


# --- issue 27's verdict rules: each test fails under d495673's rules ---------------------------------------------

TWELVE = np.array([100.0, 104, 97, 101, 99, 103, 98, 102, 100, 105, 96, 101])


def _two_feeds(split, joint, diverged=frozenset(), **stats):
    config = study_config({"feed": ["split", "joint"]}, seeds=len(split), **stats)
    return _table(runs_table({("split",): split, ("joint",): joint}, axes=["feed"], diverged=diverged), config)


def test_failures_decide_a_difference_and_an_arm_is_never_better_on_its_survivors_alone():
    """d495673 called joint 'better' from the survivors of an arm that failed in half its seeds."""
    joint = TWELVE * 0.8 * np.exp(RNG.normal(0, 0.01, 12))  # its survivors clearly better
    half = {(("joint",), s) for s in range(6)}
    row = _row(_two_feeds(TWELVE, joint, diverged=half), metric="fid")
    assert row["p"] < 0.001 and (row["n_failed_level"], row["n_failed_level_ref"]) == (6, 0)
    assert row["p_failures"] == pytest.approx(mcnemar([[0, 0], [6, 0]], exact=True).pvalue)  # 0.03125
    assert row["verdict"] == "worse"  # the failures, by McNemar, not the survivors
    assert "failed runs: 6 in joint, 0 in split (McNemar p = 0.0312)" in row["note"]
    two = _row(_two_feeds(TWELVE, joint, diverged={(("joint",), 0), (("joint",), 1)}), metric="fid")
    assert two["p"] < 0.001 and two["p_failures"] > 0.05 and two["verdict"] == "inconclusive"


def test_holm_counts_an_untestable_member_of_the_family_as_p_one():
    """d495673 dropped it, so the family shrank: here from two members to one."""
    config = study_config(
        {"feed": ["split", "joint", "joint_consistent"]},
        seeds=6,
        confirmatory=[{"compare": {"feed": "joint"}}, {"compare": {"feed": "joint_consistent"}}],
    )
    joint = SPLIT * 1.05 * np.exp(np.array([0.02, -0.01, 0.03, 0.0, -0.02, 0.01]))
    values = {("split",): SPLIT, ("joint",): joint, ("joint_consistent",): np.zeros(6)}  # no log contrast
    table = _table(runs_table(values, axes=["feed"]), config)
    members = table[(table["role"] == "confirmatory") & (table["metric"] == "fid")].set_index("level")
    assert np.isnan(members.loc["joint_consistent", "p"]) and np.isnan(members.loc["joint_consistent", "p_holm"])
    p = members.loc["joint", "p"]
    assert members.loc["joint", "p_holm"] == pytest.approx(multipletests([p, 1.0], method="holm")[1][0])
    assert members.loc["joint", "p_holm"] == pytest.approx(min(1.0, 2 * p))


def test_a_confirmatory_difference_is_never_called_equivalent_from_its_unadjusted_tost():
    joint = SPLIT * np.exp(np.array([0.004, -0.002, 0.003, -0.001, 0.002, 0.001]))
    declared = _row(_two_feeds(SPLIT, joint, confirmatory=[{"compare": {"feed": "joint"}}]), metric="fid")
    assert declared["role"] == "confirmatory" and declared["p_equivalence"] < 0.05 and declared["p_holm"] > 0.05
    assert declared["verdict"] == "inconclusive"
    control = _row(_two_feeds(SPLIT, joint, controls=[{"compare": {"feed": "joint"}}]), metric="fid")
    assert control["role"] == "control" and control["verdict"] == "equivalent"


@pytest.mark.parametrize(
    ("shift", "spread", "expected"),
    [(0.0, 0.02, "non-inferior"), (0.4, 0.02, "inferior"), (0.08, 0.2, "inconclusive")],
)
def test_noninferiority_has_three_outcomes(shift, spread, expected):
    """d495673 had two, and called an interval wholly beyond the margin 'not shown non-inferior'."""
    d = shift + spread * np.array([1.0, -0.5, 0.3, -1.2, 0.8, -0.4])
    spec = {"compare": {"feed": "joint"}, "test": "noninferiority"}
    row = _row(_two_feeds(SPLIT, SPLIT * np.exp(d), confirmatory=[spec]), metric="fid")
    assert row["p_beyond_margin"] == pytest.approx(stats.ttest_1samp(d, math.log(1.1), alternative="greater").pvalue)
    assert row["verdict"] == expected


def test_degenerate_cases_get_a_note_not_a_silent_verdict():
    constant = _row(_two_feeds(np.full(6, 100.0), np.full(6, 200.0)), metric="fid")
    assert np.isnan(constant["p"]) and constant["verdict"] == "inconclusive"
    assert "the same in every seed (no spread): no test" in constant["note"]
    kid = _row(_two_feeds(SPLIT, np.r_[-0.5, SPLIT[1:]]), metric="fid")
    assert "non-positive values: no log contrast" in kid["note"]
    runs, _, config = _batch_study()  # three equally spaced log2 levels: the middle one weighs 0 in the trend
    trend = _row(_table(runs, config), kind="trend", feed="joint", metric="fid")
    assert "64 weighs 0 in the trend" in trend["note"]


def test_power_is_printed_at_the_precision_its_simulations_give():
    # the first significant digit of the largest Monte Carlo SE, 0.5 / sqrt(n): 0.035, 0.011, 0.005, 0.0016
    assert [power.power_decimals(n) for n in (200, 2000, 10000, 100000)] == [2, 2, 3, 3]
    values, config = _mechanism_study(confirmatory=[NONINFERIOR], power_simulations=300)
    rows = _power_rows(values, config)
    shown = rows["power"].dropna()
    assert len(shown) and (shown == shown.round(2)).all()  # 300 simulations: SE up to 0.029, two decimals


def test_a_simple_contrast_gives_each_arms_geometric_mean_over_the_seeds_its_ratio_is_paired_over():
    """Two arms that both failed at the same level read a ratio of 1: their levels tell them from two that work."""
    broken = SPLIT * 5.5
    joint = broken * np.array([1.004, 0.998, 1.003, 0.999, 1.002, 1.001])
    row = _row(_pair(broken, joint, diverged={(("split",), 2)}), metric="fid")
    paired = [0, 1, 3, 4, 5]  # seed 2's split run diverged: its pair is out of the ratio and the levels alike
    level, level_ref = stats.gmean(joint[paired]), stats.gmean(broken[paired])
    assert (row["gmean_level"], row["gmean_level_ref"]) == pytest.approx((level, level_ref), rel=1e-12)
    assert row["ratio"] == pytest.approx(level / level_ref, rel=1e-12)
    runs, _, config = _batch_study()
    others = _table(runs, config).query("kind != 'simple'")
    assert len(others) and others[["gmean_level", "gmean_level_ref"]].isna().all().all()


def test_each_row_states_its_id_hypothesis_margin_and_identity_as_columns_that_power_and_the_verdicts_read():
    named = {"joint-within-20": {"compare": {"feed": "joint"}, "test": "equivalence", "margin": 0.2}}
    config = study_config({"feed": ["split", "joint"]}, seeds=6, confirmatory=named)
    runs = runs_table({("split",): SPLIT, ("joint",): SPLIT.copy()}, axes=["feed"])
    table = _table(runs, config)
    row = _row(table, metric="fid")
    assert (row["id"], row["test"], row["margin"], row["identical"]) == ("joint-within-20", "equivalence", 0.2, True)
    assert row["verdict"] == "identical"  # read from the identical column, whatever the note says
    table.loc[table["metric"] == "fid", "note"] = ""
    assert verdicts(table, 0.05)[row.name] == "identical"
    plan = Plan.from_config(config)
    found, _, _ = contrasts_of(plan)
    logs = np.log(as_cells(wide(runs, ["feed"], "value"), ["feed"]))
    rows = power.power_table(table, found, logs, plan)
    assert list(rows["id"]) == ["joint-within-20"]  # joined on the id and cell, not on the contrast's name
