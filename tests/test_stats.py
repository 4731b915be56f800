"""The statistics tables, each number checked against scipy/statsmodels called directly or worked by hand."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired
from statsmodels.stats.proportion import proportion_confint

from ganablate import cli, power, stats
from ganablate.config import UsageError
from tests.synthetic_runs import make_runs, runs_table, study_config

SPLIT = [40.0, 42.0, 45.0, 41.0, 50.0, 43.0]
JOINT = [55.0, 60.0, 48.0, 70.0, 52.0, 58.0]
CONSISTENT = [41.0, 44.0, 43.0, 47.0, 49.0, 40.0]
NONE_SPLIT = [30.0, 33.0, 31.0, 36.0, 29.0, 32.0]
NONE_JOINT = [31.0, 32.0, 34.0, 35.0, 30.0, 33.0]
VALUES = {("split", "batch"): SPLIT, ("joint", "batch"): JOINT, ("joint_consistent", "batch"): CONSISTENT,
          ("split", "none"): NONE_SPLIT, ("joint", "none"): NONE_JOINT, ("joint_consistent", "none"): NONE_SPLIT}


@pytest.fixture
def config():
    return study_config(seeds=6)


def _row(table: pd.DataFrame, **keys) -> pd.Series:
    mask = np.logical_and.reduce([table[k] == v for k, v in keys.items()])
    assert mask.sum() == 1, keys
    return table[mask].iloc[0]


# --- aggregation -------------------------------------------------------------------------------


def test_aggregate_writes_one_row_per_run_step_extractor_metric_with_the_run_status(tmp_path):
    make_runs(tmp_path / "runs", seeds=range(2), diverged={("joint", "batch", 1)}, images=False)
    paths = stats.write_aggregate([tmp_path / "runs"], tmp_path / "tables")
    runs, logs = pd.read_csv(paths[0]), pd.read_csv(paths[1])
    assert len(runs) == 3 * 2 * 2 * 2 * 7  # feeds x norms x seeds x steps x metrics
    assert not runs.duplicated(["dataset", "feed", "norm", "seed", "step", "extractor", "metric"]).any()
    failed = runs[(runs["feed"] == "joint") & (runs["norm"] == "batch") & (runs["seed"] == 1)]
    assert set(failed["status"]) == {"diverged"}
    assert failed[failed["step"] == 500]["value"].isna().all()
    assert set(runs.loc[runs.index.difference(failed.index), "status"]) == {"completed"}
    assert list(logs.columns[:5]) == ["dataset", "feed", "norm", "seed", "status"]
    assert "context_gap" in logs.columns


def test_aggregate_rejects_the_same_run_found_twice(tmp_path):
    make_runs(tmp_path / "runs", feeds=("split",), norms=("none",), seeds=range(1), images=False)
    shutil.copytree(tmp_path / "runs", tmp_path / "copy")
    with pytest.raises(UsageError, match="same run"):
        stats.aggregate([tmp_path / "runs", tmp_path / "copy"])


def test_aggregate_rejects_an_unevaluated_run(tmp_path):
    make_runs(tmp_path / "runs", feeds=("split",), norms=("none",), seeds=range(1), images=False)
    metrics = next((tmp_path / "runs").rglob("metrics.csv"))
    metrics.unlink()
    with pytest.raises(UsageError, match="metrics.csv"):
        stats.aggregate([tmp_path / "runs"])


# --- intervals with honest coverage at small n ---------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 9, 13])
def test_iqm_is_scipys_quarter_trimmed_mean(n):
    x = np.random.default_rng(n).lognormal(size=n)
    assert stats.iqm(x) == pytest.approx(sps.trim_mean(x, 0.25))


def test_intervals_cover_95_percent_at_six_seeds_on_normal_data():
    """Seeded simulation, 2000 studies of 6 seeds: the t, paired-ratio and order-statistic intervals reach
    their nominal 95% (the bootstrap BCa intervals they replace reached about 0.85 here)."""
    rng = np.random.default_rng(2024)
    hits = {"mean": 0, "median": 0, "ratio": 0}
    for _ in range(2000):
        x = rng.normal(10.0, 2.0, size=6)
        low, high = stats.mean_interval(x, 0.95)
        hits["mean"] += low <= 10.0 <= high
        low, high = stats.median_interval(x, 0.95)
        hits["median"] += low <= 10.0 <= high
        seed_effect = rng.normal(0.0, 1.0, size=6)  # shared by both feeds of a seed: the pairing
        log_ref, log_new = 4 + seed_effect + rng.normal(0, 0.1, 6), 4.2 + seed_effect + rng.normal(0, 0.1, 6)
        low, high = stats.paired_interval(log_new - log_ref, 0.95)
        hits["ratio"] += low <= 0.2 <= high
    coverage = {k: v / 2000 for k, v in hits.items()}
    assert all(c >= 0.93 for c in coverage.values()), coverage


def test_fieller_interval_covers_the_ratio_of_paired_means_and_is_nan_when_unbounded():
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(1000):
        b = rng.normal(1.0, 0.3, size=6)
        a = 0.25 * b + rng.normal(0, 0.1, size=6)
        low, high = stats.fieller_interval(a, b, 0.95)
        hits += low <= 0.25 <= high
    assert hits / 1000 >= 0.93
    low, high = stats.fieller_interval(np.array([1.0, 2, 3, 4, 5, 6]), np.array([0.1, -0.2, 0.15, -0.1, 0.05, -0.1]),
                                       0.95)
    assert math.isnan(low) and math.isnan(high)


def test_summary_uses_t_order_statistic_and_log_t_intervals_and_drops_diverged_runs(config):
    runs = runs_table({("split", "batch"): SPLIT + [1e6]}, diverged={("split", "batch", 6)})
    runs.loc[runs["seed"] == 6, "value"] = 1e6  # a diverged run's garbage value must not reach the mean
    row = stats.summary_table(runs, config).iloc[0]
    x = np.array(SPLIT)
    assert (row["n"], row["n_failed"]) == (6, 1)
    assert (row["mean"], row["sd"], row["median"]) == pytest.approx((x.mean(), x.std(ddof=1), 42.5))
    assert row["iqm"] == pytest.approx(np.mean([41, 42, 43, 45]))
    t = sps.ttest_1samp(x, 0).confidence_interval(0.95)
    assert (row["mean_ci_low"], row["mean_ci_high"]) == pytest.approx((t.low, t.high))
    # 6 values: the distribution-free 95% interval of the median is [min, max] (coverage 1 - 2/64 = 0.969).
    assert (row["median_ci_low"], row["median_ci_high"]) == (40.0, 50.0)
    g = sps.ttest_1samp(np.log(x), 0).confidence_interval(0.95)
    assert (row["gmean_ci_low"], row["gmean_ci_high"]) == pytest.approx((math.exp(g.low), math.exp(g.high)))
    assert row["iqm_ci_low"] < row["iqm"] < row["iqm_ci_high"]


def test_summary_of_five_seeds_says_the_median_interval_cannot_reach_95_percent(config):
    row = stats.summary_table(runs_table({("split", "batch"): SPLIT[:5]}), config).iloc[0]
    assert math.isnan(row["median_ci_low"]) and "order-statistic" in row["note"]


def test_summary_with_a_single_seed_has_nan_cis_and_a_note(config):
    row = stats.summary_table(runs_table({("split", "batch"): [40.0]}), config).iloc[0]
    assert row["n"] == 1 and row["mean"] == 40.0
    assert math.isnan(row["mean_ci_low"]) and math.isnan(row["iqm_ci_high"]) and math.isnan(row["sd"])
    assert "no CI" in row["note"]


# --- comparisons: paired, with equivalence and verdicts -------------------------------------------


def test_feed_effects_are_paired_by_seed_on_the_log_scale_and_match_scipy_and_statsmodels(config):
    table = stats.feed_effects_table(runs_table(VALUES), config)
    e = _row(table, norm="batch", feed_ref="split", feed="joint")
    a, b = np.log(JOINT), np.log(SPLIT)
    assert e["role"] == "confirmatory" and e["scale"] == "log" and e["n_pairs"] == 6
    assert e["ratio"] == pytest.approx(math.exp((a - b).mean()))
    ci = sps.ttest_rel(a, b).confidence_interval(0.95)
    assert (e["ratio_ci_low"], e["ratio_ci_high"]) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
    assert e["p_paired_t_unadj"] == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert e["p_wilcoxon_unadj"] == pytest.approx(sps.wilcoxon(a - b).pvalue)
    assert e["p_mwu_unadj"] == pytest.approx(sps.mannwhitneyu(JOINT, SPLIT).pvalue)
    assert e["p_welch_unadj"] == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue)
    assert e["within_seed_r"] == pytest.approx(sps.pearsonr(a, b).statistic)
    raw = sps.ttest_rel(JOINT, SPLIT).confidence_interval(0.95)
    assert (e["delta_ci_low"], e["delta_ci_high"]) == pytest.approx((raw.low, raw.high))
    assert e["p_equivalence"] == pytest.approx(ttost_paired(np.array(JOINT), np.array(SPLIT), 1 / 1.1, 1.1,
                                                            transform=np.log)[0])
    # The TOST by hand: two one-sided paired t-tests against log(1/1.1) and log(1.1).
    d = a - b
    by_hand = max(sps.ttest_1samp(d, -math.log(1.1), alternative="greater").pvalue,
                  sps.ttest_1samp(d, math.log(1.1), alternative="less").pvalue)
    assert e["p_equivalence"] == pytest.approx(by_hand)
    # P(improvement), paired: the share of seeds in which joint beats split, with a Wilson CI.
    wins = sum(j < s for j, s in zip(JOINT, SPLIT))
    assert e["p_improve"] == pytest.approx(wins / 6)
    low, high = proportion_confint(wins, 6, alpha=0.05, method="wilson")
    assert e["p_improve_ci_high"] == pytest.approx(high) and e["p_improve_ci_high"] > 0.3


def test_p_holm_adjusts_the_confirmatory_family_only_and_labels_every_other_p_unadjusted(config):
    table = stats.feed_effects_table(runs_table(VALUES), config)
    confirm = table[table["role"] == "confirmatory"]
    assert sorted(zip(confirm["norm"], confirm["feed_ref"], confirm["feed"])) == [
        ("batch", "joint", "joint_consistent"), ("batch", "split", "joint"), ("batch", "split", "joint_consistent")]
    np.testing.assert_allclose(confirm["p_holm"], multipletests(confirm["p_paired_t_unadj"], method="holm")[1])
    assert table.loc[table["role"] != "confirmatory", "p_holm"].isna().all()
    assert {c for c in table.columns if c.startswith("p_") and "holm" not in c} == {
        "p_paired_t_unadj", "p_wilcoxon_unadj", "p_mwu_unadj", "p_welch_unadj", "p_improve", "p_improve_ci_low",
        "p_improve_ci_high", "p_equivalence"}


def test_joint_consistent_is_compared_with_joint_directly_in_every_norm(config):
    table = stats.feed_effects_table(runs_table(VALUES), config)
    for norm in ("none", "batch"):
        assert len(table[(table["norm"] == norm) & (table["feed_ref"] == "joint")
                         & (table["feed"] == "joint_consistent") & (table["step"] == 500)]) == 1


def _pair_study(split, joint, norm="none"):
    return runs_table({("split", norm): split, ("joint", norm): joint, ("joint_consistent", norm): split})


def test_a_paired_effect_is_detected_where_mann_whitney_at_six_seeds_misses_it():
    config = study_config(norms=("none",), seeds=6, confirmatory=[{"norm": "none", "feed": "joint",
                                                                    "feed_ref": "split"}])
    split = [30.0, 60.0, 90.0, 120.0, 150.0, 180.0]  # seeds differ widely ...
    joint = [s * f for s, f in zip(split, [1.31, 1.29, 1.30, 1.32, 1.28, 1.30])]  # ... the feed adds 30% to each
    e = _row(stats.feed_effects_table(_pair_study(split, joint), config), feed_ref="split", feed="joint", step=500)
    assert e["p_mwu_unadj"] > 0.2  # the unpaired rank test sees overlapping samples
    assert e["p_holm"] < 0.001 and e["verdict"] == "worse"


def test_exactly_equal_pairs_are_declared_equivalent():
    config = study_config(norms=("none",), seeds=6)
    e = _row(stats.feed_effects_table(_pair_study(SPLIT, SPLIT), config), feed_ref="split", feed="joint", step=500)
    assert e["role"] == "equivalence" and e["p_equivalence"] < 1e-6 and e["verdict"] == "equivalent"


def test_a_large_effect_is_never_declared_equivalent():
    config = study_config(norms=("none",), seeds=6)
    joint = [2 * s + 0.01 * i for i, s in enumerate(SPLIT)]
    e = _row(stats.feed_effects_table(_pair_study(SPLIT, joint), config), feed_ref="split", feed="joint", step=500)
    assert e["p_equivalence"] > 0.99 and e["verdict"] == "worse"


def test_a_noisy_small_difference_is_inconclusive_not_no_difference():
    config = study_config(norms=("none",), seeds=6)
    joint = [s * f for s, f in zip(SPLIT, [1.3, 0.8, 1.1, 0.9, 1.25, 0.85])]
    e = _row(stats.feed_effects_table(_pair_study(SPLIT, joint), config), feed_ref="split", feed="joint", step=500)
    assert e["p_equivalence"] >= 0.05 and e["p_holm_equivalence_family"] >= 0.05 and e["verdict"] == "inconclusive"


def test_verdicts_follow_the_metric_direction():
    config = study_config(norms=("none",), seeds=6, primary_metric="is",
                          confirmatory=[{"norm": "none", "feed": "joint", "feed_ref": "split"}])
    joint = [s * 1.5 for s in SPLIT]
    runs = runs_table({("split", "none"): SPLIT, ("joint", "none"): joint}, metric="is")
    e = _row(stats.feed_effects_table(runs, config), feed="joint")
    assert e["verdict"] == "better"  # a higher Inception score is better


def test_diverged_runs_rank_worst_in_rank_tests_and_leave_the_paired_t_test(config):
    runs = runs_table(VALUES, diverged={("joint", "batch", 0)})
    e = _row(stats.feed_effects_table(runs, config), norm="batch", feed_ref="split", feed="joint", step=500)
    assert (e["n_pairs"], e["n_pairs_failed"]) == (5, 1)
    assert e["p_paired_t_unadj"] == pytest.approx(sps.ttest_rel(np.log(JOINT[1:]), np.log(SPLIT[1:])).pvalue)
    d = np.log(JOINT) - np.log(SPLIT)
    d[0] = math.inf  # the diverged joint run is worse than any value
    assert e["p_wilcoxon_unadj"] == pytest.approx(sps.wilcoxon(d).pvalue)
    assert e["p_improve"] == pytest.approx(sum(j < s for j, s in zip(JOINT[1:], SPLIT[1:])) / 6)


def test_p_improve_interval_does_not_collapse_at_complete_separation(config):
    values = {("split", "batch"): SPLIT, ("joint", "batch"): [s * 3 for s in SPLIT]}
    e = _row(stats.feed_effects_table(runs_table(values), config), feed="joint", step=500)
    assert e["p_improve"] == 0.0 and e["p_improve_ci_low"] == 0.0
    assert e["p_improve_ci_high"] == pytest.approx(proportion_confint(0, 6, method="wilson")[1])


# --- mixed model, mechanism ------------------------------------------------------------------------


def test_mixed_model_is_statsmodels_mixedlm_with_seed_and_seed_by_norm_intercepts(config):
    runs = runs_table(VALUES)
    table = stats.mixed_table(runs, config).set_index("term")
    data = runs.assign(y=np.log(runs["value"]))
    fit = smf.mixedlm("y ~ C(feed, Sum) * C(norm, Sum)", data, groups="seed", re_formula="1",
                      vc_formula={"seed_norm": "0 + C(norm)"}).fit(reml=True)
    expected = fit.wald_test_terms(scalar=True).summary_frame()
    assert table.loc["feed:norm", "chi2"] == pytest.approx(expected.loc["C(feed, Sum):C(norm, Sum)", "chi2"])
    assert table.loc["feed", "p"] == pytest.approx(expected.loc["C(feed, Sum)", "P>chi2"])
    assert 0 <= table["icc_seed"].iloc[0] <= 1


def test_the_mechanism_is_tested_within_feeds_not_with_feeds_pooled(tmp_path):
    """Feeds far apart in both context gap and FID, no association within a feed: the pooled Kendall tau would
    call it strong evidence; the within-feed slope does not, and findings.md says nothing pooled."""
    config = study_config(norms=("batch",), seeds=6)
    rng = np.random.default_rng(3)
    level = {"split": (0.2, 180.0), "joint": (11.0, 650.0), "joint_consistent": (1.6, 280.0)}
    values, gaps = {}, {}
    for feed, (gap, fid) in level.items():
        values[(feed, "batch")] = list(fid * np.exp(rng.normal(0, 0.05, 6)))
        gaps[feed] = gap * np.exp(rng.normal(0, 0.1, 6))
    runs = runs_table(values)
    logs = runs[stats.RUN_INFO].assign(step=500, d_acc=0.7)
    logs["context_gap"] = [gaps[f][s] for f, s in zip(logs["feed"], logs["seed"])]
    pooled = sps.kendalltau(logs["context_gap"], runs["value"])
    assert pooled.pvalue < 0.001  # the confounded statistic the study no longer reports
    m = stats.mechanism_table(runs, logs, config).iloc[0]
    assert m["gap_p_unadj"] > 0.05 and m["gap_slope_ci_low"] < 0 < m["gap_slope_ci_high"]
    a = np.log(np.array(values[("joint_consistent", "batch")]) / values[("split", "batch")])
    b = np.log(np.array(values[("joint", "batch")]) / values[("split", "batch")])
    assert m["recovered"] == pytest.approx(1 - a.mean() / b.mean())
    assert m["recovered_ci_low"] < m["recovered"] < m["recovered_ci_high"]


# --- power of the rule actually used -------------------------------------------------------------


def test_holm_adjusted_equals_statsmodels_multipletests():
    p = np.random.default_rng(0).random((20, 5)) ** 3
    np.testing.assert_allclose(power.holm_adjusted(p), [multipletests(row, method="holm")[1] for row in p])


def test_simulated_power_of_the_paired_rule_matches_an_independent_simulation():
    """Independent check: 1000 studies drawn afresh, each tested with scipy's ttest_rel on three families of six
    log-normal pairs at a true ratio of 1.25, Holm's step-down applied by hand (statsmodels' multipletests runs
    gc.collect() on every call: 1000 calls take minutes); powers within 0.05 of the table's."""
    sds, n = [0.2, 0.25, 0.3], 6
    table_power = power.holm_power("paired_t_log", math.log(1.25), sds, [n] * 3, 0.05, 4000,
                                   np.random.default_rng(1))
    rng, rejected = np.random.default_rng(99), np.zeros(3)
    for _ in range(1000):
        ps = []
        for sd in sds:
            ref = rng.normal(4.0, 1.0, n)
            ps.append(sps.ttest_rel(ref + math.log(1.25) + rng.normal(0, sd, n), ref).pvalue)
        for k, i in enumerate(np.argsort(ps)):  # reject in increasing p while p < alpha / (m - k)
            if ps[i] >= 0.05 / (3 - k):
                break
            rejected[i] += 1
    np.testing.assert_allclose(table_power, rejected / 1000, atol=0.05)


