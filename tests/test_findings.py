"""findings.md: formatted from the tables and plan.json, every verdict a table cell, every number a table's, and
every axis and level name plan.json's (tables from tests/synthetic_tables.py, not from the statistics)."""

from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pytest

from ganablate.errors import UsageError
from ganablate.report.findings import fmt, write_findings
from ganablate.report.view import StudyView
from ganablate.study import vocab
from tests.synthetic_tables import Synthetic, axis

FEED = axis(["split", "joint", "joint_consistent"])
BATCH = axis(["16", "64"], reference="64", values=[16, 64], ordered=True, sets="train.batch_size")
MECHANISM = {"axis": "feed", "reference": "split", "broken": "joint", "repaired": "joint_consistent"}


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """feed x batch, 6 seeds: joint is worse than split at batch 16 (one of its runs diverged); two confirmatory
    contrasts; a mechanism declared."""
    study = Synthetic({"feed": FEED, "batch": BATCH}, seeds=range(6), diverged={(("joint", "16"), 1)})
    return study.write(tmp_path_factory.mktemp("study"), confirmatory=2, mechanism=MECHANISM, images=False)


def _findings(tables, tmp_path) -> str:
    return write_findings(tables, tmp_path / "findings.md")[0].read_text()


def _section(text: str, heading: str) -> str:
    return text.split(f"\n## {heading}\n")[1].split("\n## ")[0]


def _line(text: str, contrast: str) -> str:
    return next(li for li in text.splitlines() if f"**{contrast}**:" in li)


def _contrasts(tables) -> pd.DataFrame:
    table = StudyView(tables).table("contrasts")
    return table[(table["metric"] == "fid") & (table["step"] == 500)]


def _copy(tables, tmp_path):
    copy = tmp_path / "tables"
    shutil.copytree(tables, copy)
    return copy


def _edit(tables, tmp_path, name: str, where: dict, changes: dict):
    """A copy of the tables with the one row of name.csv that matches `where` changed."""
    copy = _copy(tables, tmp_path)
    table = StudyView(copy).table(name)
    mask = pd.Series(True, index=table.index)
    for key, value in where.items():
        mask &= table[key] == value
    assert mask.sum() == 1
    for key, value in changes.items():
        table.loc[mask, key] = value
    table.to_csv(copy / f"{name}.csv", index=False)
    return copy


def _edit_plan(tables, tmp_path, **changes):
    copy = _copy(tables, tmp_path)
    plan = json.loads((copy / "plan.json").read_text())
    (copy / "plan.json").write_text(json.dumps(plan | changes))
    return copy


def test_the_page_opens_with_the_plan_its_hash_axes_and_rules(tables, tmp_path):
    plan = _section(_findings(tables, tmp_path), "Analysis plan (hash 3f9a0c1e)")
    assert (
        "**feed** (sets train.some_key): split (reference), joint, joint_consistent; **batch** (sets "
        "train.batch_size, ordered): 16, 64 (reference)"
    ) in plan
    assert "full, 6 cells; seeds 0, 1, 2, 3, 4, 5 in every cell" in plan
    assert "FID on domain features at the final step 500 (lower is better); secondary: KID" in plan
    assert f"- Primary test: {vocab.TESTS['paired_t_log']}; effects are ratios" in plan
    assert "Holm-adjusted at alpha 0.05: feed: joint vs split | batch=16; feed: joint vs split | batch=64" in plan
    assert "- Further declared contrasts (outside the family): none." in plan
    assert "within ±10% of a ratio of 1. Why this margin: a tenth of the metric" in plan
    assert "a ratio of 1.25" in plan and "a diverged run leaves its seed pair out" in plan


def test_plan_changed_after_launch_is_said_exactly_when_plan_json_says_so(tables, tmp_path):
    assert "plan changed after launch" not in _findings(tables, tmp_path).lower()
    changed = _edit_plan(tables, tmp_path, plan_changed_after_launch=True, launch_hashes=["0badc0de"])
    head = _findings(changed, tmp_path).split("\n## ")[0]
    assert "**Warning: analysis plan changed after launch.**" in head and "0badc0de" in head


