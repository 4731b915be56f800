"""The analysis package beside the contrast engine: aggregation, estimators, per-cell tables, the mechanism, the
mixed model, power and the written tables; each number checked against scipy/statsmodels called directly."""

from __future__ import annotations

import json
import math
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.weightstats import ttost_paired

from ganablate import cli
from ganablate.analysis import aggregate, cells, estimators, factorial, mechanism, power, tables
from ganablate.components.norms import NORMS
from ganablate.errors import ConfigError, UsageError
from ganablate.files import json_with_digest
from ganablate.study.outputs import TABLES
from ganablate.study.plan import Plan
from tests.synthetic_runs import make_runs, runs_table, study_config

SPLIT = [40.0, 42.0, 45.0, 41.0, 50.0, 43.0]
JOINT = [55.0, 60.0, 48.0, 70.0, 52.0, 58.0]
CONSISTENT = [41.0, 44.0, 43.0, 47.0, 49.0, 40.0]
NONE_SPLIT = [30.0, 33.0, 31.0, 36.0, 29.0, 32.0]
NONE_JOINT = [31.0, 32.0, 34.0, 35.0, 30.0, 33.0]
VALUES = {
    ("split", "batch"): SPLIT,
    ("joint", "batch"): JOINT,
    ("joint_consistent", "batch"): CONSISTENT,
    ("split", "none"): NONE_SPLIT,
    ("joint", "none"): NONE_JOINT,
    ("joint_consistent", "none"): NONE_SPLIT,
}
MECHANISM = {"axis": "feed", "reference": "split", "broken": "joint", "repaired": "joint_consistent"}


@pytest.fixture
def config():
    return study_config(
        seeds=6, mechanism=MECHANISM, confirmatory=[{"compare": {"feed": "joint"}, "within": {"norm": "batch"}}]
    )


# --- aggregation ----------------------------------------------------------------------------------


def test_aggregate_reads_each_runs_cell_from_its_summary_one_row_per_run_step_extractor_metric(tmp_path):
    make_runs(tmp_path / "runs", seeds=range(2), diverged={(("joint", "batch"), 1)}, images=False)
    # A folder name is only a name: moving a run must not change its cell.
    moved = tmp_path / "runs/fashion-mnist/misplaced"
    shutil.move(tmp_path / "runs/fashion-mnist/feed~split/norm~none/seed0", moved)
    runs, logs = aggregate.aggregate([tmp_path / "runs"])
    assert len(runs) == 3 * 2 * 2 * 2 * 7  # feeds x norms x seeds x steps x metrics
    assert not runs.duplicated(["dataset", "feed", "norm", "seed", "step", "extractor", "metric"]).any()
    assert len(runs[(runs["feed"] == "split") & (runs["norm"] == "none") & (runs["seed"] == 0)]) == 14
    failed = runs[(runs["feed"] == "joint") & (runs["norm"] == "batch") & (runs["seed"] == 1)]
    assert set(failed["status"]) == {"diverged"} and failed[failed["step"] == 500]["value"].isna().all()
    assert list(logs.columns[:4]) == ["dataset", "feed", "norm", "seed"] and "context_gap" in logs.columns


def test_aggregate_rejects_a_duplicate_run_an_unevaluated_run_and_a_mixture_of_designs(tmp_path):
    one = {"feed": ["split"]}
    make_runs(tmp_path / "runs", axes=one, seeds=range(1), images=False)
    shutil.copytree(tmp_path / "runs", tmp_path / "copy")
    with pytest.raises(UsageError, match="same run"):
        aggregate.aggregate([tmp_path / "runs", tmp_path / "copy"])
    make_runs(tmp_path / "other", axes={"lr": ["slow"]}, seeds=range(1), images=False)
    with pytest.raises(UsageError, match="has axes"):
        aggregate.aggregate([tmp_path / "runs", tmp_path / "other"])
    next((tmp_path / "runs").rglob("metrics.csv")).unlink()
    with pytest.raises(UsageError, match="metrics.csv"):
        aggregate.aggregate([tmp_path / "runs"])