def test_simulated_tost_power_matches_statsmodels_ttost_paired():
    sd, n, margin = 0.05, 6, 0.1
    simulated = power.tost_power(margin, sd, n, 0.05, 4000, np.random.default_rng(2))
    rng, hits = np.random.default_rng(98), 0
    for _ in range(1000):
        ref = np.exp(rng.normal(4.0, 0.5, n))
        new = ref * np.exp(rng.normal(0, sd, n))
        hits += ttost_paired(new, ref, 1 / (1 + margin), 1 + margin, transform=np.log)[0] < 0.05
    assert simulated == pytest.approx(hits / 1000, abs=0.05)


@pytest.mark.parametrize("test", ["paired_t_log", "wilcoxon", "mannwhitney", "welch"])
def test_power_table_simulates_the_configured_test_with_holm_and_its_seeds_needed_cross_80_percent(test):
    config = study_config(seeds=6, test=test, power_simulations=1000)
    runs = runs_table(VALUES)
    table = power.power_table(runs, stats.feed_effects_table(runs, config), config)
    confirm = table[table["role"] == "confirmatory"]
    assert len(confirm) == 3 and (confirm["family_size"] == 3).all()
    assert confirm["rule"].str.contains(stats.TESTS[test][1], regex=False).all()
    assert ((confirm["power"] >= 0) & (confirm["power"] <= 1)).all()
    row = confirm.iloc[0]
    needed = row["seeds_needed"]
    if pd.notna(needed):
        rng = lambda: stats.group_rng(0, ("power", "confirmatory"))  # noqa: E731 - the table's own stream
        at = power.holm_power(test, math.log(1.25), confirm["sd_log"].tolist(), [int(needed)] * 3, 0.05, 1000, rng())
        below = power.holm_power(test, math.log(1.25), confirm["sd_log"].tolist(), [int(needed) - 1] * 3, 0.05, 1000,
                                 rng())
        assert at[0] >= 0.8 > below[0]
    controls = table[table["role"] == "equivalence"]
    assert (controls["assumed_ratio"] == 1.0).all() and controls["rule"].str.contains("TOST").all()


