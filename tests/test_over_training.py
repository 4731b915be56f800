"""analysis/over_training.py: the trend of a contrast over the checkpoints."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from ganablate.analysis import aggregate, tables
from tests.synthetic_runs import make_runs, study_config


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
