"""Per-cell and per-run tables: the summary of every metric, each run's outcome and the failures they count, the
context gap; and the order every table is sorted in (the axes' declared level order, metrics as their registry lists
them)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ganablate.analysis.estimators import bootstrap_ci, iqm, mean_interval, median_interval, wilson_interval
from ganablate.analysis.evidence import register_table
from ganablate.catalog import compared_metrics, names
from ganablate.study.design import Design
from ganablate.study.plan import DIVERGED_RULE, Plan

METRIC_ORDER = list(names("metrics"))
STAT_COLUMNS = [
    "n",
    "n_failed",
    "mean",
    "sd",
    "mean_ci_low",
    "mean_ci_high",
    "median",
    "median_ci_low",
    "median_ci_high",
    "gmean",
    "gmean_ci_low",
    "gmean_ci_high",
    "iqm",
    "iqm_ci_low",
    "iqm_ci_high",
    "min",
    "max",
    "note",
]
FAILURE_COLUMNS = [
    "n_runs",
    "n_diverged",
    "n_beyond_threshold",
    "n_no_value",
    "n_failed",
    "failure_rate",
    "rate_ci_low",
    "rate_ci_high",
]
CONTEXT_COLUMNS = ["n_runs", "context_gap_median", "d_acc_median"]


def ordered(frame: pd.DataFrame, design: Design, by: list[str]) -> pd.DataFrame:
    """Sort axis columns in their declared level order ('*' after the levels), metrics as their registry lists them."""
    orders = {a.name: list(a.labels) for a in design.axes} | {"metric": METRIC_ORDER}

    def key(column: pd.Series):
        if column.name not in orders:
            return column
        order = orders[column.name]
        return column.map(lambda v: (order.index(v), "") if v in order else (len(order), str(v)))

    return frame.sort_values(by, key=key, ignore_index=True, kind="stable")


def usable(runs: pd.DataFrame) -> pd.Series:
    """Rows that enter means and contrasts: completed runs with a finite value. Diverged runs never do."""
    return (runs["status"] == "completed") & np.isfinite(runs["value"].astype(float))


def at_primary(runs: pd.DataFrame, plan: Plan) -> pd.Series:
    """Per row of runs: whether it is the plan's primary metric and extractor at the final step."""
    metric, extractor, step = plan.primary
    return (runs["metric"] == metric) & (runs["extractor"] == extractor) & (runs["step"] == step)