def test_the_confirmatory_answer_prints_every_number_of_its_rows(tables, tmp_path):
    answer = _section(_findings(tables, tmp_path), "The confirmatory answer")
    rows = _contrasts(tables)
    rows = rows[rows["role"] == "confirmatory"]
    power = StudyView(tables).table("power").set_index("contrast")
    assert len(rows) == 2
    for _, r in rows.iterrows():
        line = _line(answer, r["contrast"])
        assert (
            f"ratio (joint / split) {fmt(r['ratio'])} (95% CI {fmt(r['ratio_ci_low'])}–{fmt(r['ratio_ci_high'])}, "
            f"paired over {r['n_pairs']} seeds, pair correlation {fmt(r['pair_correlation'])})"
        ) in line
        holm = "Holm p < 0.001" if r["p_holm"] < 0.001 else f"Holm p = {fmt(r['p_holm'])}"
        assert holm in line
        p = power.loc[r["contrast"]]
        assert f"({p['rule']}) with {p['n_pairs']} seeds: {fmt(p['power'])}; {p['seeds_needed']} seeds" in line
        verdict = {
            "worse": "joint is **worse** than split",
            "equivalent": "**equivalent** within ±10%",
            "inconclusive": "**inconclusive**",
        }[r["verdict"]]
        assert verdict in line
    assert "joint is **worse** than split" in _line(answer, "feed: joint vs split | batch=16")


def test_without_seeds_needed_the_power_clause_names_the_largest_count_simulated(tables, tmp_path):
    where = {"contrast": "feed: joint vs split | batch=16"}
    edited = _edit(tables, tmp_path, "power", where, {"seeds_needed": float("nan"), "power": 0.29})
    line = _line(_section(_findings(edited, tmp_path), "The confirmatory answer"), where["contrast"])
    assert ": 0.29; more than 40 seeds would be needed for 80%." in line


@pytest.mark.parametrize(
    ("verdict", "said"),
    [
        ("inconclusive", "**inconclusive**, neither a difference nor equivalence could be shown"),
        ("better", "joint is **better** than split"),
    ],
)
def test_the_sentence_follows_the_verdict_column(tables, tmp_path, verdict, said):
    where = {"contrast": "feed: joint vs split | batch=16", "metric": "fid", "step": 500}
    edited = _edit(tables, tmp_path, "contrasts", where, {"verdict": verdict})
    line = _line(_section(_findings(edited, tmp_path), "The confirmatory answer"), where["contrast"])
    assert said in line and "**worse**" not in line


def test_the_page_reads_a_rows_hypothesis_from_its_test_column_not_from_its_name(tables, tmp_path):
    where = {"contrast": "feed: joint vs split | batch=16", "metric": "fid", "step": 500}
    changes = {"test": "noninferiority", "margin": 0.1, "verdict": "inferior"}
    line = _line(
        _section(_findings(_edit(tables, tmp_path, "contrasts", where, changes), tmp_path), "The confirmatory answer"),
        where["contrast"],
    )
    assert ": **inferior**: " in line and "non-inferiority p" in line and "the data meet a margin of +" in line


def test_equivalent_is_said_only_of_rows_whose_verdict_is_equivalent(tables, tmp_path):
    text = _findings(tables, tmp_path)
    rows = _contrasts(tables)
    rows = rows[rows["role"].isin(["confirmatory", "control"])]
    assert {"equivalent", "worse"} <= set(rows["verdict"])
    for _, r in rows.iterrows():
        assert ("**equivalent**" in _line(text, r["contrast"])) == (r["verdict"] == "equivalent"), r["contrast"]


def test_controls_are_counted_and_printed_with_their_tost_interval(tables, tmp_path):
    controls = _section(_findings(tables, tmp_path), "Controls")
    rows = _contrasts(tables)
    rows = rows[rows["role"] == "control"]
    n_equivalent = (rows["verdict"] == "equivalent").sum()
    assert f"- {n_equivalent} of {len(rows)} controls are **equivalent** within ±10%" in controls
    assert "0 gave identical runs" in controls
    for _, r in rows.iterrows():
        line = _line(controls, r["contrast"])
        assert f"TOST interval {fmt(r['equivalence_ci_low'])}–{fmt(r['equivalence_ci_high'])}" in line
        assert f"the data meet a margin of ±{fmt(r['equivalence_bound'])}" in line


