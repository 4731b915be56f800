"""One contrast engine for every comparison of the study.

Runs of one seed share G's init, the real batches and z across cells (design.BREAKS says where not), so every
comparison is a per-seed linear contrast L_s = sum_c w_c log y_{s,c} over cells, tested with a one-sample test over
seeds and reported as a ratio exp(mean L). Four kinds:
- simple: a level against another of one axis, within a cell of the other axes (today's paired log ratio); a
  declared one may compare two cells that differ on several axes (joint+ghost against split+batch), spanning them;
- interaction: how that ratio changes between two levels of another axis (a ratio of ratios);
- trend: the per-seed OLS slope of the log metric, or of a simple contrast's log ratio, on log2 of an ordered
  axis's value: the ratio per doubling;
- linear (declared only): any weights summing to 0 over levels of one axis, L_s = sum_l w_l log y_{s,l}; e.g. the
  interaction of a 2x2 laid out as four levels of one axis.
Each contrast is computed in every cell where it applies; the declared ones (stats.confirmatory, stats.controls,
stats.contrasts) and the automatic ones (every level against its axis's reference, every pair of axes'
interactions, trends over ordered axes) share one table.

A declared contrast tests a difference unless it declares `test: equivalence` (the paired TOST, as controls get) or
`test: noninferiority` (one-sided t: H0 the ratio is worse than 1 + margin in the metric's direction); for those,
p_equivalence holds that test's p, p_beyond_margin the test of the other outcome, the confirmatory family's Holm
adjustment takes it, and the verdict answers it with three outcomes (equivalent / not equivalent / inconclusive,
non-inferior / inferior / inconclusive).
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

from ganablate.analysis.estimators import holm, mean_interval
from ganablate.catalog import compared_metrics
from ganablate.study.design import SPANNED, Declared, Design
from ganablate.study.plan import Plan, alpha_of, contrast_name, linear_sides

BETTER = compared_metrics()


@dataclass(frozen=True)
class Contrast:
    """A declared or automatic contrast placed in one cell of the axes it leaves open.
    parts: per-seed components (each a weighting of cells) and coef: how they combine, L = sum coef_k part_k.
    A simple contrast has parts (compare cell, reference cell) and coef (1, -1); a linear one a part per level and
    its weights as coef."""

    spec: Declared
    cell: tuple[tuple[str, str], ...]  # every axis: its label, or SPANNED
    parts: tuple[tuple[tuple[tuple[str, ...], float], ...], ...]
    coef: tuple[float, ...]
    declared: str = ""  # the declared contrast it was placed from (plan.json's name), "" for an automatic one

    @property
    def name(self) -> str:
        fixed = tuple((a, lab) for a, lab in self.cell if lab != SPANNED)
        return contrast_name(dataclasses.replace(self.spec, within=fixed))

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
        """contrasts.csv's level and level_ref: a linear contrast's positive and negative terms."""
        if self.spec.kind == "linear":
            return linear_sides(self.spec.weights)
        return self.spec.level, self.spec.level_ref

    @property
    def cells(self) -> list[tuple[str, ...]]:
        return list(dict.fromkeys(c for part in self.parts for c, _ in part))


# --- which contrasts a design has ----------------------------------------------------------------


def _placed(design: Design, spec: Declared, declared: bool = False) -> list[Contrast]:
    """`spec` in every cell of the axes it leaves open where all its cells were run."""
    names = design.names
    spanned = {*spec.axes, *([spec.by_axis] if spec.by_axis else [])}  # a simple contrast may compare several axes
    compare, against = spec.arms
    fixed = dict(spec.within)
    free = [a for a in design.axes if a.name not in spanned and a.name not in fixed]
    run = set(design.cells)
    placed = []
    for labels in itertools.product(*(a.labels for a in free)):
        where = fixed | dict(zip((a.name for a in free), labels))
        cell = functools.partial(_cell, names, where)

        def simple(cell=cell, **at) -> tuple:  # the log ratio level / level_ref at `at`
            return ((cell(**at, **compare), 1.0), (cell(**at, **against), -1.0))

        if spec.kind == "simple":  # the compare cell and the against cell, on every axis compare names
            parts = (((cell(**compare), 1.0),), ((cell(**against), 1.0),))
            coef = (1.0, -1.0)
        elif spec.kind == "interaction":
            parts = (simple(**{spec.by_axis: spec.by_level}), simple(**{spec.by_axis: spec.by_level_ref}))
            coef = (1.0, -1.0)
        elif spec.kind == "linear":  # one part per weighted level: pair_correlation is the levels' mean pairwise r
            parts = tuple(((cell(**{spec.axis: lab}), 1.0),) for lab, _ in spec.weights)
            coef = tuple(w for _, w in spec.weights)
        else:  # trend: one part per level of the ordered axis, weighted by the OLS slope's coefficients
            over = design.axis(spec.by_axis)
            x = np.array([over.position(lab) for lab in over.labels])
            w = (x - x.mean()) / ((x - x.mean()) ** 2).sum()
            parts = tuple(
                simple(**{over.name: lab}) if spec.axis else ((cell(**{over.name: lab}), 1.0),) for lab in over.labels
            )
            coef = tuple(float(v) for v in w)
        if all(c in run for part in parts for c, _ in part):
            labels_of = tuple((n, SPANNED if n in spanned else where[n]) for n in names)
            placed.append(Contrast(spec, labels_of, parts, coef, contrast_name(spec) if declared else ""))
    return placed


def _cell(names: list[str], where: dict[str, str], **levels: str) -> tuple[str, ...]:
    """The labels of the cell at `where`, with `levels` changed."""
    return tuple(levels.get(n, where.get(n)) for n in names)


def automatic(design: Design) -> list[Declared]:
    """Every level against its axis's reference; every pair of axes' interaction (the earlier-declared axis
    compared, by each level of the later one against its reference); over every ordered axis with three or more
    levels, the trend of the log metric and of every other axis's levels against its reference."""
    specs = []
    for a in design.axes:
        specs += [Declared("simple", a.name, lab, a.reference, ()) for lab in a.labels if lab != a.reference]
    for a, b in itertools.combinations(design.axes, 2):
        specs += [
            Declared("interaction", a.name, la, a.reference, (), b.name, lb, b.reference)
            for la in a.labels
            if la != a.reference
            for lb in b.labels
            if lb != b.reference
        ]
    for o in design.axes:
        if o.ordered and len(o.labels) >= 3:
            specs.append(Declared("trend", None, None, None, (), o.name))
            specs += [
                Declared("trend", a.name, lab, a.reference, (), o.name)
                for a in design.axes
                if a is not o
                for lab in a.labels
                if lab != a.reference
            ]
    return specs


