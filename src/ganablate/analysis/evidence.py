"""What every table is built from (Evidence), and the registry of tables.

A table is one `register_table` call beside its builder, in the analysis module of its concern: its name, its report
category (a literal, which catalog.py reads without importing pandas, so the workflow knows every table by name),
`build(evidence)` and `note(plan)`, the caption its .md and .tex open with. `ganablate stats` (tables.py) imports the
modules that catalog.py finds such calls in, and builds and writes every table registered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ganablate.analysis import aggregate
from ganablate.catalog import check_new
from ganablate.study.plan import Plan


@dataclass(frozen=True)
class Table:
    category: str  # the report's category: tables or diagnostics
    build: Callable[[Evidence], pd.DataFrame]
    note: Callable[[Plan], str]  # what the table holds and how each column is computed


TABLES: dict[str, Table] = {}


def register_table(name: str, *, category: str, build, note) -> Table:
    """Add a table under `name`; a name already taken is an error, not a replacement."""
    check_new("register_table", name, TABLES)
    if not (callable(build) and callable(note)):
        raise TypeError(
            f"register_table: {name!r}: build and note must be callables (Evidence) -> DataFrame and (Plan) -> str"
        )
    TABLES[name] = Table(category=category, build=build, note=note)
    return TABLES[name]


@dataclass
class Evidence:
    """The plan, and the aggregated runs and training logs; and each table once built, for a table made of another's
    rows (remedies and power read the contrasts table's)."""

    plan: Plan
    runs: pd.DataFrame
    logs: pd.DataFrame
    decision: dict | None = None  # a sequential study's last look (analysis/looks.py), None for a fixed one
    _built: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, plan: Plan, tables: str | Path, decision: dict | None = None) -> Evidence:
        names = plan.design.names
        runs = aggregate.load_runs(tables, names)
        logs = aggregate.read_table(tables, "train_logs", names, hint="run `ganablate aggregate` first")
        return cls(plan, runs, logs, decision)

    def table(self, name: str) -> pd.DataFrame:
        """The registered table `name`, built on its first call."""
        if name not in self._built:
            self._built[name] = TABLES[name].build(self)
        return self._built[name]
