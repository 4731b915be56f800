"""findings.md: formatted from the tables, every verdict a table cell, every number a table's, thin evidence said."""

from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pytest

from ganablate import cli, stats
from ganablate.findings import write_findings
from tests.synthetic_runs import make_runs, study_config

CONFIG = study_config(seeds=6)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """6 seeds; under batch norm joint is worse than split and joint_consistent equals split; one joint run diverged."""
    root = tmp_path_factory.mktemp("study")
    make_runs(root / "runs", seeds=range(6), diverged={("joint", "batch", 1)}, images=False)
    stats.write_aggregate([root / "runs"], root / "tables")
    stats.write_stats(CONFIG, root / "tables")
    return root / "tables"


def _section(text: str, norm: str) -> str:
    return text.split(f"## norm = {norm}\n")[1].split("\n## ")[0]


def _findings(tables, tmp_path, config=CONFIG) -> str:
    return write_findings(config, tables, tmp_path / "findings.md")[0].read_text()


def _line(text: str, start: str) -> str:
    return next(li for li in text.splitlines() if li.startswith(start))


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


def test_findings_open_with_the_analysis_plan_and_its_hash(tables, tmp_path):
    text = _findings(tables, tmp_path)
    plan = json.loads((tables / "plan.json").read_text())
    header = text.split("## Study")[0]
    assert f"hash {plan['hash']}" in header
    assert "FID on domain features at the final step 500 (lower is better); secondary: KID" in header
    assert "two-sided paired t-test on log(metric), runs paired by seed" in header
    assert ("Confirmatory family, Holm-adjusted at alpha 0.05: batch: joint vs split; batch: joint_consistent vs "
            "split; batch: joint_consistent vs joint") in header
    assert "within ±10%" in header and "a ratio of 1.25" in header and "ranks worst" in header


def test_findings_state_the_study_size_steps_and_failure_rule(tables, tmp_path):
    text = _findings(tables, tmp_path)
    assert "6 seeds per variant (6 variants, 36 runs); scored at steps 250, 500" in text
    assert stats.failure_rule(CONFIG) in text
    assert "mixed model on log FID" in text


def test_the_confirmatory_answer_carries_the_ratio_ci_holm_p_and_verdict_of_the_table(tables, tmp_path):
    answer = _findings(tables, tmp_path).split("## The confirmatory answer")[1].split("\n## ")[0]
    effects = pd.read_csv(tables / "feed_effects.csv")
    e = effects[(effects["role"] == "confirmatory") & (effects["feed_ref"] == "split")
                & (effects["feed"] == "joint")].iloc[0]
    line = _line(answer, "- batch: **joint vs split**")
    assert e["verdict"] == "worse" and "joint is **worse** than split" in line
    assert (f"FID ratio {e['ratio']:.3g} (95% CI {e['ratio_ci_low']:.3g}–{e['ratio_ci_high']:.3g}, paired over 5 seeds)"
            in line)
    assert "Holm p < 0.001" in line and "Secondary KID" in line
    assert "**joint_consistent vs joint**" in answer and "joint_consistent is **better** than joint" in answer
    mechanism = pd.read_csv(tables / "mechanism.csv").set_index(["norm", "step"]).loc[("batch", 500)]
    assert f"joint_consistent recovers {mechanism['recovered']:.3g} of joint's gap to split" in answer


def test_negative_controls_are_called_equivalent_only_by_the_tost(tables, tmp_path):
    none = _section(_findings(tables, tmp_path), "none")
    line = _line(none, "- **joint vs split**")
    assert "**equivalent** within ±10%" in line and "TOST ±10% p < 0.001" in line
    assert "no detectable difference" not in none and "overlap" not in none


def test_findings_format_the_verdict_column_and_compute_none(tables, tmp_path):
    # The same runs, but tables whose verdicts say otherwise: the page follows the tables.
    where = {"norm": "none", "feed_ref": "split", "feed": "joint", "step": 500, "metric": "fid"}
    edited = _edit(tables, tmp_path, "feed_effects", where=where, set={"verdict": "inconclusive", "p_equivalence": 0.31})
    line = _line(_section(_findings(edited, tmp_path), "none"), "- **joint vs split**")
    assert "**inconclusive**, neither a difference nor equivalence could be shown" in line
    assert "TOST ±10% p = 0.31" in line


def test_the_power_of_the_rule_used_is_quoted_from_the_power_table(tables, tmp_path):
    where = {"norm": "batch", "feed_ref": "split", "feed": "joint"}
    edited = _edit(tables, tmp_path, "power", where=where, set={"power": 0.29, "seeds_needed": 17})
    line = _line(_section(_findings(edited, tmp_path), "batch"), "- **joint vs split**")
    assert "with 5 seeds: 0.29; about 17 seeds per variant give 80%" in line


def test_findings_hold_no_number_that_is_not_in_a_table(tables, tmp_path):
    text = _findings(tables, tmp_path)
    # The legend of `recovered`, POWER, the level, the margin, the p floor and the trend's unit (per 1000 steps).
    allowed = {"0", "1", "80", "95", "10", "0.001", "1000"}
    for csv in tables.glob("*.csv"):
        for value in pd.read_csv(csv).select_dtypes("number").to_numpy().ravel():
            if pd.notna(value):
                allowed |= {f"{value:.3g}", str(int(value)) if float(value).is_integer() else ""}
    plan = json.loads((tables / "plan.json").read_text())
    allowed |= {f"{v:.3g}" for v in [*plan.values(), *plan["design"].values(), *plan["design"]["steps"]]
                if isinstance(v, (int, float)) and not isinstance(v, bool)}
    body = re.sub(r"\(tables in [^)]*\)|tables in \S+|hash \w+|log2|χ²", "", text)
    numbers = re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?", body)
    assert numbers and not [n for n in numbers if n.lstrip("-") not in allowed and n not in allowed]


def test_the_context_gap_is_related_to_the_metric_within_feeds_never_pooled(tables, tmp_path):
    text = _findings(tables, tmp_path)
    assert "Kendall" not in text and "pooled" not in text
    assert "Within feeds (OLS log FID ~ gap + feed" in _section(text, "batch")


def test_findings_say_the_evidence_is_insufficient_with_a_single_seed(tmp_path):
    make_runs(tmp_path / "runs", seeds=range(1), images=False)
    stats.write_aggregate([tmp_path / "runs"], tmp_path / "tables")
    config = study_config(seeds=1)
    stats.write_stats(config, tmp_path / "tables")
    batch = _section(_findings(tmp_path / "tables", tmp_path, config), "batch")
    line = _line(batch, "- **joint vs split**")
    assert "**inconclusive**" in line and "1 usable seed pair(s)" in line


def test_findings_with_one_feed_only_say_there_is_nothing_to_compare(tmp_path):
    make_runs(tmp_path / "runs", feeds=("split",), seeds=range(3), images=False)
    stats.write_aggregate([tmp_path / "runs"], tmp_path / "tables")
    config = study_config(feeds=("split",), seeds=3)
    stats.write_stats(config, tmp_path / "tables")
    text = _findings(tmp_path / "tables", tmp_path, config)
    assert "No comparison: the study holds one feed of this norm." in _section(text, "batch")
    assert "## The confirmatory answer" not in text


def test_cli_findings_writes_the_page(tables, tmp_path):
    out = tmp_path / "findings.md"
    assert cli.main(["findings", "--config-json", json.dumps({"study": {"seeds": 6}}), "--tables", str(tables),
                     "--out", str(out)]) == 0
    assert out.read_text().startswith("# Findings")
