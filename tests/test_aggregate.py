"""analysis/aggregate.py: runs.csv from the run folders, one row per run, step, extractor and metric, each run's
cell read from its summary and its labels kept as labels; mixed or incomplete inputs refused."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from ganablate.analysis import aggregate, tables
from ganablate.errors import UsageError
from tests.synthetic_runs import make_runs, study_config


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