def test_an_identical_control_says_identical_with_no_p_and_is_not_counted_as_equivalent(tables, tmp_path):
    """A row whose arms were bitwise identical (contrasts.csv's identical column, verdict identical) has no test: the
    page says so and prints no 'p NA', no NA interval."""
    rows = _contrasts(tables)
    rows = rows[rows["role"] == "control"]
    name = rows.loc[rows["verdict"] == "equivalent", "contrast"].iloc[0]
    untested = {"p": float("nan"), "p_equivalence": float("nan"), "equivalence_bound": float("nan")}
    edited = _edit(
        tables,
        tmp_path,
        "contrasts",
        {"contrast": name, "metric": "fid", "step": 500},
        {"verdict": "identical", "identical": True} | untested,
    )
    controls = _section(_findings(edited, tmp_path), "Controls")
    n_equivalent = (rows["verdict"] == "equivalent").sum() - 1
    assert f"- {n_equivalent} of {len(rows)} controls are **equivalent**" in controls
    assert "1 gave identical runs and are listed apart" in controls
    apart = controls.split("Identical runs:")[1]
    line = _line(apart, name)
    n_pairs = rows.set_index("contrast").loc[name, "n_pairs"]
    assert line.startswith(f"- **{name}**: **identical** runs") and f"over {n_pairs} seeds" in line
    assert "**equivalent**" not in line and "NA" not in line and " p " not in line


EXPLORATORY = "Exploratory (unadjusted p; not part of the answer)"


def test_exploratory_interactions_and_trends_are_counted_by_verdict_with_a_pointer_not_listed(tables, tmp_path):
    section = _section(_findings(tables, tmp_path), EXPLORATORY)
    rows = _contrasts(tables)
    for kind in ("interaction", "trend"):
        of_kind = rows[(rows["kind"] == kind) & (rows["role"] == "exploratory")]
        counts = sorted(of_kind["verdict"].value_counts().items(), key=lambda item: (-item[1], item[0]))
        words = ", ".join(f"{n} **{word}**" for word, n in counts)
        assert f"- Kind {kind}: {len(of_kind)} rows in contrasts.csv, each with its ratio, 95% CI and p: {words}" in (
            section
        )
    assert "**feed: joint vs split x batch: 16 vs 64**" not in section and "(exploratory)" not in section
    where = {"contrast": "fid per doubling of batch"}
    edited = _findings(_edit(tables, tmp_path, "contrasts", where, {"role": "confirmatory"}), tmp_path)
    assert "- **fid per doubling of batch**: " in _section(edited, "The confirmatory answer")
    assert "Kind trend" not in _section(edited, EXPLORATORY)


def test_the_trends_over_training_are_one_line_counted_by_trend_with_a_pointer_to_trend_csv(tables, tmp_path):
    section = _section(_findings(tables, tmp_path), EXPLORATORY)
    trend = StudyView(tables).table("trend")
    over = [li for li in section.splitlines() if li.startswith("- Over training")]
    assert over == [
        f"- Over training: {len(trend)} contrasts' log ratios from step 250 to step 500 (trend.csv, each with its "
        f"slope per 1000 steps, 95% CI and p): {len(trend)} **no detectable change**."
    ]
    assert not any(t in section for t in trend["contrast"])
    widened = _edit(tables, tmp_path, "trend", {"contrast": trend["contrast"].iloc[0]}, {"trend": "widens"})
    assert f"{len(trend) - 1} **no detectable change**, 1 **widens**." in _findings(widened, tmp_path)


