"""One contrast engine for every comparison of the study.

Runs of one seed share G's init, the real batches and z across cells (design.BREAKS says where not), so every
comparison is a per-seed linear contrast L_s = sum_c w_c log y_{s,c} over cells, tested with a one-sample test over
seeds and reported as a ratio exp(mean L). What a contrast weighs is its kind's (study/contrasts.py: simple,
interaction, trend, linear, each one register_kind call); this engine never asks which kind it computes.
Each contrast is computed in every cell where it applies; the declared ones (stats.confirmatory, stats.controls,
stats.contrasts) and the automatic ones (every level against its axis's reference, every pair of axes'
interactions, trends over ordered axes) share one table.

A declared contrast tests a difference unless it declares another hypothesis (`test:`, analysis/verdicts.py: the
paired TOST of equivalence, as controls get, or the one-sided t of non-inferiority); p_equivalence holds its test's
p, p_beyond_margin the test of the other outcome, and analysis/verdicts.py turns each row into its verdict. The
table states each row's hypothesis (test, margin) and whether its two arms were bitwise identical (identical).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ganablate import catalog
from ganablate.analysis import verdicts
from ganablate.analysis.cells import failed_rows, ordered
from ganablate.analysis.estimators import holm, mcnemar_p, mean_interval
from ganablate.analysis.evidence import Evidence, register_table
from ganablate.catalog import compared_metrics
from ganablate.study import contrasts as kinds
from ganablate.study.contrasts import KINDS, Spec
from ganablate.study.design import SPANNED, Design
from ganablate.study.plan import DIVERGED_RULE, Plan
from ganablate.study.vocab import ROLES

BETTER = compared_metrics()
CONFIRMATORY, CONTROL, EXPLORATORY = ROLES


@dataclass(frozen=True)
class Contrast:
    """A declared or automatic contrast placed in one cell of the axes it leaves open.
    parts: per-seed components (each a weighting of cells) and coef: how they combine, L = sum coef_k part_k (its
    kind's, study/contrasts.py). A simple contrast has parts (compare cell, reference cell) and coef (1, -1); a
    linear one a part per level and its weights as coef. note: what its kind says of it whatever the data."""

    spec: Spec
    cell: tuple[tuple[str, str], ...]  # every axis: its label, or SPANNED
    parts: tuple[tuple[tuple[tuple[str, ...], float], ...], ...]
    coef: tuple[float, ...]
    declared: str = ""  # the title of the declared contrast it was placed from, "" for an automatic one
    note: str = ""

    @property
    def name(self) -> str:
        fixed = tuple((a, lab) for a, lab in self.cell if lab != SPANNED)
        return kinds.title(dataclasses.replace(self.spec, within=fixed))

    @property
    def comparison(self) -> tuple:
        """What is compared, where: one per row of the table whatever hypothesis is tested on it."""
        return (
            self.spec.kind,
            self.spec.axis,
            self.spec.level,
            self.spec.level_ref,
            self.spec.by_axis,
            self.spec.by_level,
            self.spec.by_level_ref,
            self.cell,
            self.spec.weights,
        )

    @property
    def key(self) -> tuple:
        return (*self.comparison, self.spec.test, self.spec.margin)

    @property
    def sides(self) -> tuple[str | None, str | None]:
        """contrasts.csv's level and level_ref (a linear contrast's positive and negative terms)."""
        return KINDS[self.spec.kind].sides(self.spec)

    @property
    def two_arms(self) -> bool:
        """One cell against another: each arm's failures and level are reported."""
        return KINDS[self.spec.kind].two_arms

    @property
    def cells(self) -> list[tuple[str, ...]]:
        return list(dict.fromkeys(c for part in self.parts for c, _ in part))


# --- which contrasts a design has ----------------------------------------------------------------


