"""The tables of a study and their plan.json (and its run folders, for the sample grids), as the report side
(figures, findings) reads them.

Axes, levels, their order and the final step come from plan.json, which `ganablate stats` wrote with the tables:
the figures and the page then agree with the statistics whatever the config says now.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ganablate.analysis.aggregate import read_table
from ganablate.catalog import entries
from ganablate.errors import UsageError
from ganablate.study.design import SPANNED, Design
from ganablate.study.plan import read_plan


class StudyView:
    """plan.json and the tables beside it: one view of a study for its figures and its findings page."""

    def __init__(self, tables: str | Path, runs_root: str | Path | None = None):
        self.folder = Path(tables)
        self.runs_root = None if runs_root is None else Path(runs_root)  # the run folders, where the samples are
        path = self.folder / "plan.json"
        if not path.is_file():
            raise UsageError(f"--tables: {path} not found (run `ganablate stats` first)")
        self.plan = read_plan(path, "--tables")
        self.design = Design.from_dict(self.plan)
        self.axes = list(self.design.axes)
        self.names = self.design.names
        self.metric, self.extractor = self.plan["primary_metric"], self.plan["extractor"]
        self.step = int(self.plan["final_step"])
        self.level = f"{self.plan['confidence_level']:.0%}"

    @property
    def metric_name(self) -> str:
        return entries("metrics")[self.metric]["label"]

    @property
    def better(self) -> str:
        return entries("metrics")[self.metric].get("better")

    def table(self, name: str) -> pd.DataFrame:
        """name.csv of the tables folder: runs.csv as `ganablate aggregate` wrote it, the others `ganablate stats`'."""
        hint = f"run `ganablate {'aggregate' if name == 'runs' else 'stats'}` first"
        return read_table(self.folder, name, self.names, hint)

    def primary(self, table: pd.DataFrame, final: bool = True) -> pd.DataFrame:
        """Rows of the primary metric and extractor (at the final step unless final=False)."""
        keep = (table["metric"] == self.metric) & (table["extractor"] == self.extractor)
        if final:
            keep &= table["step"] == self.step
        return table[keep]

    def ordered(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows in the declared order of the axes' levels (a spanned axis, "*", first)."""

        def key(column: pd.Series) -> pd.Series:
            levels = self.design.axis(column.name).labels
            return column.map(lambda label: levels.index(label) if label in levels else -1)

        return frame.sort_values(self.names, key=key, kind="stable", ignore_index=True) if len(frame) else frame

    def cell_text(self, row: pd.Series, names: list[str] | None = None) -> str:
        """The labels of a row's cell, "axis = label, ...", leaving out the axes it spans."""
        names = self.names if names is None else names
        return ", ".join(f"{n} = {row[n]}" for n in names if row[n] != SPANNED)