def contrasts_of(plan: Plan) -> tuple[list[Contrast], set[tuple], set[tuple]]:
    """(every contrast of the study, each once, the keys of the confirmatory family's, and those of the declared
    controls (stats.controls))."""
    design, declared = plan.design, plan.declared
    confirmatory = [c for s in declared["confirmatory"] for c in _placed(design, s, True)]
    controls = [c for s in declared["controls"] for c in _placed(design, s, True)]
    others = [c for s in declared["contrasts"] for c in _placed(design, s, True)]
    compared = {c.comparison for c in [*confirmatory, *controls, *others]}
    others += [c for s in automatic(design) for c in _placed(design, s) if c.comparison not in compared]
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

COLUMNS_HEAD = ["contrast", "declared", "kind", "axis", "level", "level_ref", "by_axis", "by_level", "by_level_ref"]
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


def tost(d: np.ndarray, margin: float) -> float:
    """Paired TOST of the contrast's mean within +-log(1 + margin) (statsmodels): the larger one-sided p."""
    from statsmodels.stats.weightstats import DescrStatsW

    bound = math.log1p(margin)
    return float(DescrStatsW(d).ttost_mean(-bound, bound)[0])


def noninferiority(d: np.ndarray, margin: float, better: str) -> float:
    """One-sided t-test of H0: the contrast is worse than a ratio of 1 + margin in the metric's direction (a mean
    log ratio >= log(1 + margin) for a lower-is-better metric, <= -log(1 + margin) for a higher-is-better one)."""
    bound = math.log1p(margin)
    if better == "higher":
        return float(stats.ttest_1samp(d, -bound, alternative="greater").pvalue)
    return float(stats.ttest_1samp(d, bound, alternative="less").pvalue)