def _placed(design: Design, spec: Spec, declared: bool = False) -> list[Contrast]:
    """`spec` in every cell of the axes it leaves open where all its cells were run; declared: placed from a
    declared contrast (its title in the `declared` column)."""
    names = design.names
    spanned = {*spec.axes, *([spec.by_axis] if spec.by_axis else [])}  # a simple contrast may compare several axes
    fixed = dict(spec.within)
    free = [a for a in design.axes if a.name not in spanned and a.name not in fixed]
    run = set(design.cells)
    placed = []
    for labels in itertools.product(*(a.labels for a in free)):
        where = fixed | dict(zip((a.name for a in free), labels))
        cells = KINDS[spec.kind].parts(design, spec, functools.partial(_cell, names, where))
        if all(c in run for part in cells.parts for c, _ in part):
            labels_of = tuple((n, SPANNED if n in spanned else where[n]) for n in names)
            origin = kinds.title(spec) if declared else ""
            placed.append(Contrast(spec, labels_of, cells.parts, cells.coef, origin, cells.note))
    return placed


def _cell(names: list[str], where: dict[str, str], **levels: str) -> tuple[str, ...]:
    """The labels of the cell at `where`, with `levels` changed."""
    return tuple(levels.get(n, where.get(n)) for n in names)


def contrasts_of(plan: Plan) -> tuple[list[Contrast], set[tuple], set[tuple]]:
    """(every contrast of the study, each once, the keys of the confirmatory family's, and those of the declared
    controls (stats.controls))."""
    design, declared = plan.design, plan.declared
    confirmatory = [c for s in declared["confirmatory"] for c in _placed(design, s, True)]
    controls = [c for s in declared["controls"] for c in _placed(design, s, True)]
    others = [c for s in declared["contrasts"] for c in _placed(design, s, True)]
    compared = {c.comparison for c in [*confirmatory, *controls, *others]}
    others += [c for s in kinds.automatic(design) for c in _placed(design, s) if c.comparison not in compared]
    unique: dict[tuple, Contrast] = {}
    for c in [*confirmatory, *controls, *others]:  # a contrast declared twice keeps its first origin, confirmatory
        unique.setdefault(c.key, c)  # before control; an automatic one gives way to a declared one of any hypothesis
    keys = set(unique)
    return (
        list(unique.values()),
        {c.key for c in confirmatory} & keys,
        {c.key for c in controls} - {c.key for c in confirmatory},
    )


# --- evaluating a contrast on the runs -----------------------------------------------------------

COLUMNS_HEAD = [
    "id",
    "contrast",
    "declared",
    "kind",
    "test",
    "margin",
    "axis",
    "level",
    "level_ref",
    "by_axis",
    "by_level",
    "by_level_ref",
]
COLUMNS_TAIL = [
    "step",
    "extractor",
    "metric",
    "better",
    "role",
    "n_pairs",
    "n_failed",
    "n_failed_level",
    "n_failed_level_ref",
    "pair_correlation",
    "gmean_level",
    "gmean_level_ref",
    "ratio",
    "ratio_ci_low",
    "ratio_ci_high",
    "p",
    "p_holm",
    "p_equivalence",
    "equivalence_ci_low",
    "equivalence_ci_high",
    "equivalence_bound",
    "p_beyond_margin",
    "p_failures",
    "identical",
    "verdict",
    "note",
]


def columns(design: Design) -> list[str]:
    return [*COLUMNS_HEAD, *design.names, *COLUMNS_TAIL]


def per_seed(c: Contrast, logs: pd.DataFrame) -> tuple[np.ndarray, list[np.ndarray]]:
    """(L per complete seed, each part per complete seed) from logs: seeds x cells of log values (NaN = unusable)."""
    parts = [sum(w * logs[cell] for cell, w in part) for part in c.parts]
    frame = pd.concat(parts, axis=1).dropna()
    values = [frame[k].to_numpy(float) for k in frame.columns]
    return sum(k * v for k, v in zip(c.coef, values)) if values else np.array([]), values


