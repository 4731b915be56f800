"""remedies.csv: the practitioner's table that stats.remedies declares, one row per remedy.

On stats.remedies' `axis`, every level R other than `reference` is a remedy for a feed axis's `broken` level (the
reference level works under `working` and fails under `broken`). Per R, within every cell of the other axes, at the
primary metric, extractor and final step:
- fix: broken+R against working+reference, the question a practitioner asks (does the remedy make the broken feed
  train like the working one?); the reference's cell at the other axes' references where the study ran it only
  there (an axis of a remedy's own setting, such as ghost's chunk);
- in_broken, in_working: R against the reference within broken and within working;
- cost: the median training seconds per step of R's runs over the reference's, under the feeds where R's runs ran.
The three comparisons are rows of contrasts.csv, found by the cells they weigh (+1 on one cell, -1 on the other)
and joined on their id and cell, never recomputed: their id, ratio, CI and verdict, and each arm's level
(gmean_level: broken+R's or R's, gmean_level_ref: the other cell's, geometric means over the paired seeds); a
comparison no contrast makes is NaN, its note saying so.
`use` is the registry's one-line use of R (its registry entry's `use`), where the axis's levels are a registry's.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
import pandas as pd

from ganablate import catalog
from ganablate.analysis.cells import ordered
from ganablate.analysis.contrasts import contrasts_of
from ganablate.analysis.evidence import register_table
from ganablate.study.design import SPANNED, Design, label_of
from ganablate.study.plan import Plan

COMPARISONS = ("fix", "in_broken", "in_working")
# gmean_level*: each arm's level beside the ratio, so that two remedies that both failed do not read as a ratio of 1
FROM_CONTRASTS = (
    "id",
    "contrast",
    "role",
    "ratio",
    "ratio_ci_low",
    "ratio_ci_high",
    "gmean_level",
    "gmean_level_ref",
    "verdict",
)
TAIL = [
    "step",
    "metric",
    "extractor",
    "axis",
    "feed_axis",
    "reference",
    "working",
    "broken",
    *(f"{c}_{k.removeprefix('ratio_')}" for c in COMPARISONS for k in FROM_CONTRASTS),
    "seconds_per_step",
    "reference_seconds_per_step",
    "cost_ratio",
    "n_timed",
    "n_timed_reference",
    "use",
    "note",
]


def weights(c) -> dict[tuple[str, ...], float]:
    """A contrast's weight on each cell of the per-seed log metric (contrasts.Contrast's parts and coef)."""
    w: dict[tuple[str, ...], float] = defaultdict(float)
    for k, part in zip(c.coef, c.parts, strict=True):
        for cell, x in part:
            w[cell] += k * x
    return {cell: x for cell, x in w.items() if abs(x) > 1e-12}


def _row(contrasts: pd.DataFrame, found: list, compare: tuple, against: tuple, at: dict) -> pd.Series | None:
    """The primary row of the first contrast that is log compare - log against (contrasts_of lists the confirmatory
    ones first, then the other declared ones, then the automatic ones)."""
    for c in found:
        w = weights(c)
        if w.keys() == {compare, against} and math.isclose(w[compare], 1) and math.isclose(w[against], -1):
            row = _row_of(contrasts, c, at)
            if row is not None:
                return row
    return None


def _row_of(contrasts: pd.DataFrame, c, at: dict) -> pd.Series | None:
    """contrasts.csv's row of contrast c at the primary metric, extractor and final step."""
    keep = (contrasts["id"] == c.spec.id) & np.logical_and.reduce(
        [contrasts[k] == v for k, v in [*c.cell, *at.items()]]
    )
    hit = contrasts[keep]
    return None if hit.empty else hit.iloc[0]


