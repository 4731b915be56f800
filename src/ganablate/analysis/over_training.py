"""trend.csv: does a gap close, stay or widen with training? Exploratory.

Per simple contrast of the primary metric (every cell where it applies): each seed's OLS slope of the log ratio
over the checkpoints, and a t interval of the mean slope over seeds (one slope per seed, so checkpoints of one run
are not taken as independent). trend: 'widens' when the slope moves the log ratio away from 0 (the final gap's
sign) with its CI excluding 0, 'closes' when toward 0, 'no detectable change' otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from ganablate.analysis.cells import usable
from ganablate.analysis.contrasts import Contrast, as_cells, contrasts_of, wide
from ganablate.analysis.estimators import mean_interval
from ganablate.analysis.evidence import register_table
from ganablate.study.plan import Plan

HEAD = ["contrast", "axis", "level", "level_ref"]
TAIL = [
    "metric",
    "extractor",
    "n_pairs",
    "first_step",
    "last_step",
    "ratio_first",
    "ratio_last",
    "slope_per_1000",
    "slope_ci_low",
    "slope_ci_high",
    "p_slope_unadj",
    "trend",
    "note",
]


def trend_table(runs: pd.DataFrame, found: list[Contrast], plan: Plan) -> pd.DataFrame:
    names, level, (metric, extractor, _) = plan.design.names, plan.confidence, plan.primary
    data = runs[(runs["metric"] == metric) & (runs["extractor"] == extractor)]
    data = data.assign(value=data["value"].where(usable(data)))
    steps = sorted(data["step"].unique())
    if len(steps) < 2:  # one checkpoint: no trend to estimate, for any contrast
        return pd.DataFrame(columns=[*HEAD, *names, *TAIL])
    per_step = {}
    for step in steps:
        values = as_cells(wide(data[data["step"] == step], names, "value"), names)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_step[step] = np.log(values.where(values > 0))
    rows = []
    for c in (c for c in found if c.two_arms):
        row = dict.fromkeys(TAIL, math.nan) | {
            "contrast": c.name,
            "axis": c.spec.axis,
            "level": c.spec.level,
            "level_ref": c.spec.level_ref,
            **dict(c.cell),
            "metric": metric,
            "extractor": extractor,
            "first_step": steps[0],
            "last_step": steps[-1],
            "trend": "",
            "note": "",
        }
        ratios = pd.DataFrame({s: _by_seed(c, per_step[s]) for s in steps}).dropna()
        row["n_pairs"] = len(ratios)
        if len(ratios) < 2:
            rows.append(row | {"note": "needs 2 complete seeds with positive values"})
            continue
        row["ratio_first"], row["ratio_last"] = np.exp(ratios[steps[0]].mean()), np.exp(ratios[steps[-1]].mean())
        x = np.asarray(steps, dtype=float) / 1000
        slopes = np.array([stats.linregress(x, r).slope for r in ratios.to_numpy()])
        row["slope_per_1000"] = slopes.mean()
        row["slope_ci_low"], row["slope_ci_high"] = mean_interval(slopes, level)
        row["p_slope_unadj"] = stats.ttest_1samp(slopes, 0.0).pvalue if np.ptp(slopes) > 0 else math.nan
        toward_zero = np.sign(row["slope_per_1000"]) != np.sign(ratios[steps[-1]].mean())
        moved = row["slope_ci_low"] > 0 or row["slope_ci_high"] < 0
        row["trend"] = ("closes" if toward_zero else "widens") if moved else "no detectable change"
        rows.append(row)
    return pd.DataFrame(rows, columns=[*HEAD, *names, *TAIL])


def _by_seed(c: Contrast, logs: pd.DataFrame) -> pd.Series:
    """The contrast's per-seed log ratio at one step, indexed by seed (NaN where a run is missing or failed)."""
    if not set(c.cells) <= set(logs.columns):
        return pd.Series(dtype=float)
    parts = [sum(w * logs[cell] for cell, w in part) for part in c.parts]
    return sum(k * p for k, p in zip(c.coef, parts))


def _note(plan: Plan) -> str:
    return (
        f"Exploratory: per simple contrast of {plan.metric}, ratio_first/ratio_last (geometric means "
        f"over seeds at the first and last checkpoint) and the mean over seeds of each seed's OLS slope of the log "
        f"ratio per 1000 steps, t {plan.confidence:.0%} CI, unadjusted p."
    )


register_table(
    "trend",
    category="tables",
    build=lambda evidence: trend_table(evidence.runs, contrasts_of(evidence.plan)[0], evidence.plan),
    note=_note,
)