def test_labels_that_look_like_numbers_stay_labels(tmp_path):
    axes = {"batch": {"sets": "train.batch_size", "levels": [16, 64], "reference": 64}}
    make_runs(tmp_path / "runs", axes={"batch": ["16", "64"]}, seeds=range(3), images=False)
    aggregate.write_aggregate([tmp_path / "runs"], tmp_path / "tables")
    runs = aggregate.load_runs(tmp_path / "tables", ["batch"])
    assert set(runs["batch"]) == {"16", "64"}
    config = study_config(axes, seeds=3)
    assert tables.write_stats(config, tmp_path / "tables")
    contrasts = pd.read_csv(tmp_path / "tables/contrasts.csv", dtype={"level": str, "level_ref": str})
    assert set(contrasts["level"]) == {"16"} and set(contrasts["level_ref"]) == {"64"}


# --- estimators -------------------------------------------------------------------------------------


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


# --- per-cell tables, mechanism, mixed model ---------------------------------------------------------


def test_summary_and_failures_are_per_cell_with_t_and_wilson_intervals(config):
    runs = runs_table(VALUES, diverged={(("joint", "batch"), 2)})
    plan = Plan.from_config(config)
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


def test_the_mechanism_reads_its_roles_from_config_and_reports_both_scales():
    config = study_config(
        {"mode": {"sets": "model.d_width", "levels": {"a": 8, "b": 12, "c": 16}}},
        seeds=6,
        mechanism={"axis": "mode", "reference": "a", "broken": "b", "repaired": "c"},
    )
    values = {("a",): SPLIT, ("b",): JOINT, ("c",): CONSISTENT}
    runs = runs_table(values, axes=["mode"])
    logs = runs[["dataset", "mode", "seed", "status"]].assign(step=500, d_acc=0.7, context_gap=0.0)
    m = mechanism.mechanism_table(runs, logs, Plan.from_config(config)).iloc[0]
    a, b = np.log(np.array(CONSISTENT) / SPLIT), np.log(np.array(JOINT) / SPLIT)
    assert m["mode"] == "*" and m["recovered"] == pytest.approx(1 - a.mean() / b.mean())
    raw_a, raw_b = np.array(CONSISTENT) - SPLIT, np.array(JOINT) - SPLIT
    assert m["recovered_raw"] == pytest.approx(1 - raw_a.mean() / raw_b.mean())
    assert m["recovered_ci_low"] < m["recovered"] < m["recovered_ci_high"]
    assert "no context gap" in m["gap_note"]
    no_gap = runs_table({("a",): SPLIT, ("b",): SPLIT, ("c",): CONSISTENT}, axes=["mode"])
    row = mechanism.mechanism_table(no_gap, logs, Plan.from_config(config)).iloc[0]
    assert math.isnan(row["recovered"]) and "no share to recover" in row["recovered_note"]


def test_the_mixed_models_formula_derives_from_the_axes_with_a_seed_component_for_axes_that_reseed(config):
    runs = runs_table(VALUES)
    table = factorial.mixed_table(runs, Plan.from_config(config)).set_index("term")
    data = runs.assign(y=np.log(runs["value"]))
    fit = smf.mixedlm(
        "y ~ C(feed, Sum) * C(norm, Sum)", data, groups="seed", re_formula="1", vc_formula={"seed_norm": "0 + C(norm)"}
    ).fit(reml=True)
    expected = fit.wald_test_terms(scalar=True).summary_frame()
    assert table.loc["feed:norm", "chi2"] == pytest.approx(expected.loc["C(feed, Sum):C(norm, Sum)", "chi2"])
    assert table.loc["feed", "p"] == pytest.approx(expected.loc["C(feed, Sum)", "P>chi2"])
    assert table["formula"].iloc[0] == "y ~ C(feed, Sum) * C(norm, Sum)"


# --- power -----------------------------------------------------------------------------------------------