def pair_correlation(parts: list[np.ndarray]) -> float:
    """How strongly runs of one seed move together: Pearson r of a simple or interaction contrast's two parts, the
    mean pairwise r of a trend's levels."""
    if not parts or len(parts[0]) < 3 or any(np.ptp(p) == 0 for p in parts):
        return math.nan
    return float(np.mean([stats.pearsonr(a, b).statistic for a, b in itertools.combinations(parts, 2)]))


def margin_of(c: Contrast, plan: Plan) -> float:
    """The margin its hypothesis is tested within: its own, else the study's (also the TOST's beside a difference)."""
    return plan.margin if c.spec.margin is None else c.spec.margin


def evaluate(
    c: Contrast, logs: pd.DataFrame, failed: pd.DataFrame, values: pd.DataFrame, plan: Plan, better: str = "lower"
) -> dict:
    """One contrast at one (step, extractor, metric): logs and values are seeds x cells (NaN where unusable),
    failed seeds x cells of 1/0 (NaN where the run does not exist). p_equivalence, p_beyond_margin and
    equivalence_bound: its hypothesis's (analysis/verdicts.py; `better`: the metric's direction), on the 1 - 2 alpha
    interval."""
    hypothesis = verdicts.HYPOTHESES[c.spec.test]
    confidence, alpha, margin = plan.confidence, plan.alpha, margin_of(c, plan)
    out = dict.fromkeys(COLUMNS_TAIL[COLUMNS_TAIL.index("n_pairs") :], math.nan) | {"identical": False, "note": ""}
    notes = []
    involved = failed[c.cells].fillna(False).astype(bool)
    out["n_failed"] = int(involved.any(axis=1).sum())
    if c.two_arms:
        out["p_failures"] = mcnemar_p(*(failed[cell].to_numpy(float) for cell in c.cells))
        out["n_failed_level"], out["n_failed_level_ref"] = (int(involved[cell].sum()) for cell in c.cells)
    if out["n_failed"]:
        notes.append(_failures_note(c, out))
    if c.note:
        notes.append(c.note)
    if (values[c.cells] <= 0).any().any():
        return out | {"n_pairs": 0, "note": "; ".join([*notes, "non-positive values: no log contrast"])}
    d, parts = per_seed(c, logs)
    out["n_pairs"] = len(d)
    if c.two_arms and len(d):  # each arm's level beside the ratio: two failed arms also read 1
        out["gmean_level"], out["gmean_level_ref"] = (math.exp(part.mean()) for part in parts)
    if len(d) < 2:
        return out | {"note": "; ".join([*notes, f"{len(d)} complete seed(s): no test or interval"])}
    out["pair_correlation"] = pair_correlation(parts)
    low, high = mean_interval(d, confidence)
    out["ratio"], out["ratio_ci_low"], out["ratio_ci_high"] = math.exp(d.mean()), math.exp(low), math.exp(high)
    low, high = mean_interval(d, 1 - 2 * alpha)
    out["equivalence_ci_low"], out["equivalence_ci_high"] = math.exp(low), math.exp(high)
    out["equivalence_bound"] = hypothesis.bound(low, high, better)
    if c.two_arms:
        a, b = (values[cell].dropna() for cell in c.cells)
        same_failures = (involved[c.cells[0]] == involved[c.cells[1]]).all()
        identical = bool(len(a) == len(b) and len(a) and same_failures)
        out["identical"] = identical and bool((a.to_numpy() == b.reindex(a.index).to_numpy()).all())
    if out["identical"]:
        failed_too = ", and failed at the same seeds" if out["n_failed"] else ""
        notes = [f"the two arms gave bitwise-equal results for every seed{failed_too}: the same computation"]
    elif np.ptp(d) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # near-constant samples: scipy's precision warning; the p stands
            test = plan.test
            out["p"] = float(stats.ttest_1samp(d, 0.0).pvalue if test == "paired_t_log" else stats.wilcoxon(d).pvalue)
            out["p_equivalence"] = hypothesis.p(d, margin, better)
            out["p_beyond_margin"] = hypothesis.beyond(d, margin, better)
    else:
        notes.append("the per-seed contrast is the same in every seed (no spread): no test")
    out["note"] = "; ".join(notes)
    return out