def beyond_margin(d: np.ndarray, margin: float, better: str, test: str) -> float:
    """One-sided t-test that the contrast lies beyond the margin: for non-inferiority on the worse side (H0: the
    ratio is within 1 + margin; rejected: inferior), for equivalence on the side of the estimate (rejected: the
    1 - 2 alpha interval lies wholly outside the margin, not equivalent)."""
    bound = math.log1p(margin)
    above = float(stats.ttest_1samp(d, bound, alternative="greater").pvalue)
    below = float(stats.ttest_1samp(d, -bound, alternative="less").pvalue)
    if test == "noninferiority":
        return below if better == "higher" else above
    return min(above, below)


def mcnemar_p(failed: pd.DataFrame, a: tuple, b: tuple) -> float:
    """Exact McNemar test of the per-seed failures of two cells (seeds that ran both)."""
    from statsmodels.stats.contingency_tables import mcnemar

    both = failed[[a, b]].dropna().astype(bool)
    only_a, only_b = int((both[a] & ~both[b]).sum()), int((~both[a] & both[b]).sum())
    if len(both) == 0:
        return math.nan
    return float(mcnemar([[0, only_a], [only_b, 0]], exact=True).pvalue)


def evaluate(
    c: Contrast, logs: pd.DataFrame, failed: pd.DataFrame, values: pd.DataFrame, cfg: dict, better: str = "lower"
) -> dict:
    """One contrast at one (step, extractor, metric): logs and values are seeds x cells (NaN where unusable),
    failed seeds x cells of bools (NaN where the run does not exist). p_equivalence: the paired TOST, or the declared
    non-inferiority test (`better`: the metric's direction); equivalence_bound: the smallest margin the 1 - 2 alpha
    interval meets (for non-inferiority one-sided: on the worse side only, negative when the whole CI is better)."""
    level, alpha = cfg["confidence_level"], alpha_of(cfg)
    test, margin = c.spec.test, cfg["equivalence_margin"] if c.spec.margin is None else c.spec.margin
    out = dict.fromkeys(COLUMNS_TAIL[COLUMNS_TAIL.index("n_pairs") :], math.nan) | {"note": ""}
    notes = []
    involved = failed[c.cells].fillna(False).astype(bool)
    out["n_failed"] = int(involved.any(axis=1).sum())
    if c.spec.kind == "simple":
        out["p_failures"] = mcnemar_p(failed, *c.cells)
        out["n_failed_level"], out["n_failed_level_ref"] = (int(involved[cell].sum()) for cell in c.cells)
    if out["n_failed"]:
        notes.append(_failures_note(c, out))
    if c.spec.kind == "trend" and any(abs(w) < 1e-12 for w in c.coef):
        over = [lab for lab, w in zip(design_labels(c), c.coef) if abs(w) < 1e-12]
        notes.append(f"{', '.join(over)} weighs 0 in the trend: it is the contrast of the other levels")
    if (values[c.cells] <= 0).any().any():
        return out | {"n_pairs": 0, "note": "; ".join([*notes, "non-positive values: no log contrast"])}
    d, parts = per_seed(c, logs)
    out["n_pairs"] = len(d)
    if c.spec.kind == "simple" and len(d):  # each arm's level beside the ratio: two failed arms also read 1
        out["gmean_level"], out["gmean_level_ref"] = (math.exp(part.mean()) for part in parts)
    if len(d) < 2:
        return out | {"note": "; ".join([*notes, f"{len(d)} complete seed(s): no test or interval"])}
    out["pair_correlation"] = pair_correlation(parts)
    low, high = mean_interval(d, level)
    out["ratio"], out["ratio_ci_low"], out["ratio_ci_high"] = math.exp(d.mean()), math.exp(low), math.exp(high)
    low, high = mean_interval(d, 1 - 2 * alpha)
    out["equivalence_ci_low"], out["equivalence_ci_high"] = math.exp(low), math.exp(high)
    if test == "noninferiority":
        out["equivalence_bound"] = math.expm1(-low if better == "higher" else high)
    else:
        out["equivalence_bound"] = math.expm1(max(abs(low), abs(high)))
    identical = False
    if c.spec.kind == "simple":
        a, b = (values[cell].dropna() for cell in c.cells)
        same_failures = (involved[c.cells[0]] == involved[c.cells[1]]).all()
        identical = bool(len(a) == len(b) and len(a) and same_failures)
        identical = identical and bool((a.to_numpy() == b.reindex(a.index).to_numpy()).all())
    if identical:
        failed_too = ", and failed at the same seeds" if out["n_failed"] else ""
        notes = [f"the two arms gave bitwise-equal results for every seed{failed_too}: the same computation"]
    elif np.ptp(d) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # near-constant samples: scipy's precision warning; the p stands
            out["p"] = float(
                stats.ttest_1samp(d, 0.0).pvalue if cfg["test"] == "paired_t_log" else stats.wilcoxon(d).pvalue
            )
            out["p_equivalence"] = noninferiority(d, margin, better) if test == "noninferiority" else tost(d, margin)
            out["p_beyond_margin"] = beyond_margin(
                d, margin, better, "noninferiority" if test == "noninferiority" else "equivalence"
            )
    else:
        notes.append("the per-seed contrast is the same in every seed (no spread): no test")
    out["note"] = "; ".join(notes)
    return out


