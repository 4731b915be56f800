"""A sequential study's interim analysis (`ganablate interim`) and its looks table.

At look k every declared row (the rows of contrasts.csv whose role is confirmatory or control) still open is read
at the n_k seeds its cells have run, against the boundaries the plan job froze in plan.json: its per-seed contrast's
mean, its repeated confidence interval (RCI) and its hypothesis's rule at a look (the `sequential` of its entry in
analysis/verdicts.py); Holm over the confirmatory family runs as a group-sequential procedure over every look so
far. A row whose rule gives a word is decided, its verdict and interval frozen; a cell runs the next block while an
open row needs it. The statistics are analysis/sequential.py's; this module only keeps the books.

A row with a failed run in its cells is not decided by its survivors: it stays open to the cap, where contrasts.csv's
failure rule judges it. A skewed or outlying per-seed contrast is tested, and noted.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ganablate.analysis import aggregate, cells, sequential
from ganablate.analysis.contrasts import (
    BETTER,
    CONFIRMATORY,
    CONTROL,
    as_cells,
    contrasts_of,
    margin_of,
    per_seed,
    wide,
)
from ganablate.analysis.evidence import Evidence, register_table
from ganablate.analysis.verdicts import HYPOTHESES
from ganablate.errors import ConfigError, UsageError
from ganablate.files import atomic_write_text, json_with_digest, read_json_digested
from ganablate.study.contrasts import CONTROL_TEST, DEFAULT_TEST
from ganablate.study.plan import Plan, read_plan
from ganablate.study.vocab import INCONCLUSIVE, NO_MATERIAL_DIFFERENCE

OPEN = "open"  # the looks table's word for a row that goes on to the next look


def _rows(plan: Plan) -> list[tuple]:
    """(contrast, role) of every row a sequential study decides, the family's first, in contrasts.csv's order."""
    found, confirmatory, controls = contrasts_of(plan)
    family = [(c, CONFIRMATORY) for c in found if c.key in confirmatory]
    return family + [(c, CONTROL) for c in found if c.key in controls]


def _level(plan: Plan, role: str, sides: int, m: int, step: int = 0) -> float:
    """The one-sided level of a boundary: Holm's step `step` in a family of m (step 0: Bonferroni), or a control's."""
    return plan.alpha / (sides * (m - step)) if role == CONFIRMATORY else plan.alpha / sides


def _key(level: float) -> str:
    return f"{level:.12g}"


def levels(plan: Plan) -> list[float]:
    """Every one-sided level whose boundaries the study reads."""
    rows = _rows(plan)
    m = sum(role == CONFIRMATORY for _, role in rows)
    found = set()
    for c, role in rows:
        sides = _rule(c, role).sides
        found |= {_level(plan, role, sides, m, step) for step in range(m if role == CONFIRMATORY else 1)}
    return sorted(found)


def _test(c, role: str) -> str:
    return CONTROL_TEST if role == CONTROL and c.spec.test == DEFAULT_TEST else c.spec.test


def _rule(c, role: str) -> sequential.Rule:
    """The row's rule at a look: its hypothesis's; a control that tests a difference asks for equivalence first, as
    contrasts.csv's verdict does (study/contrasts.CONTROL_TEST)."""
    rule = HYPOTHESES[_test(c, role)].sequential
    if rule is None:
        allowed = ", ".join(name for name, h in HYPOTHESES.items() if h.sequential)
        raise UsageError(f"stats: test {c.spec.test!r} cannot be judged at looks; allowed with looks: {allowed}")
    return rule


def check_reachable(plan: Plan) -> None:
    """Refuses looks that cannot reach a verdict: a look at which some declared rule's level spends less error than
    one calibration path (sequential.silent_looks) adds seeds that can decide nothing for that rule. The workflow
    checks it at launch, before any job; the plan job again."""
    looks, declared = plan.looks, plan.record["looks"]
    for level in levels(plan):
        paths = declared["calibration_paths"] or sequential.default_paths(level)
        silent = sequential.silent_looks(looks.counts, looks.cap, level, declared["spending"], declared["gamma"], paths)
        if silent:
            k, spends = next(iter(silent.items()))
            raise ConfigError(
                f"study.seeds: the look at {looks.counts[k]} seeds cannot reach a verdict: {declared['spending']} "
                f"spends {spends:.2g} of the one-sided level {level:.3g} there, less than one of {paths} calibration "
                f"paths; allowed: looks that each spend at least 1/{paths} (a later first look, fewer looks, "
                f"stats.sequential.spending hsd or pocock, or more calibration_paths)"
            )