def test_the_mechanism_is_given_on_both_scales_and_a_null_association_with_its_ci(tables, tmp_path):
    section = _section(_findings(tables, tmp_path), "Mechanism")
    m = StudyView(tables).table("mechanism").set_index(["batch", "step"]).loc[("16", 500)]
    line = next(li for li in section.splitlines() if li.startswith("- batch = 16:"))
    assert (
        f"joint_consistent recovers {fmt(m['recovered'])} of joint's gap to split on the log scale (95% CI "
        f"{fmt(m['recovered_ci_low'])}–{fmt(m['recovered_ci_high'])}, Fieller) and {fmt(m['recovered_raw'])} on "
        f"the raw scale (95% CI {fmt(m['recovered_raw_ci_low'])}–{fmt(m['recovered_raw_ci_high'])})"
    ) in line
    assert m["gap_slope_ci_low"] < 0 < m["gap_slope_ci_high"]
    assert (
        f"No detectable association between the context gap and log FID within levels of feed: slope "
        f"{fmt(m['gap_slope'])} per logit of gap (95% CI {fmt(m['gap_slope_ci_low'])}–"
        f"{fmt(m['gap_slope_ci_high'])}"
    ) in line
    assert "no association" not in section.lower()
    edited = _edit(tables, tmp_path, "mechanism", {"batch": "16", "step": 500}, {"gap_slope_ci_low": 0.05})
    line = next(
        li for li in _section(_findings(edited, tmp_path), "Mechanism").splitlines() if li.startswith("- batch = 16:")
    )
    assert "No detectable" not in line and f"log FID changes by {fmt(m['gap_slope'])} per logit of gap" in line


def test_no_detectable_is_never_said_without_a_ci_beside_it(tables, tmp_path):
    """A row's 'no detectable' has its CI beside it; a count of rows points at the table that holds each row's CI."""
    lines = [li for li in _findings(tables, tmp_path).splitlines() if "no detectable" in li.lower()]
    assert lines and all(re.search(r"95% CI -?[\d.]+–|\(trend\.csv, each with its .*95% CI", li) for li in lines)


def test_without_a_mechanism_the_page_says_none_was_declared(tmp_path):
    tables = Synthetic({"feed": FEED, "batch": BATCH}, seeds=range(3)).write(tmp_path, images=False)
    assert "- No mechanism was declared (mechanism.csv is empty)." in _findings(tables, tmp_path)


def test_failures_and_the_mixed_model_are_read_from_their_tables(tables, tmp_path):
    text = _findings(tables, tmp_path)
    failures = _section(text, "Failures")
    assert (
        "- feed = joint, batch = 16: 1 of 6 runs failed (1 diverged, 0 beyond the threshold, 0 without a "
        "value); rate 0.167 (95% CI 0–0.6)"
    ) in failures
    mixed = _section(text, "Mixed model (exploratory sensitivity analysis)")
    assert "`log(fid) ~ feed * batch` on the log scale, 36 runs of 6 seeds, converged" in mixed
    assert "- feed:batch: Wald χ²(2) = 14.5, p = 0.0021." in mixed


def _numbers_allowed(tables) -> set[str]:
    """Every number of every table and of plan.json, as the page may print it (3 significant digits, a count, a
    percentage of a fraction), and the legend's 0 and 1, the slope's unit (1000) and the p floor."""
    allowed = {"0", "1", "1000", "0.001"}
    for csv in tables.glob("*.csv"):
        for value in pd.read_csv(csv).select_dtypes("number").to_numpy().ravel():
            if pd.notna(value):
                allowed |= {fmt(value), str(int(value)) if float(value).is_integer() else ""}

    def walk(x):
        if isinstance(x, dict | list):
            for v in x.values() if isinstance(x, dict) else x:
                walk(v)
        elif isinstance(x, int | float) and not isinstance(x, bool):
            allowed.update({fmt(x), str(x), f"{x:.0%}".rstrip("%")})
        elif isinstance(x, str):
            allowed.add(x)

    walk(json.loads((tables / "plan.json").read_text()))
    return allowed


def _not_in_a_table(tables, tmp_path) -> list[str]:
    """The page's numbers that no table holds, beyond counts of its rows (how many controls are equivalent, how many
    rows say each verdict)."""
    text = _findings(tables, tmp_path)
    body = re.sub(r"tables in \S+|hash \w+|log2|χ²", "", text)
    numbers = re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?", body)
    counts = {str(n) for n in range(len(_contrasts(tables)) + 1)}
    allowed = _numbers_allowed(tables) | counts
    assert numbers
    return [n for n in numbers if n.lstrip("-") not in allowed and n not in allowed]


