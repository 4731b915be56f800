"""benchmarks/sequential.py, the sequential plan's operating characteristics, runs to its end at the smallest sizes
(`--smoke`) and writes one row per design, role, ratio and SD whose probabilities are probabilities."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def test_the_sequential_benchmark_writes_its_operating_characteristics(tmp_path):
    command = [sys.executable, str(REPO / "benchmarks/sequential.py"), "--smoke", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    (table,) = tmp_path.glob("sequential-*.csv")
    frame = pd.read_csv(table)
    verdicts = ["better", "worse", "no_material_difference", "equivalent", "not_equivalent", "non_inferior"]
    verdicts += ["inferior", "inconclusive"]
    assert list(frame.columns) == [
        *("design", "role", "ratio", "sd", "paths"),
        *(f"p_{word}" for word in verdicts),
        *("p_conclusive", "mean_seeds", "p90_seeds"),
    ]
    assert set(frame["design"]) == {"sequential 4+4..32", "fixed 13", "fixed 32"}
    assert set(frame["role"]) == {"difference", "equivalence", "noninferiority"}
    probabilities = frame.filter(like="p_")
    assert probabilities.ge(0).all().all() and probabilities.le(1).all().all()
    assert frame[[f"p_{word}" for word in verdicts]].sum(axis=1).round(9).eq(1).all()  # one verdict per study
    assert frame["mean_seeds"].between(4, 32).all()
