"""The statistics tables, each number checked against scipy/statsmodels called directly or worked by hand."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower
from statsmodels.stats.proportion import proportion_confint

from ganablate import cli, stats
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


# --- the two statistics written by hand --------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 9, 13])
def test_iqm_is_scipys_quarter_trimmed_mean(n):
    x = np.random.default_rng(n).lognormal(size=n)
    assert stats.iqm(x) == pytest.approx(sps.trim_mean(x, 0.25))


def test_iqm_by_hand():
    assert stats.iqm([1, 2, 3, 4, 5, 6, 7, 100]) == pytest.approx((3 + 4 + 5 + 6) / 4)


def test_prob_improvement_is_mann_whitney_u_over_pairs_with_ties_half():
    ref, new = np.array([1.0, 2.0, 2.0, 5.0]), np.array([2.0, 3.0, 0.5])
    u_higher = sps.mannwhitneyu(new, ref).statistic  # pairs where new > ref, ties half
    assert stats.prob_improvement(ref, new, "higher") == pytest.approx(u_higher / 12)
    assert stats.prob_improvement(ref, new, "lower") == pytest.approx(1 - u_higher / 12)
    # By hand for "lower": new=2 beats 5 and ties two 2s; 3 beats 5; 0.5 beats all four -> (1 + 1 + 1 + 4) / 12
    assert stats.prob_improvement(ref, new, "lower") == pytest.approx(7 / 12)


# --- summary -----------------------------------------------------------------------------------


def test_summary_matches_numpy_and_an_independent_bootstrap_and_drops_diverged_runs(config):
    runs = runs_table({("split", "batch"): SPLIT + [1e6]}, diverged={("split", "batch", 6)})
    runs.loc[runs["seed"] == 6, "value"] = 1e6  # a diverged run's garbage value must not reach the mean
    table = stats.summary_table(runs, config)
    assert list(table.columns[5:17]) == ["n", "n_failed", "mean", "sd", "median", "iqm", "min", "max", "mean_ci_low",
                                         "mean_ci_high", "iqm_ci_low", "iqm_ci_high"]
    row = table.iloc[0]
    x = np.array(SPLIT)
    assert (row["n"], row["n_failed"]) == (6, 1)
    assert row["mean"] == pytest.approx(x.mean())
    assert row["sd"] == pytest.approx(x.std(ddof=1))
    assert row["median"] == pytest.approx(42.5)
    assert row["iqm"] == pytest.approx(np.mean([41, 42, 43, 45]))
    assert (row["min"], row["max"]) == (40, 50)
    for name, statistic in (("mean", np.mean), ("iqm", lambda v, axis: sps.trim_mean(v, 0.25, axis=axis))):
        ci = sps.bootstrap((x,), statistic, n_resamples=20000, method="BCa",
                           rng=np.random.default_rng(99)).confidence_interval
        width = ci.high - ci.low
        assert row[f"{name}_ci_low"] == pytest.approx(ci.low, abs=0.1 * width)
        assert row[f"{name}_ci_high"] == pytest.approx(ci.high, abs=0.1 * width)
    assert row["mean_ci_low"] < x.mean() < row["mean_ci_high"]
    assert row["ci_method"] in {"bca", "bca/bca/percentile"}


def test_summary_falls_back_to_percentile_where_bca_is_undefined(config):
    row = stats.summary_table(runs_table({("split", "batch"): [3.0] * 5}), config).iloc[0]
    assert row["ci_method"] == "percentile"
    assert (row["mean_ci_low"], row["mean_ci_high"]) == (3.0, 3.0)


def test_summary_with_a_single_seed_has_nan_cis_and_a_note(config):
    row = stats.summary_table(runs_table({("split", "batch"): [40.0]}), config).iloc[0]
    assert row["n"] == 1 and row["mean"] == 40.0
    assert math.isnan(row["mean_ci_low"]) and math.isnan(row["iqm_ci_high"]) and math.isnan(row["sd"])
    assert "no CI" in row["note"]


# --- feed effects ------------------------------------------------------------------------------


def _hedges_g_by_hand(x, ref):
    n1, n2 = len(x), len(ref)
    pooled = math.sqrt(((n1 - 1) * np.var(x, ddof=1) + (n2 - 1) * np.var(ref, ddof=1)) / (n1 + n2 - 2))
    return (np.mean(x) - np.mean(ref)) / pooled * (1 - 3 / (4 * (n1 + n2) - 9))


def test_feed_effects_match_scipy_and_hand_computations(config):
    effects = stats.feed_effects_table(runs_table(VALUES), config)
    assert list(effects.columns[:21]) == [
        "norm", "step", "extractor", "metric", "feed_ref", "feed", "n_ref", "n", "median_ref", "median", "delta_mean",
        "delta_ci_low", "delta_ci_high", "hedges_g", "p_improve", "p_improve_ci_low", "p_improve_ci_high", "p_welch",
        "p_mwu", "p_wilcoxon", "p_holm"]
    row = _row(effects, norm="batch", feed="joint")
    x, ref = np.array(JOINT), np.array(SPLIT)
    assert (row["n_ref"], row["n"], row["n_pairs"]) == (6, 6, 6)
    assert (row["median_ref"], row["median"]) == (np.median(ref), np.median(x))
    assert row["delta_mean"] == pytest.approx(x.mean() - ref.mean())
    assert row["hedges_g"] == pytest.approx(_hedges_g_by_hand(x, ref))
    wins = sum((a < b) + 0.5 * (a == b) for a in x for b in ref)  # lower FID wins
    assert row["p_improve"] == pytest.approx(wins / 36)
    assert row["p_welch"] == pytest.approx(sps.ttest_ind(x, ref, equal_var=False).pvalue)
    assert row["p_mwu"] == pytest.approx(sps.mannwhitneyu(x, ref, alternative="two-sided").pvalue)
    assert row["p_wilcoxon"] == pytest.approx(sps.wilcoxon(x - ref).pvalue)
    assert row["delta_ci_low"] < row["delta_mean"] < row["delta_ci_high"]
    assert row["p_improve_ci_low"] <= row["p_improve"] <= row["p_improve_ci_high"]
    assert row["better"] == "lower"


def test_p_holm_adjusts_the_primary_test_over_the_final_step_family_only(config):
    two_steps = pd.concat([runs_table(VALUES, step=250), runs_table(VALUES, step=500),
                           runs_table(VALUES, step=500, metric="kid")])
    effects = stats.feed_effects_table(two_steps, config)
    family = (effects["step"] == 500) & (effects["metric"] == "fid")
    assert family.sum() == 4
    assert effects.loc[~family, "p_holm"].isna().all()
    expected = multipletests(effects.loc[family, "p_mwu"], method="holm")[1]
    np.testing.assert_allclose(effects.loc[family, "p_holm"], expected)


@pytest.mark.parametrize("test, column", [("welch", "p_welch"), ("wilcoxon", "p_wilcoxon")])
def test_stats_test_chooses_the_p_value_that_holm_adjusts(test, column):
    effects = stats.feed_effects_table(runs_table(VALUES), study_config(seeds=6, test=test))
    np.testing.assert_allclose(effects["p_holm"], multipletests(effects[column], method="holm")[1])


def test_p_improve_follows_the_metric_direction(config):
    # Higher inception score is better: joint's higher IS must count as an improvement.
    effects = stats.feed_effects_table(runs_table(VALUES, metric="is"), study_config(seeds=6, primary_metric="is"))
    assert _row(effects, norm="batch", feed="joint")["p_improve"] > 0.9
    assert _row(effects, norm="batch", feed="joint")["better"] == "higher"
    effects = stats.feed_effects_table(runs_table(VALUES, metric="fid"), config)
    assert _row(effects, norm="batch", feed="joint")["p_improve"] < 0.1


def test_wilcoxon_pairs_runs_by_seed_and_skips_diverged_ones(config):
    runs = runs_table(VALUES, diverged={("joint", "batch", 2)})
    row = _row(stats.feed_effects_table(runs, config), norm="batch", feed="joint")
    keep = [0, 1, 3, 4, 5]
    assert (row["n"], row["n_pairs"]) == (5, 5)
    expected = sps.wilcoxon(np.array(JOINT)[keep], np.array(SPLIT)[keep]).pvalue
    assert row["p_wilcoxon"] == pytest.approx(expected)


# --- interaction, failures, power ----------------------------------------------------------------


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
    assert joint["p_fisher"] == pytest.approx(sps.fisher_exact([[4, 2], [0, 6]]).pvalue)
    assert math.isnan(_row(table, feed="split", norm="batch")["p_fisher"])
    p = table["p_fisher"].dropna()
    np.testing.assert_allclose(table.loc[p.index, "p_holm"], multipletests(p, method="holm")[1])


def test_failure_threshold_respects_higher_is_better():
    config = study_config(seeds=6, primary_metric="is", failure_threshold=1.5)
    runs = runs_table({("split", "batch"): [1.0, 2.0, 3.0]}, metric="is")
    assert _row(stats.failures_table(runs, config), feed="split")["n_beyond_threshold"] == 1


def test_power_is_statsmodels_ttest_power_at_the_observed_hedges_g(config):
    effects = stats.feed_effects_table(runs_table(VALUES), config)
    power = stats.power_table(effects, config, 500)
    row = _row(power, norm="none", feed="joint")
    g = abs(_row(effects, norm="none", feed="joint")["hedges_g"])
    assert row["effect_size_measure"] == "hedges_g"
    assert row["n_needed"] == math.ceil(TTestIndPower().solve_power(g, power=0.8, alpha=0.05, ratio=1.0))
    assert row["power_now"] == pytest.approx(TTestIndPower().power(g, nobs1=6, ratio=1.0, alpha=0.05))
    assert row["enough"] == (6 >= row["n_needed"])


@pytest.mark.parametrize("test, n_ref, n, n_pairs, expected", [
    ("mannwhitney", 2, 2, 2, 2 / 6),  # 2 of the C(4, 2) = 6 orderings are as extreme
    ("mannwhitney", 3, 4, 3, 2 / 35),
    ("wilcoxon", 4, 4, 4, 2 / 2**4),  # all signs alike: 2 of 2^4 sign patterns
    ("welch", 4, 4, 4, math.nan),
])
def test_smallest_attainable_p_of_the_primary_test_by_hand(test, n_ref, n, n_pairs, expected):
    assert stats.smallest_p(test, n_ref, n, n_pairs) == pytest.approx(expected, nan_ok=True)


def test_power_of_a_huge_effect_needs_two_seeds(config):
    runs = runs_table({("split", "batch"): [1.0, 1.1, 0.9, 1.05], ("joint", "batch"): [50.0, 50.1, 49.9, 50.05]})
    power = stats.power_table(stats.feed_effects_table(runs, config), config, 500)
    assert power.iloc[0]["n_needed"] == 2 and power.iloc[0]["power_now"] == pytest.approx(1.0)


# --- edge cases ----------------------------------------------------------------------------------


def test_a_variant_whose_runs_all_failed_gets_n_zero_and_nan_statistics(config):
    runs = runs_table(VALUES, diverged={("joint", "batch", s) for s in range(6)})
    summary = _row(stats.summary_table(runs, config), feed="joint", norm="batch")
    assert (summary["n"], summary["n_failed"]) == (0, 6) and math.isnan(summary["mean"])
    effect = _row(stats.feed_effects_table(runs, config), norm="batch", feed="joint")
    assert effect["n"] == 0 and math.isnan(effect["p_mwu"]) and "too few" in effect["note"]
    assert _row(stats.failures_table(runs, config), feed="joint", norm="batch")["failure_rate"] == 1.0


def test_a_single_seed_gives_nan_cis_and_tests_with_a_note(tmp_path):
    config = study_config(seeds=1)
    runs = runs_table({k: v[:1] for k, v in VALUES.items()})
    runs.to_csv(tmp_path / "runs.csv", index=False)
    stats.write_stats(config, tmp_path)
    effects = pd.read_csv(tmp_path / "feed_effects.csv")
    assert len(effects) == 4
    assert effects[["delta_ci_low", "p_improve_ci_low", "p_mwu", "p_welch", "p_holm"]].isna().all().all()
    assert effects["note"].str.contains("too few usable runs").all()
    assert pd.read_csv(tmp_path / "power.csv")["n_needed"].isna().all()
    assert "note" in pd.read_csv(tmp_path / "interaction.csv").columns


def test_one_feed_only_writes_an_empty_effects_table_with_its_columns(tmp_path, config):
    runs_table({("split", "batch"): SPLIT, ("split", "none"): NONE_SPLIT}).to_csv(tmp_path / "runs.csv", index=False)
    stats.write_stats(config, tmp_path)
    effects = pd.read_csv(tmp_path / "feed_effects.csv")
    assert effects.empty and list(effects.columns) == stats.EFFECT_COLUMNS
    assert pd.read_csv(tmp_path / "power.csv").empty
    assert "two feeds" in pd.read_csv(tmp_path / "interaction.csv")["note"].iloc[0]


# --- files and CLI -----------------------------------------------------------------------------


def test_the_same_runs_give_byte_identical_tables(tmp_path, config):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        runs = runs_table(VALUES, diverged={("joint", "batch", 2)})
        # Row order must not matter either: the second copy is shuffled.
        (runs if name == "a" else runs.sample(frac=1, random_state=1)).to_csv(tmp_path / name / "runs.csv", index=False)
        stats.write_stats(config, tmp_path / name)
    for path in sorted((tmp_path / "a").iterdir()):
        if path.name != "runs.csv":
            assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def test_cli_aggregate_and_stats_write_every_table(tmp_path, capsys):
    make_runs(tmp_path / "runs", seeds=range(3), images=False)
    tables = tmp_path / "tables"
    assert cli.main(["aggregate", "--runs", str(tmp_path / "runs"), "--out-dir", str(tables)]) == 0
    assert cli.main(["stats", "--config-json", "{}", "--tables", str(tables)]) == 0
    for name in ("summary", "feed_effects", "interaction", "failures", "power"):
        for ext in ("csv", "md", "tex"):
            assert (tables / f"{name}.{ext}").stat().st_size > 0, (name, ext)
    assert "lower is better" in (tables / "feed_effects.md").read_text()


def test_cli_stats_reports_a_missing_runs_table_in_one_line_with_exit_2(tmp_path, capsys):
    assert cli.main(["stats", "--config-json", "{}", "--tables", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "runs.csv" in err[0]


def test_enough_seeds_accounts_for_holm_over_the_primary_family():
    # 5 seeds, 6 norms x 2 feeds against split = 12 comparisons: a Mann-Whitney p can be as small as
    # 2/252 = 0.0079, but no Holm-adjusted p below 12 x 0.0079 = 0.095, whatever the effect.
    norms = ("none", "batch", "instance", "layer", "group", "spectral")
    config = study_config(norms=norms, seeds=5)
    values = {(feed, norm): [float(v + 100 * (feed != "split")) for v in range(5)]
              for feed in ("split", "joint", "joint_consistent") for norm in norms}
    effects = stats.feed_effects_table(runs_table(values), config)
    power = stats.power_table(effects, config, 500)
    assert len(power) == 12
    assert power["p_min_primary"].tolist() == pytest.approx([2 / 252] * 12)
    assert power["p_min_holm"].tolist() == pytest.approx([12 * 2 / 252] * 12)
    assert not power["enough"].any()
