"""A sequential study's looks: the declaration refused or frozen, and the interim analysis's decisions on runs whose
per-seed contrasts are known (analysis/looks.py). The statistics themselves: tests/test_sequential.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ganablate.analysis import looks
from ganablate.errors import ConfigError
from ganablate.study.config import load_config, validate_config
from ganablate.study.plan import Plan
from tests.conftest import REPO
from tests.synthetic_runs import runs_table
from tests.test_catalog import run_in_copy, with_guide_entry

FEEDS = ["split", "joint", "joint_consistent"]
BATCH, NONE = "batch", "none"


def sequential_config(seeds=None, **stats) -> dict:
    stats = {
        "confirmatory": [
            {"compare": {"feed": "joint"}, "against": {"feed": "split"}, "within": {"norm": BATCH}},
            {"compare": {"feed": "joint_consistent"}, "against": {"feed": "split"}, "within": {"norm": BATCH}},
        ],
        "controls": [{"compare": {"feed": "joint"}, "against": {"feed": "split"}, "within": {"norm": NONE}}],
        "sequential": {"calibration_paths": 100_000},
    } | stats
    return validate_config(
        {
            "study": {
                "seeds": seeds or {"first": 4, "block": 4, "cap": 12},
                "axes": {"feed": {"levels": FEEDS, "reference": "split"}, "norm": {"levels": [NONE, BATCH, "layer"]}},
            },
            "train": {"steps": 500, "checkpoints": []},
            "stats": stats,
        }
    )


def runs_of(effects: dict, seeds: int = 12, sd: float = 0.03, seed: int = 0, diverged=frozenset()):
    """runs.csv at the final step: every cell's FID 100 x exp(a seed's shared draw + the cell's effect + noise)."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(0, 0.1, seeds)
    cells = [(feed, norm) for feed in FEEDS for norm in (NONE, BATCH, "layer")]
    values = {cell: list(100 * np.exp(shared + effects.get(cell, 0.0) + rng.normal(0, sd, seeds))) for cell in cells}
    return runs_table(values, step=500, diverged=diverged)


def decide(plan: Plan, runs, until: int | None = None) -> list[dict]:
    """Every look's decision, as the workflow takes them: each one's JSON read back by the next."""
    boundaries, decisions, previous = looks.frozen_boundaries(plan), [], None
    for look in range(len(plan.looks.counts)):
        previous = json.loads(json.dumps(looks.interim(plan, boundaries, runs, look, previous)))
        decisions.append(previous)
        if previous["stop"] or look == until:
            break
    return decisions


def rows(decision: dict) -> dict:
    return {r["contrast"]: r for r in decision["rows"]}


JOINT_BATCH = "feed: joint vs split | norm=batch"
CONSISTENT_BATCH = "feed: joint_consistent vs split | norm=batch"
JOINT_NONE = "feed: joint vs split | norm=none"


def test_a_large_effect_is_decided_at_the_first_look_and_its_cells_stop_when_nothing_else_needs_them():
    plan = Plan.from_config(sequential_config())
    decisions = decide(plan, runs_of({("joint", BATCH): 1.2, ("joint_consistent", BATCH): 0.4}))
    first = rows(decisions[0])
    assert first[JOINT_BATCH]["verdict"] == "worse" and first[JOINT_BATCH]["look"] == 0
    assert first[CONSISTENT_BATCH]["verdict"] == "worse"
    # Only the control is open: its two cells run the next block, and nothing else does (layer is in no declared
    # contrast: it ran the first block only).
    assert sorted(map(tuple, decisions[0]["active_cells"])) == [("joint", NONE), ("split", NONE)]


def test_a_control_whose_arms_agree_is_decided_equivalent_and_the_study_stops():
    plan = Plan.from_config(sequential_config())
    last = decide(plan, runs_of({("joint", BATCH): 1.2, ("joint_consistent", BATCH): 0.4}))[-1]
    assert rows(last)[JOINT_NONE]["verdict"] == "equivalent" and rows(last)[JOINT_NONE]["test"] == "equivalence"
    assert last["stop"] and last["active_cells"] == []


def test_a_member_rejected_at_a_raised_holm_level_quotes_its_interval_at_that_level():
    # joint is rejected at Holm's first level; joint_consistent's t lies between the first and the raised boundary
    plan = Plan.from_config(sequential_config())
    decision = decide(plan, runs_of({("joint", BATCH): 1.2, ("joint_consistent", BATCH): 0.031}))[0]
    member = rows(decision)[CONSISTENT_BATCH]
    raised = looks.frozen_boundaries(plan)[looks._key(plan.alpha / 2 / 1)][0]
    assert member["verdict"] == "worse" and member["holm_step"] == 1 and member["boundary"] == raised
    assert 1 < member["rci_low"] < member["ratio"] < member["rci_high"]  # it excludes 1, beside its verdict


def test_a_small_difference_stops_as_no_material_difference_inside_the_margin():
    plan = Plan.from_config(sequential_config())
    last = decide(plan, runs_of({("joint", BATCH): 1.2, ("joint_consistent", BATCH): 0.0}, sd=0.02, seed=1))[-1]
    assert rows(last)[CONSISTENT_BATCH]["verdict"] == "no material difference"
    low, high = rows(last)[CONSISTENT_BATCH]["rci_low"], rows(last)[CONSISTENT_BATCH]["rci_high"]
    assert 1 / 1.1 < low < 1 < high < 1.1  # the adjusted interval lies inside the margin