def run_outcomes(runs: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """One row per run: its primary metric at the final step and why it failed ('' when it did not)."""
    design, keys = plan.design, [*plan.design.names, "seed"]
    metric, threshold = plan.metric, plan.failure_threshold
    primary = runs[at_primary(runs, plan)]
    each = runs[[*keys, "status"]].drop_duplicates(keys)
    out = each.merge(primary[[*keys, "value"]], on=keys, how="left")
    value = out["value"].astype(float)
    beyond = pd.Series(False, index=out.index)
    if threshold is not None:
        beyond = value > threshold if compared_metrics()[metric] == "lower" else value < threshold
    out["failure"] = np.select(
        [out["status"] == "diverged", ~np.isfinite(value), beyond], ["diverged", "no value", "beyond threshold"], ""
    )
    return ordered(out, design, keys)


def _outcomes_note(plan: Plan) -> str:
    metric, extractor, step = plan.primary
    return (
        f"Per run: its status, its {metric} on {extractor} features at the final step {step}, and why it failed "
        f"('' when it did not): {DIVERGED_RULE}; with stats.failure_threshold {plan.failure_threshold}, a run "
        f"beyond it at the final step also fails. failures.csv counts them per cell."
    )


register_table(
    "outcomes",
    category="diagnostics",
    build=lambda evidence: run_outcomes(evidence.runs, evidence.plan),
    note=_outcomes_note,
)


def failed_rows(runs: pd.DataFrame, plan: Plan) -> pd.Series:
    """Per row of runs: whether its run counts as failed for that row's metric and step (not usable there, or at
    the primary metric's final step, beyond stats.failure_threshold)."""
    outcomes = run_outcomes(runs, plan)
    keys = [*plan.design.names, "seed"]
    beyond = outcomes.loc[outcomes["failure"] == "beyond threshold", keys].assign(beyond=True)
    flagged = runs[keys].merge(beyond, on=keys, how="left")["beyond"].fillna(False).to_numpy(bool)
    primary = at_primary(runs, plan).to_numpy()
    return pd.Series(~usable(runs).to_numpy() | (flagged & primary), index=runs.index)


def summary_table(runs: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """Per cell, step, extractor and metric: location and spread of the usable runs, with intervals."""
    design, ok, rows = plan.design, usable(runs), []
    level = plan.confidence
    group_by = [*design.names, "step", "extractor", "metric"]
    for key, group in runs.groupby(group_by, sort=False):
        x = group.loc[ok[group.index], "value"].to_numpy(float)
        n = len(x)
        row = dict(zip(group_by, key)) | {
            "n": n,
            "n_failed": len(group) - n,
            "mean": x.mean() if n else math.nan,
            "sd": x.std(ddof=1) if n > 1 else math.nan,
            "median": np.median(x) if n else math.nan,
            "iqm": iqm(x) if n else math.nan,
            "min": x.min() if n else math.nan,
            "max": x.max() if n else math.nan,
        }
        row["mean_ci_low"], row["mean_ci_high"] = mean_interval(x, level)
        row["median_ci_low"], row["median_ci_high"] = median_interval(x, level)
        positive = n and (x > 0).all()
        row["gmean"] = math.exp(np.log(x).mean()) if positive else math.nan
        low, high = mean_interval(np.log(x), level) if positive else (math.nan, math.nan)
        row["gmean_ci_low"], row["gmean_ci_high"] = math.exp(low), math.exp(high)
        row["iqm_ci_low"], row["iqm_ci_high"] = bootstrap_ci(
            (x,), iqm, plan.resamples, plan.confidence, plan.seed, ("iqm", *key)
        )
        notes = []
        if n < 2:
            notes.append(f"{n} usable run(s): no CI")
        elif not np.isfinite(row["median_ci_low"]):
            notes.append(f"{n} runs cannot give a {level:.0%} order-statistic interval of the median")
        row["note"] = "; ".join(notes)
        rows.append(row)
    return ordered(pd.DataFrame(rows, columns=[*group_by, *STAT_COLUMNS]), design, group_by)


def _summary_note(plan: Plan) -> str:
    return (
        f"Per cell, step, extractor and metric over the usable runs (n; n_failed left out). {plan.confidence:.0%} "
        f"intervals: Student t for the mean and (on the log scale) the geometric mean, order statistics "
        f"(distribution-free) for the median, bootstrap (BCa, percentile where undefined; approximate at "
        f"small n) for the IQM."
    )


register_table(
    "summary",
    category="tables",
    build=lambda evidence: summary_table(evidence.runs, evidence.plan),
    note=_summary_note,
)


def failures_table(runs: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """Failure rate per cell with a Wilson CI (paired comparisons of failures are contrasts.csv's p_failures)."""
    design, outcomes = plan.design, run_outcomes(runs, plan)
    rows = []
    for key, group in outcomes.groupby(design.names, sort=False):
        n, failed = len(group), int((group["failure"] != "").sum())
        low, high = wilson_interval(failed, n, plan.confidence)
        rows.append(
            dict(zip(design.names, key if isinstance(key, tuple) else (key,)))
            | {
                "n_runs": n,
                "n_diverged": int((group["failure"] == "diverged").sum()),
                "n_beyond_threshold": int((group["failure"] == "beyond threshold").sum()),
                "n_no_value": int((group["failure"] == "no value").sum()),
                "n_failed": failed,
                "failure_rate": failed / n,
                "rate_ci_low": low,
                "rate_ci_high": high,
            }
        )
    return ordered(pd.DataFrame(rows, columns=[*design.names, *FAILURE_COLUMNS]), design, design.names)


def _failures_note(plan: Plan) -> str:
    return (
        f"Failure rule: {DIVERGED_RULE}; with stats.failure_threshold {plan.failure_threshold}, a run beyond "
        f"it at the final step also fails. Wilson {plan.confidence:.0%} CI per cell."
    )


register_table(
    "failures",
    category="diagnostics",
    build=lambda evidence: failures_table(evidence.runs, evidence.plan),
    note=_failures_note,
)


def late_context_gap(logs: pd.DataFrame, design: Design) -> pd.DataFrame:
    """Per run: the mean context gap and D accuracy over the second half of training, where D has settled."""
    keys = [*design.names, "seed"]
    late = logs[logs["step"] > logs.groupby(keys)["step"].transform("max") / 2]
    return late.groupby(keys)[["context_gap", "d_acc"]].mean().reset_index().dropna(subset=["context_gap"])


def context_table(logs: pd.DataFrame, design: Design) -> pd.DataFrame:
    per_run = late_context_gap(logs, design)
    table = (
        per_run.groupby(design.names)
        .agg(
            n_runs=("context_gap", "size"),
            context_gap_median=("context_gap", "median"),
            d_acc_median=("d_acc", "median"),
        )
        .reset_index()
    )
    return ordered(table, design, design.names)[[*design.names, *CONTEXT_COLUMNS]]


register_table(
    "context_gap",
    category="diagnostics",
    build=lambda evidence: context_table(evidence.logs, evidence.plan.design),
    note=lambda plan: (
        "Per cell: median over runs of each run's mean context gap (logits) and D accuracy over the second "
        "half of training."
    ),
)
