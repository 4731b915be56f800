"""analysis/mechanism.py: the share of the broken level's harm that the repaired level recovers, on the log and
the raw scale, with its roles read from the config."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ganablate.analysis import mechanism
from ganablate.study.plan import Plan
from tests.synthetic_runs import CONSISTENT, JOINT, SPLIT, runs_table, study_config


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