def test_a_row_undecided_at_the_cap_is_inconclusive():
    plan = Plan.from_config(sequential_config())
    # joint_consistent 10% worse, on the margin, with a wide spread: no look can tell.
    last = decide(plan, runs_of({("joint", BATCH): 1.2, ("joint_consistent", BATCH): 0.095}, sd=0.3))[-1]
    assert last["stop"] and last["seeds"] == 12
    assert rows(last)[CONSISTENT_BATCH]["verdict"] == "inconclusive"


def test_a_row_with_a_failed_run_is_not_decided_by_its_survivors_and_runs_to_the_cap():
    plan = Plan.from_config(sequential_config())
    runs = runs_of({("joint", BATCH): 1.2, ("joint_consistent", BATCH): 0.4}, diverged={(("joint", NONE), 1)})
    decisions = decide(plan, runs)
    assert [d["stop"] for d in decisions] == [False, False, True]
    row = rows(decisions[-1])[JOINT_NONE]
    assert row["verdict"] == "inconclusive" and row["n_failed"] == 1 and "failure rule" in row["note"]


def test_bitwise_equal_arms_are_identical_at_the_first_look():
    plan = Plan.from_config(sequential_config())
    runs = runs_of({("joint", BATCH): 1.2, ("joint_consistent", BATCH): 0.4})
    same = runs[(runs["feed"] == "split") & (runs["norm"] == NONE)]["value"].to_numpy()
    runs.loc[(runs["feed"] == "joint") & (runs["norm"] == NONE), "value"] = same
    first = rows(decide(plan, runs)[0])
    assert first[JOINT_NONE]["verdict"] == "identical" and first[JOINT_NONE]["look"] == 0


def test_the_looks_table_has_every_row_at_every_look_it_was_read():
    plan = Plan.from_config(sequential_config())
    last = decide(plan, runs_of({("joint", BATCH): 1.2, ("joint_consistent", BATCH): 0.0}, sd=0.02, seed=1))[-1]
    table = looks._looks_table(type("E", (), {"decision": last})())
    assert list(table.columns) == looks.COLUMNS
    assert set(table["decision"]) <= {"worse", "no material difference", "equivalent", looks.OPEN}
    decided = table[table["decision"] != looks.OPEN]
    assert sorted(decided["contrast"]) == sorted([JOINT_BATCH, CONSISTENT_BATCH, JOINT_NONE])  # each decided once


def test_the_same_plan_freezes_the_same_boundaries():
    plan = Plan.from_config(sequential_config())
    assert looks.frozen_boundaries(plan) == looks.frozen_boundaries(Plan.from_config(sequential_config()))


def test_a_fixed_seed_count_keeps_its_plan():
    fixed = Plan.from_config(sequential_config(seeds=12))
    assert fixed.looks is None and "looks" not in fixed.record


@pytest.mark.parametrize(
    ("seeds", "stats", "message"),
    [
        ({"first": 8, "block": 4, "cap": 4}, {}, "study.seeds.cap: 4 is below first (8)"),
        ({"first": 4, "block": 0, "cap": 32}, {}, "study.seeds.block: 0 is less than the minimum of 1"),
        ({"first": 4, "block": 4, "cap": 30}, {}, "study.seeds.cap: 30 is not first + a whole number of blocks"),
        ({"first": 1, "block": 4, "cap": 33}, {}, "study.seeds.first: 1 is less than the minimum of 2"),
        (None, {"sequential": {"spending": "linear"}}, "stats.sequential.spending: 'linear' is not one of"),
        (None, {"test": "wilcoxon"}, "stats.test: wilcoxon with study.seeds as looks"),
        (None, {"confirmatory": [], "controls": []}, "study.seeds: looks, but no declared contrast to decide"),
    ],
)
def test_a_bad_sequential_declaration_is_refused_in_one_line_naming_the_key(seeds, stats, message):
    with pytest.raises(ConfigError) as error:
        sequential_config(seeds=seeds, **stats)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_looks_that_cannot_reach_a_verdict_are_refused_in_one_line_naming_the_key():
    # O'Brien-Fleming spends about 2e-12 of the family's first level (alpha / 4 a side) at 4 of 32 seeds
    plan = Plan.from_config(
        sequential_config(seeds={"first": 4, "block": 4, "cap": 32}, sequential={"spending": "obrien-fleming"})
    )
    for check in (looks.check_reachable, looks.frozen_boundaries):
        with pytest.raises(ConfigError) as error:
            check(plan)
        assert str(error.value).startswith("study.seeds: the look at 4 seeds cannot reach a verdict: obrien-fleming")
        assert "\n" not in str(error.value)
    looks.check_reachable(Plan.from_config(load_config(REPO / "config/config.yaml")))  # the default study's looks


SPENDING_CHECK = """
import json, sys
from ganablate import catalog
from ganablate.analysis import looks
from ganablate.study.plan import Plan
sys.path.insert(0, sys.argv[1])
from test_looks import sequential_config

plan = Plan.from_config(sequential_config(sequential={"spending": "power", "calibration_paths": 20000}))
print(json.dumps(looks.frozen_boundaries(plan)))
"""


def test_a_new_spending_function_is_one_call_in_analysis_sequential(tmp_path):
    name, _ = with_guide_entry("spending", tmp_path)
    here = Path(__file__).parent
    boundaries = run_in_copy(tmp_path, SPENDING_CHECK, str(here), path=[here.parent])
    assert name == "power" and boundaries
    # spending alpha t^3 leaves almost nothing to the first look: its boundary is far above the last one's
    assert all(c[0] > 2 * c[-1] for c in boundaries.values())