def frozen_boundaries(plan: Plan) -> dict[str, list[float]]:
    """level -> the paired t's one-sided critical value at every planned look, calibrated by simulation (seeded):
    what plan.json freezes at launch, so that no later numpy can move a boundary."""
    check_reachable(plan)
    looks, declared = plan.looks, plan.record["looks"]
    return {
        _key(level): sequential.boundaries(
            looks.counts,
            looks.cap,
            level,
            declared["spending"],
            declared["gamma"],
            declared["calibration_paths"],
            declared["calibration_seed"],
        ).tolist()
        for level in levels(plan)
    }


def _logs(runs: pd.DataFrame, plan: Plan, seeds: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(log primary metric, failed) at the final step, seeds x cells over the first `seeds` seeds of the plan."""
    metric, extractor, step = plan.primary
    at = (runs["metric"] == metric) & (runs["extractor"] == extractor) & (runs["step"] == step)
    at &= runs["seed"].isin(plan.looks.seeds[:seeds])
    failed = cells.failed_rows(runs, plan)
    data = runs[at].assign(usable_value=runs["value"].where(~failed).astype(float), failed=failed.astype(float))
    names = plan.design.names
    values = as_cells(wide(data, names, "usable_value"), names)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(values.where(values > 0)), as_cells(wide(data, names, "failed"), names)


def _read(
    c,
    rule: sequential.Rule,
    row: dict,
    logs: pd.DataFrame,
    failed: pd.DataFrame,
    c_read: float,
    margin: float,
    better: str,
) -> dict:
    """The row at this look: its seeds, failures, estimate, interval and the statistic Holm reads."""
    d = per_seed(c, logs)[0] if set(c.cells) <= set(logs.columns) else np.array([])
    n_failed = int(failed.reindex(columns=c.cells).fillna(0).astype(bool).any(axis=1).sum())
    row = row | {"n": len(d), "n_failed": n_failed, "d": d.tolist(), "boundary": c_read}
    if len(d) < 2 or np.ptp(d) == 0 or n_failed:  # no t; with failed runs, none from the survivors (Holm: untested)
        return row | {
            "ratio": math.exp(d.mean()) if len(d) else math.nan,
            "rci_low": math.nan,
            "rci_high": math.nan,
            "t": row["t"] + [math.nan],
            "note": "",
        }
    low, high = sequential.rci(d, c_read)
    se = d.std(ddof=1) / math.sqrt(len(d))
    statistic = rule.statistic(d.mean(), se, math.log1p(margin), better)
    return row | {
        "ratio": math.exp(d.mean()),
        "rci_low": math.exp(low),
        "rci_high": math.exp(high),
        "t": row["t"] + [float(statistic)],
        "note": sequential.shape_flag(d) or "",
    }


def interim(plan: Plan, boundaries: dict, runs: pd.DataFrame, look: int, previous: dict | None) -> dict:
    """The decision at look `look` (0-based): every declared row, decided or open; the cells that run the next
    block; whether the study stops. previous: the decision of the look before (None at the first)."""
    looks = plan.looks
    n_k, last = looks.counts[look], look == len(looks.counts) - 1
    logs, failed = _logs(runs, plan, n_k)
    better = BETTER[plan.primary[0]]
    before = {r["contrast"]: r for r in previous["rows"]} if previous else {}
    rows = _rows(plan)
    rules = [_rule(c, role) for c, role in rows]
    m = sum(role == CONFIRMATORY for _, role in rows)
    out = []
    for (c, role), rule in zip(rows, rules):
        margin = margin_of(c, plan)
        row = before.get(c.name) or {
            "id": c.spec.id,
            "contrast": c.name,
            "role": role,
            "test": _test(c, role),
            "margin": margin,
            "cells": [list(cell) for cell in c.cells],
            "t": [],
            "verdict": None,
            "look": None,
        }
        if row["verdict"] is None:
            c_read = boundaries[_key(_level(plan, role, rule.sides, m))][look]
            row = _read(c, rule, row, logs, failed, c_read, margin, better)
        out.append(row)
    family = [i for i, (_, role) in enumerate(rows) if role == CONFIRMATORY]
    shown = {}
    if family:
        t = np.array([out[i]["t"] + [math.nan] * (look + 1 - len(out[i]["t"])) for i in family])
        sides = [rules[i].sides for i in family]
        # Holm's boundaries, (step, member, look): at step r the member's level is alpha / (sides x (m - r)).
        tables = np.array(
            [[boundaries[_key(_level(plan, CONFIRMATORY, s, m, r))][: look + 1] for s in sides] for r in range(m)]
        )
        rejected, step = sequential.holm(t, tables)
        for j, i in enumerate(family):
            shown[i] = bool(rejected[j])
            out[i]["holm_step"] = int(step[j])
    for i, ((_, role), rule, row) in enumerate(zip(rows, rules, out)):
        if row["verdict"] is not None:
            if shown.get(i) and row["verdict"] == NO_MATERIAL_DIFFERENCE:
                word = "better" if (row["ratio"] > 1) == (better == "higher") else "worse"
                row |= {
                    "verdict": word,
                    "look": look,
                    "note": f"no material difference at look {row['look'] + 1}; Holm rejected it at look {look + 1}",
                }
            continue
        crossed = shown[i] if role == CONFIRMATORY else row["t"][-1] > row["boundary"]
        if crossed and role == CONFIRMATORY:
            # Its interval at the level Holm rejected it at, as a fixed study's row beside its Holm p: the Bonferroni
            # one can still hold 1 once earlier rejections have raised the member's level.
            c_holm = boundaries[_key(_level(plan, role, rule.sides, m, row["holm_step"]))][look]
            low, high = sequential.rci(row["d"], c_holm)
            row |= {"boundary": c_holm, "rci_low": math.exp(low), "rci_high": math.exp(high)}
        if row["n_failed"]:
            word = INCONCLUSIVE if last else None
            row["note"] = "failed runs in its cells: judged by the failure rule at the seeds that ran (contrasts.csv)"
        else:
            word = rule.read(np.asarray(row["d"]), crossed, row["boundary"], row["margin"], better, last)
        if word is not None:
            row |= {"verdict": word, "look": look}
    active = sorted({tuple(cell) for row in out if row["verdict"] is None for cell in row["cells"]})
    snapshot = [
        {key: row.get(key) for key in SNAPSHOT}
        | {"look": look + 1, "seeds": n_k, "decision": row["verdict"] if row["look"] == look else OPEN}
        for row in out
        if row["look"] is None or row["look"] == look
    ]
    return {
        "plan_hash": plan.hash,
        "look": look,
        "seeds": n_k,
        "rows": out,
        "history": (previous["history"] if previous else []) + snapshot,
        "active_cells": [list(cell) for cell in active],
        "stop": last or not active,
    }


def write_decision(
    config: dict,
    plan_file: str | Path,
    look: int,
    runs: list[str | Path],
    out: str | Path,
    previous: str | Path | None = None,
) -> Path:
    """`ganablate interim`: the decision at look `look` from the runs the decisions so far asked for, written once
    (atomically, with a digest of its own) beside the decisions before it. The config's plan must be the one frozen at
    launch: a plan changed after launch decides nothing."""
    plan, frozen = Plan.from_config(config), read_plan(plan_file, "--plan")
    if frozen["hash"] != plan.hash:
        raise UsageError(
            f"--plan: {plan_file} froze plan {frozen['hash']} at launch, the config's is {plan.hash}: a sequential "
            f"study's looks are decided under the plan they were launched with; allowed: the launch config"
        )
    if plan.looks is None or not 0 <= look < len(plan.looks.counts):
        raise UsageError(f"--look: {look}; allowed: 0 to {len(plan.looks.counts) - 1 if plan.looks else -1}")
    before = None
    if look:
        if previous is None:
            raise UsageError(f"--previous: look {look} needs the decision of look {look - 1}")
        before = read_json_digested(previous, "the decision of the look before: run the study again")
    table = aggregate.aggregate(runs)[0]
    decision = interim(plan, frozen["boundaries"], table, look, before)
    atomic_write_text(Path(out), json_with_digest(decision))
    return Path(out)


COLUMNS = [
    "id",
    "contrast",
    "role",
    "test",
    "margin",
    "look",
    "seeds",
    "n",
    "n_failed",
    "ratio",
    "rci_low",
    "rci_high",
    "boundary",
    "decision",
    "note",
]
SNAPSHOT = [c for c in COLUMNS if c not in ("look", "seeds", "decision")]  # a row's own; the look adds the rest


def _looks_table(evidence: Evidence) -> pd.DataFrame:
    decision = evidence.decision
    return pd.DataFrame(decision["history"] if decision else [], columns=COLUMNS)


def _looks_note(plan: Plan) -> str:
    if plan.looks is None:
        return "A sequential study's looks (study.seeds as looks); this study's seeds are fixed: no rows."
    declared = plan.record["looks"]
    return (
        f"Every declared row (confirmatory, control) at every look it was read: looks at "
        f"{', '.join(map(str, plan.looks.counts))} seeds; seeds: the seeds each of its cells had run, n: those "
        f"without a failed run; ratio: exp(mean per-seed log contrast); rci_low, rci_high: the repeated confidence "
        f"interval (boundary x s / sqrt(n) about the mean, on the ratio scale), for a confirmatory row at the level "
        f"Holm rejected it at (alpha / (2 (m - r)) a side at Holm's step r), else at the family's Bonferroni level, "
        f"and at alpha for a control; boundary: the paired t's critical value at that look and level, "
        f"calibrated by simulation ({declared['spending']} spending, gamma {declared['gamma']}); decision: the "
        f"verdict at the look it was reached, `{OPEN}` while the row went on (Holm over the family as a "
        f"group-sequential procedure)."
    )


register_table("looks", category="tables", build=_looks_table, note=_looks_note)