def test_the_page_holds_no_number_that_is_not_in_a_table(tables, sequential, tmp_path):
    assert _not_in_a_table(tables, tmp_path) == []
    assert _not_in_a_table(sequential, tmp_path) == []


def test_the_page_names_only_the_axes_and_levels_of_plan_json(tmp_path):
    """Axes alpha and beta: no word of another study's design appears, and labels stay strings ('nan' too)."""
    study = Synthetic({"alpha": axis(["a1", "a2"]), "beta": axis(["nan", "16"], reference="16")}, seeds=range(3))
    tables = study.write(
        tmp_path, mechanism={"axis": "alpha", "reference": "a1", "broken": "a2", "repaired": "a2"}, images=False
    )
    text = _findings(tables, tmp_path)
    for word in ("feed", "norm", "split", "joint", "batch", "instance", "spectral"):
        assert word not in text.lower(), word
    assert (
        "**alpha** (sets train.some_key): a1 (reference), a2; **beta** (sets train.some_key): nan, 16 (reference)"
        in text
    )
    assert "**alpha: a2 vs a1 | beta=nan**: " in text and "- beta = nan: a2 recovers" in text
    assert set(StudyView(tables).table("contrasts")["beta"]) == {"nan", "16", "*"}


def test_a_single_axis_study_has_no_interaction_and_the_rst_is_beside_the_md(tmp_path):
    tables = Synthetic({"alpha": axis(["a1", "a2", "a3"])}, seeds=range(3)).write(tmp_path, images=False)
    md, rst = write_findings(tables, tmp_path / "out" / "findings.md")
    text = md.read_text()
    assert rst == md.with_suffix(".rst") and "**alpha: a2 vs a1**: a2 is **worse** than a1" in text
    assert "- No exploratory interaction or trend in contrasts.csv (an interaction needs two axes, a trend an " in text
    assert "The confirmatory answer\n-----------------------\n" in rst.read_text()


def test_the_rst_page_is_valid_restructuredtext(tables, tmp_path):
    from docutils.core import publish_doctree

    changed = _edit_plan(tables, tmp_path, plan_changed_after_launch=True)
    rst = write_findings(changed, tmp_path / "findings.md")[1].read_text()
    publish_doctree(rst, settings_overrides={"halt_level": 2, "report_level": 2})  # raises on a warning


def test_findings_need_plan_json(tables, tmp_path):
    copy = _copy(tables, tmp_path)
    (copy / "plan.json").unlink()
    with pytest.raises(UsageError, match="plan.json not found"):
        write_findings(copy, tmp_path / "findings.md")


def test_without_remedies_the_page_says_none_were_declared(tables, tmp_path):
    assert (
        _section(_findings(tables, tmp_path), "Remedies") == "\n- No remedies were declared (remedies.csv is empty).\n"
    )


def test_the_remedies_section_formats_each_row_of_remedies_csv(tables, tmp_path):
    """Any axes: here the remedy is batch 16 against the reference 64, with feed's split working and joint broken."""
    from ganablate.analysis.remedies import TAIL

    copy = _copy(tables, tmp_path)
    row = dict.fromkeys(["feed", "batch", *TAIL], "") | {"feed": "*", "batch": "16", "step": 500, "metric": "fid"}
    row |= {"extractor": "domain", "axis": "batch", "feed_axis": "feed", "reference": "64"}
    row |= {"working": "split", "broken": "joint", "use": "when the batch is small"}
    row |= {"fix_contrast": "c1", "fix_role": "confirmatory", "fix_verdict": "non-inferior"}
    row |= {"fix_ratio": 1.0234, "fix_ci_low": 0.9712, "fix_ci_high": 1.0781}
    row |= {"in_broken_contrast": "c2", "in_broken_role": "control", "in_broken_verdict": "better"}
    row |= {"in_broken_ratio": 0.8123, "in_broken_ci_low": 0.7712, "in_broken_ci_high": 0.8555}
    row |= {"fix_gmean_level": 31.24, "fix_gmean_level_ref": 30.52}  # in_broken's unknown: its ratio alone
    row |= dict.fromkeys(["in_broken_gmean_level", "in_broken_gmean_level_ref"], float("nan"))
    row |= dict.fromkeys(["in_working_ratio", "in_working_ci_low", "in_working_ci_high"], float("nan"))
    row |= {"seconds_per_step": 0.0467, "reference_seconds_per_step": 0.0412, "cost_ratio": 1.1335}
    row |= {"n_timed": 12, "n_timed_reference": 12, "note": "in_working: not run"}
    pd.DataFrame([row]).to_csv(copy / "remedies.csv", index=False)
    section = _section(_findings(copy, tmp_path), "Remedies")
    assert section == (
        "\n| remedy R | joint+R vs split+64: FID ratio (95% CI), FID of each arm | verdict | joint+R vs joint+64 | "
        "verdict | time per step vs 64 | when to use |\n| --- | --- | --- | --- | --- | --- | --- |\n"
        "| batch = 16 | 1.02 (0.971–1.08), 31.2 vs 30.5 | non-inferior (confirmatory) | 0.812 (0.771–0.856) | "
        "better (control) | "
        "1.13x | when the batch is small |\n\n- batch = 16: in_working: not run\n"
    )