def test_wilcoxon_at_six_pairs_has_no_power_under_holm():
    # Its smallest two-sided p at 6 pairs is 2/64 = 0.031 > 0.05/3: Holm can never reject the first member.
    assert (power.holm_power("wilcoxon", math.log(3.0), [0.01] * 3, [6] * 3, 0.05, 500,
                             np.random.default_rng(0)) == 0).all()


# --- the analysis plan ------------------------------------------------------------------------------


def test_the_plan_is_written_with_its_hash_into_every_table(tmp_path, config):
    runs_table(VALUES).to_csv(tmp_path / "runs.csv", index=False)
    pd.DataFrame(columns=["dataset", "feed", "norm", "seed", "status", "steps_done", "step", "d_acc",
                          "context_gap"]).to_csv(tmp_path / "train_logs.csv", index=False)
    stats.write_stats(config, tmp_path)
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert (plan["primary_metric"], plan["test"], plan["final_step"], plan["equivalence_margin"]) == (
        "fid", "paired_t_log", 500, 0.1)
    for name in stats.TABLES:
        assert f"analysis plan {plan['hash']}" in (tmp_path / f"{name}.md").read_text(), name
    other = study_config(seeds=6, test="wilcoxon")
    assert stats.plan_line(stats.analysis_plan(other, runs_table(VALUES))) != f"analysis plan {plan['hash']}"