def test_holm_adjusted_equals_statsmodels_multipletests():
    p = np.random.default_rng(0).random((20, 5)) ** 3
    np.testing.assert_allclose(power.holm_adjusted(p), [multipletests(row, method="holm")[1] for row in p])


def test_simulated_power_of_the_paired_rule_matches_an_independent_simulation():
    sds, n = [0.2, 0.25, 0.3], 6
    table_power = power.holm_power("paired_t_log", math.log(1.25), sds, [n] * 3, 0.05, 4000, np.random.default_rng(1))
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


def test_power_uses_the_spread_of_each_contrasts_own_per_seed_values(tmp_path):
    rng = np.random.default_rng(5)
    values = {
        (f, b): list(np.exp(4 + (0.3 if f == "joint" else 0) + rng.normal(0, 0.1, 6)))
        for f in ("split", "joint")
        for b in ("small", "large")
    }
    config = study_config(
        {"feed": ["split", "joint"], "b": {"sets": "train.batch_size", "levels": {"small": 16, "large": 64}}},
        seeds=6,
        power_simulations=500,
        confirmatory=[
            {"compare": {"feed": "joint"}, "within": {"b": "small"}},
            {"kind": "interaction", "compare": {"feed": "joint"}, "by": {"b": ["small", "large"]}},
        ],
    )
    runs_table(values, axes=["feed", "b"]).to_csv(tmp_path / "runs.csv", index=False)
    runs_table(values, axes=["feed", "b"]).assign(context_gap=0.0, d_acc=0.5).to_csv(tmp_path / "train_logs.csv")
    tables.write_stats(config, tmp_path)
    table = pd.read_csv(tmp_path / "power.csv")
    simple, interaction = (
        table[(table["role"] == "confirmatory") & (table["kind"] == k)].iloc[0] for k in ("simple", "interaction")
    )
    contrasts = pd.read_csv(tmp_path / "contrasts.csv")
    row = contrasts[(contrasts["kind"] == "interaction") & (contrasts["role"] == "confirmatory")].iloc[0]
    log = {k: np.log(v) for k, v in values.items()}
    d = log[("joint", "large")] - log[("split", "large")] - log[("joint", "small")] + log[("split", "small")]
    assert interaction["sd_log"] == pytest.approx(np.std(d, ddof=1)) and row["contrast"] == interaction["contrast"]
    assert simple["sd_log"] == pytest.approx(np.std(log[("joint", "small")] - log[("split", "small")], ddof=1))


# --- the written tables ---------------------------------------------------------------------------------


def _study(tmp_path, config, **runs):
    make_runs(tmp_path / "runs", seeds=range(6), images=False, **runs)
    aggregate.write_aggregate([tmp_path / "runs"], tmp_path / "tables")
    return tables.write_stats(config, tmp_path / "tables")


def test_stats_writes_every_registered_table_byte_identically_twice(tmp_path, config):
    paths = _study(tmp_path, config)
    assert {p.name for p in paths} == {f"{t}.{e}" for t in TABLES for e in ("csv", "md", "tex")} | {"plan.json"}
    first = {p: p.read_bytes() for p in paths}
    tables.write_stats(config, tmp_path / "tables")
    assert {p: p.read_bytes() for p in paths} == first


def test_stats_says_the_plan_changed_after_launch_when_the_runs_carry_another_hash(tmp_path, config):
    from ganablate.study.plan import plan_hash, plan_of

    _study(tmp_path, config, plan_hash=plan_hash(plan_of(config)))
    plan = json.loads((tmp_path / "tables/plan.json").read_text())
    assert plan["plan_changed_after_launch"] is False and plan["launch_hashes"] == [plan["hash"]]
    changed = study_config(
        seeds=6,
        mechanism=MECHANISM,
        equivalence_margin=0.05,
        confirmatory=[{"compare": {"feed": "joint"}, "within": {"norm": "batch"}}],
    )
    tables.write_stats(changed, tmp_path / "tables")
    plan = json.loads((tmp_path / "tables/plan.json").read_text())
    assert plan["plan_changed_after_launch"] is True and plan["launch_hashes"] != [plan["hash"]]