def test_each_arms_level_is_printed_beside_the_ratio_so_two_failed_arms_do_not_read_as_no_difference(tables, tmp_path):
    where = {"contrast": "feed: joint vs split | batch=64", "metric": "fid", "step": 500}
    failed = {"ratio": 1.0, "gmean_level": 551.0, "gmean_level_ref": 548.0}
    line = _line(_findings(_edit(tables, tmp_path, "contrasts", where, failed), tmp_path), where["contrast"])
    assert "ratio (joint / split) 1 (95% CI" in line
    assert "FID 551 (feed=joint) against 548 (feed=split) as geometric means over the paired seeds" in line
    r = _contrasts(tables).set_index("contrast").loc["batch: 16 vs 64 | feed=joint"]
    line = _line(_findings(tables, tmp_path), "batch: 16 vs 64 | feed=joint")
    assert f"FID {fmt(r['gmean_level'])} (batch=16) against {fmt(r['gmean_level_ref'])} (batch=64)" in line


def test_the_answers_come_first_then_the_plan_and_the_rest(tables, tmp_path):
    headings = [li for li in _findings(tables, tmp_path).splitlines() if li.startswith("## ")]
    assert headings == [
        "## The confirmatory answer",
        "## Controls",
        "## Remedies",
        "## Analysis plan (hash 3f9a0c1e)",
        "## Mechanism",
        f"## {EXPLORATORY}",
        "## Failures",
        "## Mixed model (exploratory sensitivity analysis)",
    ]


# --- a sequential study: verdicts and intervals from looks.csv --------------------------------------------------

LOOKS = {"first": 4, "block": 4, "cap": 8, "start": 0, "counts": [4, 8], "spending": "hsd", "gamma": -2.0}
LOOKS |= {"calibration_paths": 100000, "calibration_seed": 0}


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """feed x batch, looks at 4 and 8 seeds: the batch=16 cells ran 8 seeds, the others 4; the first confirmatory
    contrast was decided at look 1, the second at look 2, every control at look 1 but one still open at look 2."""
    study = Synthetic({"feed": FEED, "batch": BATCH}, seeds=range(8))
    tables = study.write(tmp_path_factory.mktemp("sequential"), confirmatory=2, images=False, looks=LOOKS)
    runs = pd.read_csv(tables / "runs.csv", dtype={"batch": str})
    runs[(runs["batch"] == "16") | (runs["seed"] < 4)].to_csv(tables / "runs.csv", index=False)
    declared = _contrasts(tables)
    declared = declared[declared["role"].isin(["confirmatory", "control"])].reset_index(drop=True)
    rows = []
    for i, r in declared.iterrows():
        row = {"id": r["id"], "contrast": r["contrast"], "role": r["role"], "test": "difference", "margin": 0.1}
        row |= {"n_failed": 0, "boundary": 7.76, "note": ""}
        reached = 2 if i in (1, len(declared) - 1) else 1
        for look in range(1, reached + 1):
            decision = "open" if look < reached or i == len(declared) - 1 else ("worse" if i < 2 else "equivalent")
            ratio, half = 1.3 + 0.01 * i + 0.001 * look, 0.2 / look
            rows.append(
                row
                | {"look": look, "seeds": 4 * look, "n": 4 * look, "ratio": ratio}
                | {"rci_low": ratio - half, "rci_high": ratio + half, "decision": decision}
            )
    pd.DataFrame(rows).to_csv(tables / "looks.csv", index=False)
    return tables