def seconds_per_step(runs: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """One row per completed run: its training seconds per step (a stack's loop time shared by its seeds)."""
    each = runs.drop_duplicates([*names, "seed"])
    each = each[each["status"] == "completed"]
    per_step = each["wall_seconds"].astype(float) / each["steps_done"].astype(float) / each["stack_size"].astype(float)
    return each[names].assign(seconds_per_step=per_step.to_numpy())


def remedies_table(contrasts: pd.DataFrame, found: list, runs: pd.DataFrame, plan: Plan):
    """contrasts: the contrasts table (contrasts.csv's rows); found: its contrasts (contrasts.contrasts_of)."""
    design, spec = plan.design, plan.remedies
    names = design.names
    columns = [*names, *TAIL]
    if spec is None:
        return pd.DataFrame(columns=columns)
    axis, feed_axis = design.axis(spec["axis"]), design.axis(spec["feed_axis"])
    reference, working, broken = (label_of(spec[k]) for k in ("reference", "working", "broken"))
    metric, extractor, step = plan.primary
    at = {"step": step, "extractor": extractor, "metric": metric}
    run = set(design.cells)
    timed = seconds_per_step(runs, names)
    timed = timed[timed[feed_axis.name].isin([working, broken]) & np.isfinite(timed["seconds_per_step"])]
    uses = catalog.uses(axis.registry) if axis.registry else {}
    others = [a for a in design.axes if a not in (axis, feed_axis)]
    rows = []
    for labels in itertools.product(*(a.labels for a in others)):
        where = dict(zip((a.name for a in others), labels))
        for remedy in (lab for lab in axis.labels if lab != reference):
            if tuple({**where, axis.name: remedy, feed_axis.name: broken}[n] for n in names) not in run:
                continue  # a remedy run at other levels of the other axes only
            row = dict.fromkeys(columns, math.nan) | where | {axis.name: remedy, feed_axis.name: SPANNED}
            row |= at | {"axis": axis.name, "feed_axis": feed_axis.name, "reference": reference, "working": working}
            row |= {"broken": broken, "use": uses.get(remedy, "")}
            notes = []

            def cell(feed: str, level: str, where=where) -> tuple[str, ...]:
                """The cell of feed and level at `where`; for the reference level, where that cell was not run, at
                the other axes' references: an axis of the remedies' own settings (e.g. model.ghost_chunk) has
                levels the reference does not read, and the study runs it once."""
                at = {**where, axis.name: level, feed_axis.name: feed}
                if level == reference and tuple(at[n] for n in names) not in run:
                    at |= {a.name: a.reference for a in others}
                return tuple(at[n] for n in names)

            pairs = {
                "fix": (cell(broken, remedy), cell(working, reference)),
                "in_broken": (cell(broken, remedy), cell(broken, reference)),
                "in_working": (cell(working, remedy), cell(working, reference)),
            }
            for name, (compare, against) in pairs.items():
                what = f"{name}: {_text(design, compare)} against {_text(design, against)}"
                if not {compare, against} <= run:
                    notes.append(f"{what}: not run")
                    continue
                r = _row(contrasts, found, compare, against, at)
                if r is None:
                    notes.append(f"{what}: no contrast of these two cells in contrasts.csv")
                    continue
                for k in FROM_CONTRASTS:
                    row[f"{name}_{k.removeprefix('ratio_')}"] = r[k]
            # the reference's runs where the fix pairs them: at `where`, or at the other axes' references
            at_reference = dict(zip(names, cell(working, reference)))
            at_reference = {a.name: at_reference[a.name] for a in others}
            _cost(row, timed, (where, at_reference), axis.name, (remedy, reference), feed_axis.name, notes)
            row["note"] = "; ".join(notes)
            rows.append(row)
    table = pd.DataFrame(rows, columns=columns)
    return ordered(table, design, [*(a.name for a in others), axis.name]) if len(table) else table


def _note(plan: Plan) -> str:
    confidence = f"{plan.confidence:.0%}"
    return (
        f"stats.remedies, per remedy R (a level of its axis other than the reference) within every cell of the other "
        f"axes, at {plan.metric}, the primary extractor and step {plan.final_step}: fix = broken+R / "
        f"working+reference, in_broken and in_working = R / reference within that feed level, each the ratio, "
        f"{confidence} CI, role and verdict of its row in contrasts.csv (contrast: which), never recomputed, NaN "
        f"where no contrast makes it (note); cost_ratio: median training seconds per step (summary.json's "
        f"wall_seconds / steps, a stack's time shared by its seeds) of R's completed runs under working and broken "
        f"over the reference's; use: the registry's one line on R."
    )


register_table(
    "remedies",
    category="tables",
    build=lambda evidence: remedies_table(
        evidence.table("contrasts"), contrasts_of(evidence.plan)[0], evidence.runs, evidence.plan
    ),
    note=_note,
)


def _cost(
    row: dict, timed: pd.DataFrame, wheres: tuple[dict, dict], axis: str, levels: tuple[str, str], feed: str, notes
) -> None:
    """R's median training seconds per step over the reference's, each at its own cells of the other axes (wheres),
    under the feeds where R's runs were timed: like against like where a study runs R under the broken feed only."""
    (remedy, reference), medians = levels, []
    feeds = None
    for level, where in zip(levels, wheres):
        here = timed[np.logical_and.reduce([timed[k] == v for k, v in where.items()])] if where else timed
        here = here[here[axis] == level]
        feeds = set(here[feed]) if feeds is None else feeds
        seconds = here.loc[here[feed].isin(feeds), "seconds_per_step"]
        medians.append((len(seconds), float(seconds.median()) if len(seconds) else math.nan))
    (row["n_timed"], row["seconds_per_step"]), (row["n_timed_reference"], row["reference_seconds_per_step"]) = medians
    if row["reference_seconds_per_step"] > 0 and np.isfinite(row["seconds_per_step"]):
        row["cost_ratio"] = row["seconds_per_step"] / row["reference_seconds_per_step"]
    else:
        notes.append(f"cost: no completed run of {remedy} or of {reference} with its wall_seconds in runs.csv")


def _text(design: Design, cell: tuple[str, ...]) -> str:
    return ", ".join(f"{n}={lab}" for n, lab in zip(design.names, cell))
