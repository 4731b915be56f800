"""findings.md: generated from the tables, each sentence with its numbers, honest about thin evidence."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from scipy import stats as sps

from ganablate import cli, stats
from ganablate.findings import write_findings
from tests.synthetic_runs import make_runs, study_config

CONFIG = study_config(seeds=6)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """6 seeds; under batch norm joint is worse than split and joint_consistent is not; one joint run diverged."""
    root = tmp_path_factory.mktemp("study")
    make_runs(root / "runs", seeds=range(6), diverged={("joint", "batch", 1)}, images=False)
    stats.write_aggregate([root / "runs"], root / "tables")
    stats.write_stats(CONFIG, root / "tables")
    return root / "tables"


def _section(text: str, norm: str) -> str:
    return text.split(f"## norm = {norm}\n")[1].split("\n## ")[0]


def _findings(tables, tmp_path, config=CONFIG) -> str:
    return write_findings(config, tables, tmp_path / "findings.md").read_text()


def _edit(tables, tmp_path, name: str, **where_set) -> object:
    """A copy of the tables with one row of `name`.csv changed: where_set = {'where': {...}, 'set': {...}}."""
    copy = tmp_path / "tables"
    shutil.copytree(tables, copy)
    table = pd.read_csv(copy / f"{name}.csv")
    mask = pd.Series(True, index=table.index)
    for key, value in where_set["where"].items():
        mask &= table[key] == value
    assert mask.sum() == 1
    for key, value in where_set["set"].items():
        table.loc[mask, key] = value
    table.to_csv(copy / f"{name}.csv", index=False)
    return copy


def test_findings_state_the_study_size_steps_and_failure_rule(tables, tmp_path):
    text = _findings(tables, tmp_path)
    assert "6 seeds per variant (6 variants, 36 runs)" in text
    assert "evaluated at steps 250, 500" in text
    assert stats.failure_rule(CONFIG) in text
    assert "Holm-adjusted over the 4 comparisons" in text


def test_findings_carry_the_medians_p_improve_and_holm_p_of_the_tables(tables, tmp_path):
    batch = _section(_findings(tables, tmp_path), "batch")
    effects = pd.read_csv(tables / "feed_effects.csv")
    e = effects[(effects["norm"] == "batch") & (effects["feed"] == "joint") & (effects["step"] == 500)
                & (effects["metric"] == "fid")].iloc[0]
    summary = pd.read_csv(tables / "summary.csv")
    s = summary[(summary["feed"] == "joint") & (summary["norm"] == "batch") & (summary["step"] == 500)
                & (summary["metric"] == "fid")].iloc[0]
    line = next(li for li in batch.splitlines() if li.startswith("- **joint vs split"))
    assert f"Holm p = {e['p_holm']:.3f}" in line
    assert f"P(joint better) = {e['p_improve']:.2f}" in line
    assert f"joint {s['median']:.3g} (95% CI {s['median_ci_low']:.3g}–{s['median_ci_high']:.3g})" in line
    assert "joint is worse than split" in line


def test_findings_call_joint_consistent_like_split_when_only_joint_differs(tables, tmp_path):
    text = _findings(tables, tmp_path)
    assert "**joint_consistent** behaves like split" in _section(text, "batch")
    assert "cannot be told from split or joint" in _section(text, "none")
    assert "no detectable difference; the median CIs overlap" in _section(text, "none")


def test_findings_follow_the_tables_not_fixed_text(tables, tmp_path):
    # The same runs, but a table saying joint_consistent is also worse under batch norm.
    where = {"norm": "batch", "feed": "joint_consistent", "step": 500, "metric": "fid"}
    edited = _edit(tables, tmp_path, "feed_effects", where=where, set={"p_holm": 0.001, "p_improve": 0.1})
    batch = _section(_findings(edited, tmp_path), "batch")
    assert "**joint_consistent** behaves like joint: both are worse than split" in batch
    assert "Holm p = 0.001" in batch


def test_a_holm_p_above_alpha_is_reported_as_no_detectable_difference(tables, tmp_path):
    where = {"norm": "batch", "feed": "joint", "step": 500, "metric": "fid"}
    edited = _edit(tables, tmp_path, "feed_effects", where=where, set={"p_holm": 0.2})
    batch = _section(_findings(edited, tmp_path), "batch")
    assert "Holm p = 0.200: no detectable difference" in batch
    assert "**joint_consistent** cannot be told from split or joint" in batch


def test_findings_report_the_power_needed_when_no_difference_is_detected(tables, tmp_path):
    where = {"norm": "none", "feed": "joint", "metric": "fid"}
    edited = _edit(tables, tmp_path, "power", where=where, set={"n_needed": 123, "effect_size": 0.36, "enough": False})
    none = _section(_findings(edited, tmp_path), "none")
    assert "Hedges g = 0.36) with 80% power would need about 123 seeds per variant; the study has 6" in none


def test_findings_say_when_the_rank_test_cannot_reach_significance_with_so_few_seeds(tmp_path):
    make_runs(tmp_path / "runs", seeds=range(2), images=False)
    stats.write_aggregate([tmp_path / "runs"], tmp_path / "tables")
    config = study_config(seeds=2)
    stats.write_stats(config, tmp_path / "tables")
    batch = _section(_findings(tmp_path / "tables", tmp_path, config), "batch")
    # The smallest raw p is 2/C(4, 2) = 0.333; Holm over the 4 comparisons of the family lifts it to 1.
    assert ("With 2 and 2 usable runs the two-sided Mann-Whitney U cannot reach Holm p < 0.05 whatever the effect "
            "(smallest attainable Holm p = 1.000)") in batch


def test_context_gap_sentence_is_kendall_tau_of_the_late_gap_against_the_metric(tables, tmp_path):
    batch = _section(_findings(tables, tmp_path), "batch")
    logs, runs = pd.read_csv(tables / "train_logs.csv"), pd.read_csv(tables / "runs.csv")
    logs = logs[(logs["norm"] == "batch") & (logs["step"] > 250)]
    gap = logs.groupby(["feed", "seed"])["context_gap"].mean().dropna()
    fid = runs[(runs["norm"] == "batch") & (runs["step"] == 500) & (runs["metric"] == "fid")
               & (runs["status"] == "completed")].set_index(["feed", "seed"])["value"]
    both = pd.concat([gap, fid], axis=1, join="inner")
    tau, p = sps.kendalltau(both["context_gap"], both["value"])
    assert f"Kendall τ = {tau:.2f}" in batch and f"{len(both)} usable runs" in batch
    assert "Runs with a larger gap have worse FID" in batch
    assert "joint 0.30" in batch.split("D accuracy")[0]


def test_findings_say_the_evidence_is_insufficient_with_a_single_seed(tmp_path):
    make_runs(tmp_path / "runs", seeds=range(1), images=False)
    stats.write_aggregate([tmp_path / "runs"], tmp_path / "tables")
    config = study_config(seeds=1)
    stats.write_stats(config, tmp_path / "tables")
    text = _findings(tmp_path / "tables", tmp_path, config)
    assert "**Evidence insufficient:** one seed per variant" in text
    assert "Evidence insufficient: too few usable runs (n_ref=1, n=1)" in _section(text, "batch")
    assert "Feed × norm interaction: not estimated" in text


def test_findings_with_one_feed_only_say_there_is_nothing_to_compare(tmp_path):
    make_runs(tmp_path / "runs", feeds=("split",), seeds=range(3), images=False)
    stats.write_aggregate([tmp_path / "runs"], tmp_path / "tables")
    config = study_config(feeds=("split",), seeds=3)
    stats.write_stats(config, tmp_path / "tables")
    text = _findings(tmp_path / "tables", tmp_path, config)
    assert "Only one feed (split) was run: there is nothing to compare." in text
    assert "vs split" not in text


def test_cli_findings_writes_the_page(tables, tmp_path):
    out = tmp_path / "results" / "findings.md"
    assert cli.main(["findings", "--config-json", "{}", "--tables", str(tables), "--out", str(out)]) == 0
    assert out.read_text().startswith("# Findings")
