"""benchmarks/run.py, which docs/performance.md is built on, runs to its end: every part that `--quick` runs on the
CPU (a, b, d, e, g), through the same code at the smallest sizes (`--smoke`), and g) over every registered norm
under both feeds. The domain extractor is given (`--extractor`, trained here on a small synthetic set) rather than
trained by a process of its own: `ganablate train-extractor` is tested elsewhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from ganablate import catalog
from ganablate.scoring.extractor import train_extractor
from tests.eval_fakes import small_config, synthetic_data

REPO = Path(__file__).resolve().parents[1]


def test_the_quick_benchmark_runs_every_part_and_every_registered_norm(tmp_path):
    synthetic_data().save(tmp_path / "data.pt")
    train_extractor(small_config(), tmp_path / "domain.pt", data_path=str(tmp_path / "data.pt"))
    command = [sys.executable, str(REPO / "benchmarks/run.py"), "--smoke", "--extractor", str(tmp_path / "domain.pt")]
    result = subprocess.run(
        [*command, "--out", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (table,) = tmp_path.glob("benchmark-*.csv")
    measured = pd.read_csv(table)["measurement"]
    assert set(measured.str[0]) == set("abdeg")  # --quick's parts on the CPU: all but c), the whole study
    for feed in ("split", "joint"):
        for norm in catalog.entries("norms"):
            assert measured.str.startswith(f"g) {feed}, {norm}: ").any(), f"g) has no row of {norm} under {feed}"
