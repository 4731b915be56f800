"""analysis/tables.py, `ganablate stats`: every registered table written, byte-identically twice; the plan's hash
checked against the runs'; a missing input one line."""

from __future__ import annotations

import json

import pytest

from ganablate import cli
from ganablate.analysis import aggregate, tables
from ganablate.study.outputs import TABLES
from ganablate.study.plan import plan_hash, plan_of
from tests.synthetic_runs import feed_norm_study, make_runs


@pytest.fixture
def config():
    return feed_norm_study()


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
    _study(tmp_path, config, plan_hash=plan_hash(plan_of(config)))
    plan = json.loads((tmp_path / "tables/plan.json").read_text())
    assert plan["plan_changed_after_launch"] is False and plan["launch_hashes"] == [plan["hash"]]
    changed = feed_norm_study(equivalence_margin=0.05)
    tables.write_stats(changed, tmp_path / "tables")
    plan = json.loads((tmp_path / "tables/plan.json").read_text())
    assert plan["plan_changed_after_launch"] is True and plan["launch_hashes"] != [plan["hash"]]


def test_cli_stats_reports_a_missing_runs_table_in_one_line_with_exit_2(tmp_path, capsys):
    assert cli.main(["stats", "--tables", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "runs.csv not found" in err[0]