def design_labels(c: Contrast) -> list[str]:
    """A trend's levels of its ordered axis, in the order of its parts (and weights)."""
    index = [n for n, _ in c.cell].index(c.spec.by_axis)
    return [part[0][0][index] for part in c.parts]


def _failures_note(c: Contrast, out: dict) -> str:
    if c.spec.kind != "simple":
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
        return "exploratory"
    if c.key in confirmatory:
        return "confirmatory"
    return "control" if c.key in controls else "exploratory"


def judged_p(table: pd.DataFrame, tests: pd.Series) -> pd.Series:
    """The p each row's verdict rests on (what Holm adjusts over the confirmatory family): p for a difference,
    p_equivalence for equivalence or non-inferiority; for a row with failed runs, the failures' McNemar p for a
    difference and none (p = 1 in Holm) for the others, whose survivors decide nothing."""
    p = table["p"].where(tests == "difference", table["p_equivalence"])
    failed = table["n_failed"] > 0
    return p.where(~failed, table["p_failures"].where(tests == "difference"))


def verdicts(table: pd.DataFrame, cfg: dict, tests: pd.Series | None = None) -> pd.Series:
    """The verdict of every row, in the metric's own direction (a ratio above 1 of a lower-is-better metric is worse,
    also for a ratio of ratios or per doubling). At alpha, on Holm's p over the confirmatory family (each member
    counted, an untestable one as p = 1), on the unadjusted p otherwise:
    - identical: the two arms of a simple contrast gave bitwise-equal values in every seed (and failed at the same
      seeds): a property of the code, not evidence, kept out of the counts of equivalent controls;
    - failed runs in the compared cells: no verdict from the survivors. A simple contrast whose failures differ by
      the exact McNemar test is better/worse by them (the arm with more failures is worse); else inconclusive;
    - a difference: better / worse, else inconclusive; equivalent (the paired TOST) only for a control or an
      exploratory row, never for a confirmatory difference, whose TOST is not part of the family;
    - a control asks first for equivalence;
    - declared equivalence: equivalent / not equivalent (the 1 - 2 alpha interval wholly outside the margin) /
      inconclusive; declared non-inferiority: non-inferior / inferior (wholly beyond the margin on the worse side) /
      inconclusive; each of the two outcomes Holm-adjusted over the family's members that declare one.
    tests: each row's declared hypothesis (None: all difference)."""
    alpha = alpha_of(cfg)
    tests = pd.Series("difference", index=table.index) if tests is None else tests
    confirmatory = table["role"] == "confirmatory"
    p_judged = np.where(confirmatory, table["p_holm"], judged_p(table, tests)).astype(float)
    failed = (table["n_failed"] > 0).to_numpy()
    higher = table["ratio"].astype(float) > 1
    direction = np.where(higher == (table["better"] == "higher"), "better", "worse")
    by_failures = np.where(table["n_failed_level"] > table["n_failed_level_ref"], "worse", "better")
    equivalent = (table["p_equivalence"].astype(float) < alpha) & ~failed
    identical = table["note"].str.contains("bitwise-equal", regex=False).to_numpy()
    control = (table["role"] == "control").to_numpy()
    differs = p_judged < alpha
    verdict = pd.Series(
        np.select(
            [identical, failed & differs, failed, control & equivalent, differs, equivalent & ~confirmatory],
            ["identical", by_failures, "inconclusive", "equivalent", direction, "equivalent"],
            "inconclusive",
        ),
        index=table.index,
    )
    declared = (tests != "difference").to_numpy()
    if not declared.any():
        return verdict
    beyond = table["p_beyond_margin"].astype(float)
    beyond = np.where(confirmatory, holm(beyond, confirmatory & (tests != "difference")), beyond).astype(float)
    shown = (p_judged < alpha) & ~failed
    for test, yes, no in (
        ("equivalence", "equivalent", "not equivalent"),
        ("noninferiority", "non-inferior", "inferior"),
    ):
        rows = (tests == test).to_numpy()
        words = np.select([identical, shown, (beyond < alpha) & ~failed], ["identical", yes, no], "inconclusive")
        verdict[rows] = words[rows]
    return verdict