# --- edge cases, files and CLI ---------------------------------------------------------------------


def test_a_variant_whose_runs_all_failed_gets_n_zero_and_nan_statistics(config):
    runs = runs_table(VALUES, diverged={("joint", "batch", s) for s in range(6)})
    summary = _row(stats.summary_table(runs, config), feed="joint", norm="batch")
    assert (summary["n"], summary["n_failed"]) == (0, 6) and math.isnan(summary["mean"])
    effect = _row(stats.feed_effects_table(runs, config), norm="batch", feed_ref="split", feed="joint")
    assert effect["n"] == 0 and math.isnan(effect["p_paired_t_unadj"]) and "seed pair" in effect["note"]
    assert effect["p_improve"] == 0.0  # every diverged run ranks worst
    assert _row(stats.failures_table(runs, config), feed="joint", norm="batch")["failure_rate"] == 1.0


def _write_logs(tmp_path, runs):
    runs[stats.RUN_INFO].drop_duplicates().assign(step=500, d_acc=0.7, context_gap=0.0).to_csv(
        tmp_path / "train_logs.csv", index=False)


def test_a_single_seed_gives_nan_cis_and_tests_with_a_note(tmp_path):
    config = study_config(seeds=1)
    runs = runs_table({k: v[:1] for k, v in VALUES.items()})
    runs.to_csv(tmp_path / "runs.csv", index=False)
    _write_logs(tmp_path, runs)
    stats.write_stats(config, tmp_path)
    effects = pd.read_csv(tmp_path / "feed_effects.csv")
    assert len(effects) == 6
    assert effects[["ratio_ci_low", "p_paired_t_unadj", "p_mwu_unadj", "p_holm"]].isna().all().all()
    assert effects["note"].str.contains("seed pair").all() and (effects["verdict"] == "inconclusive").all()
    assert pd.read_csv(tmp_path / "power.csv")["power"].isna().all()