def _failures_note(c: Contrast, out: dict) -> str:
    if not c.two_arms:
        return f"{out['n_failed']} seed(s) with a failed run in the compared cells: no verdict from the survivors"
    level, level_ref = c.spec.level, c.spec.level_ref
    return (
        f"failed runs: {out['n_failed_level']} in {level}, {out['n_failed_level_ref']} in {level_ref} "
        f"(McNemar p = {out['p_failures']:.3g}): no verdict from the survivors"
    )


def role_of(c: Contrast, confirmatory: set, controls: set, primary: tuple, at: tuple) -> str:
    """confirmatory and control only as declared (stats.confirmatory, stats.controls), at the primary metric,
    extractor and final step; everything else is exploratory."""
    if at != primary:
        return EXPLORATORY
    if c.key in confirmatory:
        return CONFIRMATORY
    return CONTROL if c.key in controls else EXPLORATORY


def wide(frame: pd.DataFrame, names: list[str], column: str) -> pd.DataFrame:
    """seeds x cells (label tuples) of `column`."""
    return frame.pivot_table(index="seed", columns=names, values=column, aggfunc="first", dropna=False)


def contrasts_table(runs: pd.DataFrame, plan: Plan, failed_runs: pd.Series) -> pd.DataFrame:
    """Every contrast in every cell where it applies, per step, extractor and compared metric, with its role and
    verdict. failed_runs: per row of runs, whether the run counts as failed there (plan's failure rule)."""
    design, primary = plan.design, plan.primary
    names = design.names
    found, confirmatory, controls = contrasts_of(plan)
    usable = (runs["status"] == "completed") & np.isfinite(runs["value"].astype(float))
    data = runs.assign(usable_value=runs["value"].where(usable), failed=failed_runs.astype(float))
    rows, signatures = [], []
    for (step, extractor, metric), group in data[data["metric"].isin(list(BETTER))].groupby(
        ["step", "extractor", "metric"], sort=True
    ):
        values = as_cells(wide(group, names, "usable_value"), names)
        failed = as_cells(wide(group, names, "failed"), names)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(values.where(values > 0))
        for c in found:
            if not set(c.cells) <= set(values.columns):
                continue
            level, level_ref = c.sides
            row = {
                "id": c.spec.id,
                "contrast": c.name,
                "declared": c.declared,
                "kind": c.spec.kind,
                "test": c.spec.test,
                "margin": margin_of(c, plan) if verdicts.HYPOTHESES[c.spec.test].margin else math.nan,
                "axis": c.spec.axis,
                "level": level,
                "level_ref": level_ref,
                "by_axis": c.spec.by_axis,
                "by_level": c.spec.by_level,
                "by_level_ref": c.spec.by_level_ref,
                **dict(c.cell),
                "step": step,
                "extractor": extractor,
                "metric": metric,
                "better": BETTER[metric],
                "role": role_of(c, confirmatory, controls, primary, (metric, extractor, step)),
            }
            rows.append(row | evaluate(c, logs, failed, values, plan, BETTER[metric]))
            # What Holm must count once: a confirmatory member's per-seed contrast (sign fixed) and its hypothesis.
            d = per_seed(c, logs)[0] if row["role"] == CONFIRMATORY else np.array([])
            signatures.append(np.abs(d).tobytes() + c.spec.test.encode() if len(d) else b"")
    table = pd.DataFrame(rows, columns=columns(design))
    if table.empty:
        return table
    again = (table["role"] == CONFIRMATORY) & once_more(table, signatures)
    counted_once = "the same per-seed contrast as another member: counted once in Holm"
    table.loc[again, "note"] = [f"{n}; {counted_once}" if n else counted_once for n in table.loc[again, "note"]]
    family = (table["role"] == CONFIRMATORY) & ~again
    table["p_holm"] = holm(verdicts.judged_p(table), family)
    table["verdict"] = verdicts.verdicts(table, plan.alpha)
    return table