def wide(frame: pd.DataFrame, names: list[str], column: str) -> pd.DataFrame:
    """seeds x cells (label tuples) of `column`."""
    return frame.pivot_table(index="seed", columns=names, values=column, aggfunc="first", dropna=False)


def contrasts_table(runs: pd.DataFrame, plan: Plan, failed_runs: pd.Series) -> pd.DataFrame:
    """Every contrast in every cell where it applies, per step, extractor and compared metric, with its role and
    verdict. failed_runs: per row of runs, whether the run counts as failed there (plan's failure rule)."""
    design, cfg, primary = plan.design, plan.stats, plan.primary
    names = design.names
    found, confirmatory, controls = contrasts_of(plan)
    usable = (runs["status"] == "completed") & np.isfinite(runs["value"].astype(float))
    data = runs.assign(usable_value=runs["value"].where(usable), failed=failed_runs.astype(float))
    rows, tests, signatures = [], [], []
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
                "contrast": c.name,
                "declared": c.declared,
                "kind": c.spec.kind,
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
            rows.append(row | evaluate(c, logs, failed, values, cfg, BETTER[metric]))
            tests.append(c.spec.test)
            # What Holm must count once: a confirmatory member's per-seed contrast (sign fixed) and its hypothesis.
            d = per_seed(c, logs)[0] if row["role"] == "confirmatory" else np.array([])
            signatures.append(np.abs(d).tobytes() + c.spec.test.encode() if len(d) else b"")
    table = pd.DataFrame(rows, columns=columns(design))
    if table.empty:
        return table
    tests = pd.Series(tests, index=table.index)
    again = (table["role"] == "confirmatory") & once_more(table, signatures)
    counted_once = "the same per-seed contrast as another member: counted once in Holm"
    table.loc[again, "note"] = [f"{n}; {counted_once}" if n else counted_once for n in table.loc[again, "note"]]
    family = (table["role"] == "confirmatory") & ~again
    table["p_holm"] = holm(judged_p(table, tests), family)
    table["verdict"] = verdicts(table, cfg, tests)
    return table


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
