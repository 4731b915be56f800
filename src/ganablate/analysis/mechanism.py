"""mechanism.csv: the hypothesis stats.mechanism declares, tested within every cell of the other axes.

On the mechanism axis, `repaired` recovers a share of the gap from `reference` to `broken`: 1 - mean log(repaired /
reference) / mean log(broken / reference) over seeds, with Fieller's interval, and the same on the raw metric
scale. The context gap (how much a fake's logit depends on its batch company, logged in training) is related to
the log metric within the mechanism axis's levels at the final step, never pooled across them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ganablate.analysis.cells import late_context_gap, ordered, usable
from ganablate.analysis.estimators import fieller_interval
from ganablate.analysis.evidence import register_table
from ganablate.study.design import SPANNED, Design, label_of
from ganablate.study.plan import Plan

GAP_ZERO = 1e-4  # logits; per-sample norms give a context gap of float rounding (< 1e-5, tests/test_train.py)
TAIL = [
    "step",
    "metric",
    "extractor",
    "axis",
    "reference",
    "broken",
    "repaired",
    "n_pairs",
    "log_ratio_broken",
    "log_ratio_repaired",
    "recovered",
    "recovered_ci_low",
    "recovered_ci_high",
    "recovered_raw",
    "recovered_raw_ci_low",
    "recovered_raw_ci_high",
    "gap_slope",
    "gap_slope_ci_low",
    "gap_slope_ci_high",
    "gap_p_unadj",
    "gap_n_runs",
    "recovered_note",
    "gap_note",
]


def _share(a: np.ndarray, b: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """1 - mean(a) / mean(b) with Fieller's interval; NaN when mean(b) is not distinguishable from 0."""
    low, high = fieller_interval(a, b, confidence) if len(a) >= 2 else (math.nan, math.nan)
    if not np.isfinite(low):
        return math.nan, math.nan, math.nan
    return 1 - a.mean() / b.mean(), 1 - high, 1 - low


def mechanism_table(runs: pd.DataFrame, logs: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    import statsmodels.formula.api as smf

    design, m = plan.design, plan.mechanism
    metric, extractor, final = plan.primary
    others = [n for n in design.names if m is not None and n != m["axis"]]
    columns = [*design.names, *TAIL]
    if m is None:
        return pd.DataFrame(columns=columns)
    axis, confidence = m["axis"], plan.confidence
    ref, broken, repaired = (label_of(m[k]) for k in ("reference", "broken", "repaired"))
    data = runs[usable(runs) & (runs["metric"] == metric) & (runs["extractor"] == extractor)]
    gaps = late_context_gap(logs, design)
    rows = []
    for key, here in data.groupby([*others, "step"], sort=False):
        key = key if isinstance(key, tuple) else (key,)
        where = dict(zip(others, key[:-1]))
        step = key[-1]
        row = (
            dict.fromkeys(columns, math.nan)
            | where
            | {
                axis: SPANNED,
                "step": step,
                "metric": metric,
                "extractor": extractor,
                "axis": axis,
                "reference": ref,
                "broken": broken,
                "repaired": repaired,
                "recovered_note": "",
                "gap_note": "",
            }
        )
        table = here.pivot_table(index="seed", columns=axis, values="value", aggfunc="first")
        needed = [ref, broken, repaired]
        pairs = table[needed].dropna() if set(needed) <= set(table.columns) else pd.DataFrame()
        row["n_pairs"] = len(pairs)
        if len(pairs) and (pairs > 0).all().all():
            a, b = np.log(pairs[repaired] / pairs[ref]).to_numpy(), np.log(pairs[broken] / pairs[ref]).to_numpy()
            row["log_ratio_broken"], row["log_ratio_repaired"] = b.mean(), a.mean()
            row["recovered"], row["recovered_ci_low"], row["recovered_ci_high"] = _share(a, b, confidence)
            raw_a, raw_b = (pairs[repaired] - pairs[ref]).to_numpy(), (pairs[broken] - pairs[ref]).to_numpy()
            row["recovered_raw"], row["recovered_raw_ci_low"], row["recovered_raw_ci_high"] = _share(
                raw_a, raw_b, confidence
            )
            if not np.isfinite(row["recovered"]):
                row["recovered_note"] = f"{broken}'s gap to {ref} is not distinguishable from 0: no share to recover"
        else:
            row["recovered_note"] = f"needs {ref}, {broken} and {repaired} runs of one seed with positive values"
        if step == final:
            _gap_association(row, here, gaps, design, axis, confidence, smf)
        rows.append(row)
    return ordered(pd.DataFrame(rows, columns=columns), design, [*others, "step"])


def _note(plan: Plan) -> str:
    confidence = f"{plan.confidence:.0%}"
    return (
        f"stats.mechanism within every cell of the other axes: recovered = 1 - mean log(repaired/reference) / mean "
        f"log(broken/reference) over seeds (log scale), recovered_raw the same on the raw metric, Fieller {confidence} "
        f"CIs; gap_slope (final step {plan.final_step} only, exploratory): OLS log metric ~ context gap + level, per "
        f"logit of gap, unadjusted p."
    )


register_table(
    "mechanism",
    category="tables",
    build=lambda evidence: mechanism_table(evidence.runs, evidence.logs, evidence.plan),
    note=_note,
)


def _gap_association(
    row: dict, here: pd.DataFrame, gaps: pd.DataFrame, design: Design, axis: str, confidence: float, smf
) -> None:
    """OLS log metric ~ context gap + level of the mechanism axis: the gap's association within levels."""
    both = here.merge(gaps[[*design.names, "seed", "context_gap"]], on=[*design.names, "seed"])
    row["gap_n_runs"] = len(both)
    spread = both.groupby(axis)["context_gap"].agg(np.ptp) if len(both) else pd.Series(dtype=float)
    if len(both) and both["context_gap"].abs().max() < GAP_ZERO:
        row["gap_note"] = "no context gap (a per-sample D): nothing to relate"
    elif len(both) < both[axis].nunique() + 3 or not (spread > 0).any() or not (both["value"] > 0).all():
        row["gap_note"] = "too few runs, or no gap variation within a level, to relate the gap to the metric"
    else:
        fit = smf.ols(f"np.log(value) ~ context_gap + C({axis})", data=both).fit()
        row["gap_slope"], row["gap_p_unadj"] = fit.params["context_gap"], fit.pvalues["context_gap"]
        row["gap_slope_ci_low"], row["gap_slope_ci_high"] = fit.conf_int(1 - confidence).loc["context_gap"]