def test_one_feed_only_writes_an_empty_effects_table_with_its_columns(tmp_path, config):
    runs = runs_table({("split", "batch"): SPLIT, ("split", "none"): NONE_SPLIT})
    runs.to_csv(tmp_path / "runs.csv", index=False)
    _write_logs(tmp_path, runs)
    stats.write_stats(config, tmp_path)
    effects = pd.read_csv(tmp_path / "feed_effects.csv")
    assert effects.empty and list(effects.columns) == stats.EFFECT_COLUMNS
    assert pd.read_csv(tmp_path / "power.csv").empty
    assert "two feeds" in pd.read_csv(tmp_path / "interaction.csv")["note"].iloc[0]


def test_the_same_runs_give_byte_identical_tables(tmp_path, config):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        runs = runs_table(VALUES, diverged={("joint", "batch", 2)})
        # Row order must not matter either: the second copy is shuffled.
        (runs if name == "a" else runs.sample(frac=1, random_state=1)).to_csv(tmp_path / name / "runs.csv", index=False)
        _write_logs(tmp_path / name, runs)
        stats.write_stats(config, tmp_path / name)
    for path in sorted((tmp_path / "a").iterdir()):
        if path.name != "runs.csv":
            assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def test_cli_aggregate_and_stats_write_every_table(tmp_path, capsys):
    make_runs(tmp_path / "runs", seeds=range(3), images=False)
    tables = tmp_path / "tables"
    assert cli.main(["aggregate", "--runs", str(tmp_path / "runs"), "--out-dir", str(tables)]) == 0
    assert cli.main(["stats", "--config-json", "{}", "--tables", str(tables)]) == 0
    for name in stats.TABLES:
        for ext in ("csv", "md", "tex"):
            assert (tables / f"{name}.{ext}").stat().st_size > 0, (name, ext)
    assert "lower is better" in (tables / "feed_effects.md").read_text()


