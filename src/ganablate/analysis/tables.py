"""`ganablate stats`: the plan checked against the one the runs were launched under, then every registered table
built, noted and written (.csv at full precision, .md and .tex at 4 significant digits).

A table is one register_table call beside its builder (analysis/evidence.py); catalog.py finds those calls without
importing anything, and this module imports the modules it names, so a new table's module is all it takes."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pandas as pd

from ganablate import catalog
from ganablate.analysis.evidence import TABLES, Evidence, Table
from ganablate.files import atomic_write_text
from ganablate.study.plan import Plan


def registered() -> dict[str, Table]:
    """Every table catalog.py finds a register_table call of, in its order: their modules imported, which registers
    them."""
    found = catalog.entries("tables")
    for module in dict.fromkeys(entry.module for entry in found.values()):
        importlib.import_module(module)
    return {name: TABLES[name] for name in found}


def build(evidence: Evidence) -> dict[str, pd.DataFrame]:
    return {name: evidence.table(name) for name in registered()}


def write_table(table: pd.DataFrame, out_dir: Path, name: str, note: str) -> list[Path]:
    """name.csv (full precision), name.md and name.tex (4 significant digits, with the note); each written whole or
    not at all (files.atomic_write_text), so that a failed write never leaves half a table for figures to draw."""
    paths = [out_dir / f"{name}.{ext}" for ext in ("csv", "md", "tex")]
    atomic_write_text(paths[0], table.to_csv(index=False))
    shown = table.astype(object).where(table.notna(), None)  # one missing marker for NaN and pd.NA alike
    atomic_write_text(paths[1], f"{note}\n\n{shown.to_markdown(index=False, floatfmt='.4g', missingval='NA')}\n")
    latex = table.to_latex(index=False, float_format="%.4g", na_rep="--", escape=True, longtable=len(table) > 40)
    atomic_write_text(paths[2], f"% {note}\n{latex}")
    return paths


def launch_check(evidence: Evidence) -> dict:
    """The plan's hash now, the hashes the runs were trained under, and whether the plan changed after launch."""
    now, runs = evidence.plan.hash, evidence.runs
    launched = sorted({str(h) for h in runs["plan_hash"].dropna().unique()})
    return {
        "hash": now,
        "launch_hashes": launched,
        "plan_changed_after_launch": any(h != now for h in launched),
        "runs_without_plan": int(runs.drop_duplicates([*evidence.plan.design.names, "seed"])["plan_hash"].isna().sum()),
    }


def write_stats(config: dict, tables: str | Path, decision: dict | None = None) -> list[Path]:
    """Every registered table into `tables`; decision: a sequential study's last (analysis/looks.py)."""
    tables = Path(tables)
    evidence = Evidence.load(Plan.from_config(config), tables, decision)
    check = launch_check(evidence)
    if check["plan_changed_after_launch"]:
        print(
            f"plan changed after launch: runs trained under {', '.join(check['launch_hashes'])}, "
            f"the plan is now {check['hash']}"
        )
    tail = f" [analysis plan {evidence.plan.hash}]"
    notes = {name: table.note(evidence.plan) + tail for name, table in registered().items()}
    paths = [p for name, table in build(evidence).items() for p in write_table(table, tables, name, notes[name])]
    atomic_write_text(tables / "plan.json", json.dumps(check | evidence.plan.record, indent=2) + "\n")
    return [*paths, tables / "plan.json"]
