"""analysis/remedies.py: remedies.csv, each remedy's ratios and verdicts copied from contrasts.csv (the fix joined
on its id) and its cost read from the runs' training seconds (run_times.csv, which aggregate writes for it);
stats.remedies' checks."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from ganablate.analysis import aggregate, cells, tables
from ganablate.components.norms import NORMS
from ganablate.errors import ConfigError
from ganablate.files import json_with_digest
from ganablate.study.plan import Plan
from tests.synthetic_runs import make_runs, study_config

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
        spec=SimpleNamespace(id="ghost-fixes-joint"),
        cell=(("feed", "*"), ("norm", "*")),
        parts=(((("joint", "ghost"), 1.0),), ((("split", "batch"), 1.0),)),
        coef=(1.0, -1.0),
    )
    made_up = {"ratio": 1.0123, "ratio_ci_low": 0.95, "ratio_ci_high": 1.07, "verdict": "equivalent"}
    row = table.iloc[0].to_dict() | {"id": both.spec.id, "contrast": both.name, "feed": "*", "norm": "*"}
    row |= {"role": "confirmatory"}
    row |= {"step": 500, "extractor": "domain", "metric": "fid"} | made_up
    table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
    out = remedies.remedies_table(table, [*found, both], runs, plan).set_index("norm")
    assert out.loc["ghost", "fix_id"] == both.spec.id  # joined on the id and the cell
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
    page = write_findings(tmp_path / "tables", tmp_path / "findings.md")[0].read_text()
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