def _contrasts_note(plan: Plan) -> str:
    level = f"{plan.confidence:.0%}"
    directions = ", ".join(f"{m}: {b} is better" for m, b in compared_metrics().items())
    margin = f"±{plan.margin:.0%}"
    kinds = "; ".join(f"{name}: {kind['about']}" for name, kind in catalog.entries("kinds").items())
    return (
        f"Every contrast, paired by seed: the per-seed linear contrast of the log metric over cells ({kinds}), "
        f"tested over seeds ({plan.test}); id: the declared contrast's (its key where the config names it, else "
        f"derived from its title), an automatic one's derived; test and margin: the hypothesis the row is judged "
        f"by; {directions}. ratio with its {level} t CI; p unadjusted; p_holm over the confirmatory family "
        f"(role confirmatory); p_equivalence: paired TOST within {margin} (a declared test with a margin: its own "
        f"test within its margin), with its "
        f"{1 - 2 * plan.alpha:.0%} CI (equivalence_ci_*); equivalence_bound: the smallest margin that "
        f"CI meets; a declared test's verdict rests on its p, Holm-adjusted (p_holm) in the confirmatory "
        f"family; p_failures: exact McNemar of the two arms' failures; identical: the two arms gave bitwise-equal "
        f"values in every seed. '*': the axis the contrast spans. "
        f"Roles: confirmatory (the declared family), control (every other simple effect at the primary "
        f"metric and final step), exploratory (the rest). {DIVERGED_RULE}."
    )


def _contrasts_table(evidence: Evidence) -> pd.DataFrame:
    plan, runs = evidence.plan, evidence.runs
    design = plan.design
    table = contrasts_table(runs, plan, failed_rows(runs, plan))
    if evidence.decision is not None:
        table = decided_at_looks(table, evidence.decision)
    return ordered(table, design, ["kind", *design.names, "step", "extractor", "metric"]) if len(table) else table


def decided_at_looks(table: pd.DataFrame, decision: dict) -> pd.DataFrame:
    """A sequential study's declared rows take the verdict of the look that decided them (`ganablate interim`'s last
    decision; looks.csv has every look): their ratio and CI here stay those of every seed their cells ran, which
    includes seeds run after the decision for other contrasts, and are not the interval to quote."""
    table = table.copy()
    for row in decision["rows"]:
        at = (table["id"] == row["id"]) & (table["contrast"] == row["contrast"]) & table["role"].isin(ROLES[:2])
        decided = (
            f"decided at look {row['look'] + 1} ({row['n']} seeds): adjusted interval "
            f"{row['rci_low']:.4g}-{row['rci_high']:.4g} (looks.csv)"
            if row["look"] is not None
            else "undecided at the cap (looks.csv)"
        )
        table.loc[at, "verdict"] = row["verdict"]
        table.loc[at, "note"] = [
            f"{n}; sequential: {decided}" if n else f"sequential: {decided}" for n in table.loc[at, "note"]
        ]
    return table


register_table("contrasts", category="tables", build=_contrasts_table, note=_contrasts_note)


def once_more(table: pd.DataFrame, signatures: list[bytes]) -> pd.Series:
    """Rows whose per-seed contrast is bitwise that of an earlier row at the same step, extractor and metric: one
    contrast counted twice (e.g. a trend over three equally spaced levels and the contrast of its end levels)."""
    seen, again = set(), []
    for (step, extractor, metric), signature in zip(
        table[["step", "extractor", "metric"]].itertuples(index=False), signatures
    ):
        key = (step, extractor, metric, signature)
        again.append(signature != b"" and key in seen)
        seen.add(key)
    return pd.Series(again, index=table.index)


def as_cells(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Columns as label tuples, also for one axis (where pandas gives plain labels)."""
    frame = frame.copy()
    frame.columns = [c if isinstance(c, tuple) else (c,) for c in frame.columns]
    return frame