def test_a_sequential_study_says_its_looks_seeds_per_cell_and_where_each_verdict_was_reached(sequential, tmp_path):
    text = _findings(sequential, tmp_path)
    section = _section(text, "Seeds and looks (sequential)")
    headings = [li for li in text.splitlines() if li.startswith("## ")]
    assert headings.index("## Seeds and looks (sequential)") == headings.index("## Remedies") + 1
    assert (
        "- Looks at 4, 8 seeds (first 4, blocks of 4, cap 8); `hsd` error spending, gamma -2; the paired t's boundary "
        "at each look calibrated by simulation (100000 paths, seed 0) and frozen at launch in plan.json."
    ) in section
    assert (
        "- Seeds each cell ran (runs.csv): 8 in (feed = split, batch = 16), (feed = joint, batch = 16), "
        "(feed = joint_consistent, batch = 16); 4 in every other cell."
    ) in section
    looks = pd.read_csv(sequential / "looks.csv")
    first, second, still = (
        looks[looks["contrast"] == name].iloc[-1] for name in looks["contrast"].unique()[[0, 1, -1]]
    )
    assert (
        f"- **{first['contrast']}** (confirmatory): **worse** reached at look 1 of 2 (4 seeds); adjusted interval "
        f"{fmt(first['rci_low'])}–{fmt(first['rci_high'])}, the repeated CI (the interval to quote)."
    ) in section
    assert f"- **{second['contrast']}** (confirmatory): **worse** reached at look 2 of 2 (8 seeds)" in section
    assert f"- **{still['contrast']}** (control): **open** still open after look 2 of 2 (8 seeds)" in section
    assert "are reported at the seeds that ran, with fixed-n intervals not adjusted for the looks." in section
    assert "seeds in looks, up to 8 in a cell (Seeds and looks, above)" in _section(
        text, "Analysis plan (hash 3f9a0c1e)"
    )


def test_a_sequential_studys_answer_and_controls_read_the_looks_verdict_and_interval_not_the_fixed_n_ones(
    sequential, tmp_path
):
    text = _findings(sequential, tmp_path)
    looks = pd.read_csv(sequential / "looks.csv").groupby("contrast", sort=False).tail(1).set_index("contrast")
    fixed = _contrasts(sequential).set_index("contrast")
    answer, controls = _section(text, "The confirmatory answer"), _section(text, "Controls")
    for name, r in looks.iterrows():
        line = _line(answer if r["role"] == "confirmatory" else controls, name)
        assert (
            f"ratio ({fixed.loc[name, 'level']} / {fixed.loc[name, 'level_ref']}) {fmt(r['ratio'])} (adjusted interval "
            f"{fmt(r['rci_low'])}–{fmt(r['rci_high'])}, the repeated CI; at look {r['look']}, {r['seeds']} seeds"
        ) in line
        primary = line.split(" Secondary ")[0]
        assert (
            fmt(fixed.loc[name, "ratio_ci_low"]) + "–" not in primary and "Holm p" not in line and "Power" not in line
        )
    n_controls = (looks["role"] == "control").sum()
    n_equivalent = (looks["decision"] == "equivalent").sum()
    assert f"- {n_equivalent} of {n_controls} controls are **equivalent** within ±10%, each judged on its adjusted" in (
        controls
    )
    assert "**open** (no verdict yet: it goes on to the next look)" in _line(controls, looks.index[-1])


def test_a_fixed_seed_study_has_no_looks_section(tables, tmp_path):
    text = _findings(tables, tmp_path)
    assert "Seeds and looks" not in text and "adjusted interval" not in text and "repeated CI" not in text