def test_cli_stats_reports_a_missing_runs_table_in_one_line_with_exit_2(tmp_path, capsys):
    assert cli.main(["stats", "--tables", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "runs.csv not found" in err[0]


@pytest.mark.parametrize(("growth", "expected"), [(0.5, "widens"), (-0.3, "closes"), (0.0, "no detectable change")])
def test_the_trend_over_training_tells_a_widening_a_closing_and_a_steady_gap_apart(tmp_path, growth, expected):
    def fid(cell, seed, step):
        gap = 0.4 + growth * (step - 250) / 250 if cell["feed"] == "joint" else 0.0
        return 50 * math.exp(gap + 0.01 * ((seed * 7 + step) % 5))

    config = study_config({"feed": ["split", "joint"]}, seeds=6)
    make_runs(tmp_path / "runs", axes={"feed": ["split", "joint"]}, seeds=range(6), fid=fid, images=False)
    aggregate.write_aggregate([tmp_path / "runs"], tmp_path / "tables")
    tables.write_stats(config, tmp_path / "tables")
    trend = pd.read_csv(tmp_path / "tables/trend.csv")
    assert trend.loc[0, "trend"] == expected and trend.loc[0, "contrast"] == "feed: joint vs split"


# --- the remedies table ---------------------------------------------------------------------------------

REMEDY_AXES = {"feed": ["split", "joint"], "norm": ["batch", "ghost", "none"]}
REMEDIES = {"axis": "norm", "reference": "batch", "feed_axis": "feed", "working": "split", "broken": "joint"}
SECONDS = {"batch": 40.0, "ghost": 44.0, "none": 30.0}  # a run's training seconds, before its seed's spread


def _remedy_fid(cell, seed, step):
    """joint+batch is worse; ghost costs a little under both feeds; FID falls with training."""
    worse = 1.3 if cell == {"feed": "joint", "norm": "batch"} else 1.0
    ghost = 1.05 + 0.01 * ((seed * 3 + len(cell["feed"])) % 4) if cell["norm"] == "ghost" else 1.0
    return (50.0 + 2.0 * seed) * worse * ghost * 500.0 / (step + 250.0)


def _remedy_log_ratios(cell, reference) -> list[float]:
    """Per seed, log FID of cell over reference at step 500, as _remedy_fid made them."""
    return [math.log(_remedy_fid(cell, s, 500) / _remedy_fid(reference, s, 500)) for s in range(6)]


def _remedy_study(tmp_path, axes=REMEDY_AXES, **stats):
    """Six seeds of feed x norm, each run's summary.json with its wall_seconds; runs.csv; the config."""
    make_runs(tmp_path / "runs", axes=axes, seeds=range(6), fid=_remedy_fid, images=False)
    for path in (tmp_path / "runs").rglob("summary.json"):
        summary = json.loads(path.read_text())
        feed_cost = 1.1 if summary["cell"]["feed"] == "joint" else 1.0
        summary["wall_seconds"] = SECONDS[summary["cell"]["norm"]] * feed_cost * (1 + summary["seed"] / 50)
        path.write_text(json_with_digest(summary))
    aggregate.write_aggregate([tmp_path / "runs"], tmp_path / "tables")
    return study_config(axes, seeds=6, remedies=REMEDIES, **stats)


def test_run_times_csv_carries_each_runs_training_seconds_and_runs_csv_stays_free_of_them(tmp_path):
    _remedy_study(tmp_path)
    times = pd.read_csv(tmp_path / "tables/run_times.csv")
    one = times[(times["feed"] == "joint") & (times["norm"] == "ghost") & (times["seed"] == 5)]
    assert list(one["wall_seconds"]) == pytest.approx([44.0 * 1.1 * 1.1]) and list(one["stack_size"]) == [1]
    assert len(times) == len(times.drop_duplicates(["feed", "norm", "seed"]))
    for table in ("runs", "train_logs"):  # the same bytes wherever and however fast the runs ran
        assert "wall_seconds" not in pd.read_csv(tmp_path / f"tables/{table}.csv").columns
    runs = aggregate.load_runs(tmp_path / "tables", ["feed", "norm"])
    loaded = runs[(runs["feed"] == "joint") & (runs["norm"] == "ghost") & (runs["seed"] == 5)]
    assert list(loaded["wall_seconds"]) == pytest.approx([44.0 * 1.1 * 1.1] * len(loaded)) and len(loaded) == 2 * 7


def test_the_remedies_table_reads_its_ratios_from_contrasts_and_its_cost_from_the_runs(tmp_path):
    config = _remedy_study(tmp_path)
    tables.write_stats(config, tmp_path / "tables")
    table = aggregate.read_table(tmp_path / "tables", "remedies", ["feed", "norm"])
    contrasts = aggregate.read_table(tmp_path / "tables", "contrasts", ["feed", "norm"])
    assert list(table["norm"]) == ["ghost", "none"] and set(table["feed"]) == {"*"}
    ghost = table.set_index("norm").loc["ghost"]
    # in_broken: ghost against batch under joint, the automatic contrast's row, its ratio computed here again
    d = _remedy_log_ratios({"feed": "joint", "norm": "ghost"}, {"feed": "joint", "norm": "batch"})
    assert ghost["in_broken_ratio"] == pytest.approx(math.exp(np.mean(d)), rel=1e-12)
    row = contrasts[(contrasts["contrast"] == ghost["in_broken_contrast"]) & (contrasts["metric"] == "fid")]
    row = row[row["step"] == 500].iloc[0]
    assert ghost["in_broken_contrast"] == "norm: ghost vs batch | feed=joint" and row["feed"] == "joint"
    assert (ghost["in_broken_verdict"], ghost["in_broken_role"]) == (row["verdict"], row["role"])
    assert (ghost["in_broken_ci_low"], ghost["in_broken_ci_high"]) == (row["ratio_ci_low"], row["ratio_ci_high"])
    assert ghost["in_working_contrast"] == "norm: ghost vs batch | feed=split" and ghost["in_working_ratio"] > 1
    # each arm's level beside the ratio, copied from the same row: ghost's and batch's geometric means under joint
    levels = [
        math.exp(np.mean([math.log(_remedy_fid({"feed": "joint", "norm": norm}, s, 500)) for s in range(6)]))
        for norm in ("ghost", "batch")
    ]
    assert [ghost["in_broken_gmean_level"], ghost["in_broken_gmean_level_ref"]] == pytest.approx(levels, rel=1e-12)
    assert (ghost["in_broken_gmean_level"], ghost["in_broken_gmean_level_ref"]) == (
        row["gmean_level"],
        row["gmean_level_ref"],
    )
    # fix: joint+ghost against split+batch changes two axes; no contrast here makes it, and the note says so
    assert pd.isna(ghost["fix_ratio"]) and pd.isna(ghost["fix_verdict"])
    assert "fix: feed=joint, norm=ghost against feed=split, norm=batch: no contrast of these two" in ghost["note"]
    # cost: medians over both feeds' completed runs of seconds per step
    per_step = {
        norm: np.median([SECONDS[norm] * f * (1 + s / 50) / 500 for f in (1.0, 1.1) for s in range(6)])
        for norm in ("ghost", "batch")
    }
    assert ghost["cost_ratio"] == pytest.approx(per_step["ghost"] / per_step["batch"], rel=1e-12)
    assert ghost["reference_seconds_per_step"] == pytest.approx(per_step["batch"], rel=1e-12)
    assert (ghost["n_timed"], ghost["n_timed_reference"]) == (12, 12)
    assert ghost["use"] == NORMS["ghost"].use and (ghost["reference"], ghost["broken"]) == ("batch", "joint")


def test_the_remedies_fix_is_the_row_of_whichever_contrast_weighs_the_two_cells(tmp_path):
    """A contrast of broken+R against working+reference, however the engine spells it (here a stand-in with the
    parts and coef of contrasts.Contrast), is found by its cells and its row copied, not recomputed."""
    from types import SimpleNamespace

    from ganablate.analysis import contrasts, remedies

    config = _remedy_study(tmp_path)
    plan = Plan.from_config(config)
    runs = aggregate.load_runs(tmp_path / "tables", plan.design.names)
    table = contrasts.contrasts_table(runs, plan, cells.failed_rows(runs, plan))
    found, _, _ = contrasts.contrasts_of(plan)
    both = SimpleNamespace(
        name="joint+ghost vs split+batch",
        cell=(("feed", "*"), ("norm", "*")),
        parts=(((("joint", "ghost"), 1.0),), ((("split", "batch"), 1.0),)),
        coef=(1.0, -1.0),
    )
    made_up = {"ratio": 1.0123, "ratio_ci_low": 0.95, "ratio_ci_high": 1.07, "verdict": "equivalent"}
    row = table.iloc[0].to_dict() | {"contrast": both.name, "feed": "*", "norm": "*", "role": "confirmatory"}
    row |= {"step": 500, "extractor": "domain", "metric": "fid"} | made_up
    table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
    out = remedies.remedies_table(table, [*found, both], runs, plan).set_index("norm")
    fix = out.loc["ghost", ["fix_contrast", "fix_role", "fix_ratio", "fix_ci_low", "fix_ci_high", "fix_verdict"]]
    assert list(fix) == [both.name, "confirmatory", 1.0123, 0.95, 1.07, "equivalent"]
    assert "fix:" not in out.loc["ghost", "note"] and pd.isna(out.loc["none", "fix_ratio"])


def test_the_remedies_fix_is_the_declared_contrast_of_broken_with_the_remedy_against_working_with_the_reference(
    tmp_path,
):
    """stats.remedies' question as config/remedies.yaml declares it: one contrast of two cells that differ on both
    axes (non-inferiority), its row of contrasts.csv copied into remedies.csv's fix_* columns and read on the page."""
    from ganablate.report.findings import fmt, write_findings

    fix = {"compare": {"feed": "joint", "norm": "ghost"}, "against": {"feed": "split", "norm": "batch"}}
    axes = {"feed": ["split", "joint"], "norm": ["batch", "ghost"]}
    config = _remedy_study(tmp_path, axes=axes, confirmatory=[fix | {"test": "noninferiority"}])
    tables.write_stats(config, tmp_path / "tables")
    table = aggregate.read_table(tmp_path / "tables", "remedies", ["feed", "norm"])
    contrasts = aggregate.read_table(tmp_path / "tables", "contrasts", ["feed", "norm"])
    name = "feed=joint, norm=ghost vs feed=split, norm=batch (non-inferiority, margin 10%)"
    row = contrasts[(contrasts["contrast"] == name) & (contrasts["metric"] == "fid") & (contrasts["step"] == 500)]
    assert len(row) == 1 and list(table["norm"]) == ["ghost"]
    row, ghost = row.iloc[0], table.iloc[0]
    assert (row["axis"], row["level"], row["level_ref"], row["feed"], row["norm"]) == (
        "feed,norm",
        "joint,ghost",
        "split,batch",
        "*",
        "*",
    )
    d = _remedy_log_ratios({"feed": "joint", "norm": "ghost"}, {"feed": "split", "norm": "batch"})
    assert ghost["fix_ratio"] == pytest.approx(math.exp(np.mean(d)), rel=1e-12)
    fix_columns = ["fix_contrast", "fix_role", "fix_ratio", "fix_ci_low", "fix_ci_high", "fix_verdict"]
    fix_columns += ["fix_gmean_level", "fix_gmean_level_ref"]
    from_contrasts = ["contrast", "role", "ratio", "ratio_ci_low", "ratio_ci_high", "verdict"]
    from_contrasts += ["gmean_level", "gmean_level_ref"]
    assert list(ghost[fix_columns]) == list(row[from_contrasts])
    assert (ghost["fix_role"], ghost["fix_verdict"]) == ("confirmatory", "non-inferior")
    assert "fix:" not in str(ghost["note"]) and ghost["in_broken_contrast"] == "norm: ghost vs batch | feed=joint"
    page = write_findings({}, tmp_path / "tables", tmp_path / "findings.md")[0].read_text()
    assert f"**{name}**: **non-inferior**: FID ratio (feed=joint, norm=ghost over feed=split, norm=batch) " in page
    assert f"| norm = ghost | {fmt(ghost['fix_ratio'])} (" in page and "| non-inferior (confirmatory) |" in page
    levels = f"{fmt(ghost['fix_gmean_level'])} vs {fmt(ghost['fix_gmean_level_ref'])} | non-inferior (confirmatory)"
    assert levels in page


def test_without_stats_remedies_the_table_is_empty_with_its_columns(tmp_path):
    config = _remedy_study(tmp_path)
    config["stats"]["remedies"] = None
    tables.write_stats(config, tmp_path / "tables")
    table = pd.read_csv(tmp_path / "tables/remedies.csv")
    assert table.empty and "cost_ratio" in table.columns and "fix_verdict" in table.columns


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"axis": "nrm"}, "stats.remedies.axis: unknown axis 'nrm'; allowed: feed, norm"),
        ({"feed_axis": "norm"}, "stats.remedies.feed_axis: norm is also stats.remedies.axis; allowed: another axis"),
        ({"reference": "group"}, "stats.remedies.reference: 'group' is not a level of norm; allowed: batch, ghost, no"),
        ({"broken": "joint_consistent"}, "stats.remedies.broken: 'joint_consistent' is not a level of feed; allowed"),
        ({"broken": "split"}, "stats.remedies.broken: the working level; allowed: another level of feed"),
        ({"repaired": "ghost"}, "stats.remedies: Additional properties are not allowed"),
    ],
)
def test_a_bad_stats_remedies_is_a_one_line_config_error_naming_the_key(changes, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        study_config(REMEDY_AXES, remedies=REMEDIES | changes)
    assert "\n" not in str(error.value)


def test_stats_remedies_needs_every_key_and_a_remedy_besides_the_reference():
    with pytest.raises(ConfigError, match="stats.remedies: 'broken' is a required property"):
        study_config(REMEDY_AXES, remedies={k: v for k, v in REMEDIES.items() if k != "broken"})
    with pytest.raises(ConfigError, match="stats.remedies.axis: norm has no level but the reference"):
        study_config({"feed": ["split", "joint"], "norm": ["batch"]}, remedies=REMEDIES)


def test_a_remedys_cost_is_against_the_references_runs_where_the_fix_pairs_them_under_the_same_feeds():
    """remedies-v2: ghost at chunk 32 runs under joint only; batch at chunk source under split and joint."""
    from ganablate.analysis import remedies

    timed = pd.DataFrame(
        [
            {"feed": feed, "norm": norm, "chunk": chunk, "seconds_per_step": seconds}
            for feed, norm, chunk, seconds in [
                ("joint", "ghost", "32", 0.033),
                ("joint", "ghost", "32", 0.035),
                ("joint", "batch", "source", 0.030),
                ("split", "batch", "source", 0.020),
                ("split", "batch", "source", 0.021),
            ]
        ]
    )
    row, notes = {}, []
    wheres = ({"chunk": "32"}, {"chunk": "source"})
    remedies._cost(row, timed, wheres, "norm", ("ghost", "batch"), "feed", notes)
    assert (row["n_timed"], row["n_timed_reference"]) == (2, 1) and not notes
    assert row["cost_ratio"] == pytest.approx(0.034 / 0.030)
    remedies._cost(row := {}, timed, ({"chunk": "16"}, {"chunk": "source"}), "norm", ("ghost", "batch"), "feed", notes)
    assert np.isnan(row.get("cost_ratio", np.nan)) and notes == [
        "cost: no completed run of ghost or of batch with its wall_seconds in runs.csv"
    ]