def test_cli_stats_reports_a_missing_runs_table_in_one_line_with_exit_2(tmp_path, capsys):
    assert cli.main(["stats", "--config-json", "{}", "--tables", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "runs.csv" in err[0]


# --- interaction (OLS sensitivity), failures -------------------------------------------------------


def test_interaction_is_statsmodels_type3_hc3_anova_on_the_log_metric(config):
    runs = runs_table(VALUES)
    table = stats.interaction_table(runs, config).set_index("term")
    data = runs.assign(y=np.log(runs["value"]))
    model = smf.ols("y ~ C(feed, Sum) * C(norm, Sum)", data=data).fit()
    anova = sm.stats.anova_lm(model, typ=3, robust="hc3")
    expected = anova.loc["C(feed, Sum):C(norm, Sum)"]
    assert table.loc["feed:norm", "F"] == pytest.approx(expected["F"])
    assert table.loc["feed:norm", "p"] == pytest.approx(expected["PR(>F)"])
    f, df, df_resid = expected["F"], expected["df"], model.df_resid
    assert table.loc["feed:norm", "partial_eta_sq"] == pytest.approx(f * df / (f * df + df_resid))
    assert table.loc["Residual", "df"] == df_resid == 30
    assert (table["transform"] == "log").all()


def test_interaction_leaves_out_a_norm_whose_variant_has_too_few_runs(config):
    values = VALUES | {("split", "layer"): SPLIT, ("joint", "layer"): JOINT, ("joint_consistent", "layer"): SPLIT}
    runs = runs_table(values, diverged={("joint", "layer", s) for s in range(5)})
    table = stats.interaction_table(runs, config)
    assert set(table["excluded_norms"]) == {"layer"}
    assert (table["n_runs"] == 36).all()


def test_failures_use_wilson_cis_and_fisher_against_the_reference(tmp_path):
    config = study_config(seeds=6, failure_threshold=56.0)
    runs = runs_table(VALUES, diverged={("joint", "batch", 0), ("joint", "batch", 1)})
    table = stats.failures_table(runs, config)
    joint = _row(table, feed="joint", norm="batch")
    # diverged: seeds 0, 1; beyond FID 56: seeds 3 (70) and 5 (58); seed 2 (48) and 4 (52) pass.
    assert (joint["n_diverged"], joint["n_beyond_threshold"], joint["n_failed"]) == (2, 2, 4)
    low, high = proportion_confint(4, 6, alpha=0.05, method="wilson")
    assert (joint["rate_ci_low"], joint["rate_ci_high"]) == pytest.approx((low, high))
    assert joint["p_fisher_unadj"] == pytest.approx(sps.fisher_exact([[4, 2], [0, 6]]).pvalue)
    assert math.isnan(_row(table, feed="split", norm="batch")["p_fisher_unadj"])
    p = table["p_fisher_unadj"].dropna()
    np.testing.assert_allclose(table.loc[p.index, "p_holm"], multipletests(p, method="holm")[1])


def test_failure_threshold_respects_higher_is_better():
    config = study_config(seeds=6, primary_metric="is", failure_threshold=1.5)
    runs = runs_table({("split", "batch"): [1.0, 2.0, 3.0]}, metric="is")
    assert _row(stats.failures_table(runs, config), feed="split")["n_beyond_threshold"] == 1




# --- trend over training -----------------------------------------------------------------------------


@pytest.mark.parametrize("growth, expected", [(0.3, "widens"), (-0.3, "closes"), (0.0, "no detectable change")])
def test_trend_tells_a_widening_a_closing_and_a_steady_gap_apart(growth, expected):
    config = study_config(norms=("batch",), seeds=6)
    rows = []
    rng = np.random.default_rng(5)
    for step in (1000, 2000, 3000, 4000):
        gap = 1.0 + growth * (step / 1000 - 1)  # log ratio joint / split: 1 at the first checkpoint
        for seed in range(6):
            base = 100.0 * (1 + seed)
            jitter = rng.normal(0, 0.02)
            for feed, value in (("split", base), ("joint", base * math.exp(gap + jitter)),
                                ("joint_consistent", base * math.exp(0.5 * gap + jitter))):
                rows.append(runs_table({(feed, "batch"): [value]}, step=step).assign(seed=seed))
    runs = pd.concat(rows, ignore_index=True)
    t = _row(stats.trend_table(runs, config), feed_ref="split", feed="joint")
    assert t["trend"] == expected and t["n_pairs"] == 6 and (t["first_step"], t["last_step"]) == (1000, 4000)
    assert t["slope_per_1000"] == pytest.approx(growth, abs=0.03)


def test_no_share_of_the_gap_is_claimed_where_joint_has_no_gap_to_recover(config):
    noise = [1.0, 1.01, 0.99, 1.02, 0.98, 1.0]
    values = {("split", "none"): SPLIT, ("joint", "none"): [s * f for s, f in zip(SPLIT, noise)],
              ("joint_consistent", "none"): SPLIT}
    runs = runs_table(values)
    logs = runs[stats.RUN_INFO].assign(step=500, d_acc=0.7, context_gap=0.0)
    m = stats.mechanism_table(runs, logs, study_config(norms=("none",), seeds=6)).iloc[0]
    assert math.isnan(m["recovered"]) and "not distinguishable from 0" in m["recovered_note"]
    assert math.isnan(m["gap_slope"]) and "per-sample" in m["gap_note"]
