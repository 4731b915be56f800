"""`ganablate stats`: the plan checked against the one the runs were launched under, then every table of
outputs.TABLES built, noted and written (.csv at full precision, .md and .tex at 4 significant digits)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ganablate.analysis import aggregate, cells, contrasts, factorial, mechanism, over_training, power, remedies
from ganablate.catalog import compared_metrics
from ganablate.files import atomic_write_text
from ganablate.study import outputs
from ganablate.study.plan import DIVERGED_RULE, Plan


@dataclass
class Evidence:
    """What every table is built from: the plan, and the aggregated runs and training logs."""

    plan: Plan
    runs: pd.DataFrame
    logs: pd.DataFrame

    @classmethod
    def load(cls, plan: Plan, tables: str | Path) -> Evidence:
        names = plan.design.names
        runs = aggregate.load_runs(tables, names)
        logs = aggregate.read_table(tables, "train_logs", names, hint="run `ganablate aggregate` first")
        return cls(plan, runs, logs)


def _notes(plan: Plan) -> dict[str, str]:
    cfg = plan.stats
    level, step = f"{plan.level:.0%}", plan.final_step
    directions = ", ".join(f"{m}: {b} is better" for m, b in compared_metrics().items())
    margin = f"±{cfg['equivalence_margin']:.0%}"
    notes = {
        "summary": f"Per cell, step, extractor and metric over the usable runs (n; n_failed left out). {level} "
        f"intervals: Student t for the mean and (on the log scale) the geometric mean, order statistics "
        f"(distribution-free) for the median, bootstrap (BCa, percentile where undefined; approximate at "
        f"small n) for the IQM.",
        "contrasts": f"Every contrast, paired by seed: the per-seed linear contrast of the log metric over cells "
        f"(simple: level / level_ref within a cell, or of two cells that differ on the axes in `axis`, "
        f"comma-joined; interaction: that ratio at by_level over at "
        f"by_level_ref; trend: per doubling of by_axis's value), tested over seeds ({cfg['test']}); "
        f"{directions}. ratio with its {level} t CI; p unadjusted; p_holm over the confirmatory family "
        f"(role confirmatory); p_equivalence: paired TOST within {margin} (a declared test: equivalence or "
        f"noninferiority, its own test within its margin: the contrast's name says which), with its "
        f"{1 - 2 * plan.alpha:.0%} CI (equivalence_ci_*); equivalence_bound: the smallest margin that "
        f"CI meets; a declared test's verdict rests on its p, Holm-adjusted (p_holm) in the confirmatory "
        f"family; p_failures: exact McNemar of the two arms' failures. '*': the axis the contrast spans. "
        f"Roles: confirmatory (the declared family), control (every other simple effect at the primary "
        f"metric and final step), exploratory (the rest). {DIVERGED_RULE}.",
        "mixed": f"Exploratory sensitivity analysis: linear mixed model (REML) of log {cfg['primary_metric']} at step "
        f"{step}, formula from the axes (sum contrasts), random intercept per seed and a variance component "
        f"per seed x axis for axes whose levels do not share a seed's streams; Wald chi2 per term (liberal "
        f"at few seeds).",
        "failures": f"Failure rule: {DIVERGED_RULE}; with stats.failure_threshold {cfg['failure_threshold']}, a run "
        f"beyond it at the final step also fails. Wilson {level} CI per cell.",
        "power": f"Simulated power ({cfg['power_simulations']} studies, seed {cfg['seed']}) of the rule each "
        f"confirmatory and control contrast is judged by, at the SD over seeds of its own per-seed contrast; "
        f"seeds_needed for {plan.record['power_target']:.0%} power (NA: more than {cfg['max_seeds']}).",
        "context_gap": "Per cell: median over runs of each run's mean context gap (logits) and D accuracy over the "
        "second half of training.",
        "mechanism": f"stats.mechanism within every cell of the other axes: recovered = 1 - mean log(repaired/"
        f"reference) / mean log(broken/reference) over seeds (log scale), recovered_raw the same on the "
        f"raw metric, Fieller {level} CIs; gap_slope (final step {step} only, exploratory): OLS log "
        f"metric ~ context gap + level, per logit of gap, unadjusted p.",
        "remedies": f"stats.remedies, per remedy R (a level of its axis other than the reference) within every cell "
        f"of the other axes, at {cfg['primary_metric']}, the primary extractor and step {step}: fix = broken+R / "
        f"working+reference, in_broken and in_working = R / reference within that feed level, each the ratio, "
        f"{level} CI, role and verdict of its row in contrasts.csv (contrast: which), never recomputed, NaN where "
        f"no contrast makes it (note); cost_ratio: median training seconds per step (summary.json's wall_seconds / "
        f"steps, a stack's time shared by its seeds) of R's completed runs under working and broken over the "
        f"reference's; use: the registry's one line on R.",
        "trend": f"Exploratory: per simple contrast of {cfg['primary_metric']}, ratio_first/ratio_last (geometric "
        f"means over seeds at the first and last checkpoint) and the mean over seeds of each seed's OLS "
        f"slope of the log ratio per 1000 steps, t {level} CI, unadjusted p.",
    }
    tail = f" [analysis plan {plan.hash}]"
    return {name: note + tail for name, note in notes.items()}


def build(evidence: Evidence) -> dict[str, pd.DataFrame]:
    plan, runs = evidence.plan, evidence.runs
    design = plan.design
    found, _, _ = contrasts.contrasts_of(plan)
    table = contrasts.contrasts_table(runs, plan, cells.failed_rows(runs, plan))
    table = (
        cells.ordered(table, design, ["kind", *design.names, "step", "extractor", "metric"]) if len(table) else table
    )
    final = runs[cells.usable(runs) & cells.at_primary(runs, plan)]
    values = contrasts.as_cells(contrasts.wide(final, design.names, "value"), design.names)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(values.where(values > 0))
    built = {
        "summary": cells.summary_table(runs, plan),
        "contrasts": table,
        "trend": over_training.trend_table(runs, found, plan),
        "mechanism": mechanism.mechanism_table(runs, evidence.logs, plan),
        "remedies": remedies.remedies_table(table, found, runs, plan),
        "mixed": factorial.mixed_table(runs, plan),
        "failures": cells.failures_table(runs, plan),
        "power": power.power_table(table, {c.name: c for c in found}, logs, plan),
        "context_gap": cells.context_table(evidence.logs, design),
    }
    assert list(built) == list(outputs.TABLES)  # one registry of names: outputs.py
    return built


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


def write_stats(config: dict, tables: str | Path) -> list[Path]:
    tables = Path(tables)
    evidence = Evidence.load(Plan.from_config(config), tables)
    check = launch_check(evidence)
    if check["plan_changed_after_launch"]:
        print(
            f"plan changed after launch: runs trained under {', '.join(check['launch_hashes'])}, "
            f"the plan is now {check['hash']}"
        )
    notes = _notes(evidence.plan)
    paths = [p for name, table in build(evidence).items() for p in write_table(table, tables, name, notes[name])]
    atomic_write_text(tables / "plan.json", json.dumps(check | evidence.plan.record, indent=2) + "\n")
    return [*paths, tables / "plan.json"]
