"""Run folders -> tidy tables: runs.csv (one row per run, step, extractor and metric) and train_logs.csv.

A run's cell (one label per axis) is read from its summary.json, never from its path. Axis labels are strings
everywhere, also where they look like numbers ("16"): every reader here passes them as str.

Nothing damaged is aggregated: metrics.csv must match the sha256 line evaluate wrote at its end, train_log.csv the
sha256 its summary.json records, and each run must have one numeric row per checkpoint, extractor and metric.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd

from ganablate import catalog
from ganablate.errors import UsageError
from ganablate.files import atomic_write_text, read_checked, read_digested, read_json_digested
from ganablate.study.config import checkpoint_steps

RUN_INFO = ["status", "steps_done", "plan_hash"]  # from summary.json, beside the dataset, the cell and the seed
# Also from summary.json, into run_times.csv beside runs.csv: the seconds a run's training loop took, resumed parts
# included (NaN where the summary has none), and how many seeds trained together in that loop (train.stack; 1
# alone). Measurements of the machine, not results: runs.csv stays the same bytes wherever the runs ran.
TIMING = ["wall_seconds", "stack_size"]
METRICS_COLUMNS = ["step", "extractor", "metric", "value"]
LOGGED = ["step", "d_acc", "context_gap"]  # the columns of train_log.csv the analysis reads
STATUSES = ("completed", "diverged")


def find_run_dirs(roots: list[str | Path]) -> list[Path]:
    """Every folder holding a summary.json under the given roots (a root may itself be one run)."""
    found: set[Path] = set()
    for root in map(Path, roots):
        if not root.is_dir():
            raise UsageError(f"--runs: {root} is not a directory")
        dirs = {p.parent.resolve() for p in root.rglob("summary.json")}
        if not dirs:
            raise UsageError(f"--runs: no run directory (one with summary.json) under {root}")
        found |= dirs
    return sorted(found)


def _read_csv(path: Path, text: str, required: list[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UsageError(f"{path}: cannot read ({type(exc).__name__})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise UsageError(f"{path}: missing columns {', '.join(missing)}")
    return frame


def _read_run(run_dir: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    path, retrain = run_dir / "summary.json", f"remove {run_dir}/ and train the run again"
    summary = read_json_digested(path, retrain)
    missing = [k for k in ("dataset", "cell", "seed", "status", "steps_done", "config", "sha256") if k not in summary]
    if missing:
        raise UsageError(f"{path}: missing keys {', '.join(missing)} (a run of an older ganablate? train it again)")
    if summary["status"] not in STATUSES:
        raise UsageError(f"{path}: status {summary['status']!r} is not final; allowed: {', '.join(STATUSES)}")
    run = {
        "dataset": summary["dataset"],
        **{k: str(v) for k, v in summary["cell"].items()},
        "seed": summary["seed"],
        "status": summary["status"],
        "steps_done": summary["steps_done"],
        "plan_hash": summary.get("plan_hash"),
        "wall_seconds": summary.get("wall_seconds", math.nan),
        "stack_size": len(summary.get("stack", [summary["seed"]])),
    }
    path = run_dir / "metrics.csv"
    rescore = f"remove it and score the run again (`ganablate evaluate --run {run_dir}`)"
    metrics = _read_csv(path, read_digested(path, rescore), METRICS_COLUMNS)
    # metrics.csv repeats the run's status; summary.json is the source of it.
    metrics = _numeric_rows(metrics, path, checkpoint_steps(summary["config"]["train"]), rescore)
    path = run_dir / "train_log.csv"
    log = _read_csv(path, read_checked(path, summary["sha256"].get("train_log.csv"), retrain), LOGGED)
    results = {k: v for k, v in run.items() if k not in TIMING}
    return run, metrics.drop(columns="status", errors="ignore").assign(**results), log.assign(**results)


def _numeric_rows(metrics: pd.DataFrame, path: Path, steps: list[int], remedy: str) -> pd.DataFrame:
    """metrics.csv's rows as evaluate writes them: a number (NaN where a diverged run never reached the checkpoint)
    for each of the run's checkpoints and registered metrics, once each; else one line naming the file."""
    values, step = (pd.to_numeric(metrics[c], errors="coerce") for c in ("value", "step"))
    for bad, what in (
        (metrics["value"].notna() & values.isna(), "value"),
        (step.isna() | (step != step.round()), "step"),
        (~metrics["metric"].isin(catalog.names("metrics")), "metric"),
    ):
        if bad.any():
            row = metrics[bad].iloc[0]
            raise UsageError(
                f"{path}: {what} {row[what]!r} (in the row of step {row['step']}, {row['extractor']} {row['metric']}) "
                f"is not {'a registered metric' if what == 'metric' else 'a number'}; {remedy}"
            )
    metrics = metrics.assign(value=values, step=step.astype(int))
    twice = metrics.duplicated(["step", "extractor", "metric"])
    if twice.any():
        row = metrics[twice].iloc[0]
        raise UsageError(f"{path}: two rows of step {row['step']}, {row['extractor']} {row['metric']}; {remedy}")
    if set(metrics["step"]) != set(steps):
        raise UsageError(
            f"{path}: rows of steps {', '.join(map(str, sorted(set(metrics['step']))))}, but the run's checkpoints "
            f"are at steps {', '.join(map(str, steps))}; {remedy}"
        )
    return metrics


def _check_complete(scored: list[tuple[Path, pd.DataFrame]]) -> None:
    """Every run has a row for each (extractor, metric) that any run has at the same kind of checkpoint: the final
    one, or an earlier one (where eval.final_only's metrics have none). A row lost from one run's file is named."""
    expected = {True: set(), False: set()}  # at the final checkpoint, at an earlier one
    for _, frame in scored:
        for step, rows in frame.groupby("step"):
            expected[step == frame["step"].max()] |= set(zip(rows["extractor"], rows["metric"]))
    for path, frame in scored:
        for step, rows in frame.groupby("step"):
            missing = sorted(expected[step == frame["step"].max()] - set(zip(rows["extractor"], rows["metric"])))
            if missing:
                raise UsageError(
                    f"{path}: no row of step {step}, {' '.join(missing[0])}, which other runs have at that checkpoint; "
                    f"remove it and score the run again (`ganablate evaluate --run {path.parent}`)"
                )


def aggregate(roots: list[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, train_logs): one tidy row per (run, step, extractor, metric), and per (run, logged step)."""
    return _collect(roots)[:2]


def _collect(roots: list[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(runs, train_logs, run_times): run_times one row per run."""
    metrics, logs, times, scored, seen, axes = [], [], [], [], {}, None
    for run_dir in find_run_dirs(roots):
        run, run_metrics, run_log = _read_run(run_dir)
        names = [k for k in run if k not in ("dataset", "seed", *RUN_INFO, *TIMING)]
        if axes is None:
            axes = names
        elif names != axes:
            raise UsageError(
                f"--runs: {run_dir} has axes {', '.join(names) or 'none'}, others {', '.join(axes)}: "
                "aggregate one study per folder"
            )
        key = tuple(run[k] for k in ["dataset", *axes, "seed"])
        if key in seen:
            raise UsageError(f"--runs: {run_dir} and {seen[key]} are the same run {key}")
        seen[key] = run_dir
        scored.append((run_dir / "metrics.csv", run_metrics))
        metrics.append(run_metrics)
        logs.append(run_log)
        times.append(run)
    _check_complete(scored)
    keys = ["dataset", *axes, "seed"]
    table = pd.concat(metrics, ignore_index=True)
    first = [*keys, *RUN_INFO, *METRICS_COLUMNS]
    table = table[first + [c for c in table.columns if c not in first]]
    log_table = pd.concat(logs, ignore_index=True)
    log_table = log_table[[*keys, *RUN_INFO] + [c for c in log_table.columns if c not in [*keys, *RUN_INFO]]]
    return (
        table.sort_values([*keys, "step", "extractor", "metric"], ignore_index=True),
        log_table.sort_values([*keys, "step"], ignore_index=True),
        pd.DataFrame(times)[[*keys, "steps_done", *TIMING]].sort_values(keys, ignore_index=True),
    )


def write_aggregate(roots: list[str | Path], out_dir: str | Path) -> list[Path]:
    runs, logs, times = _collect(roots)
    paths = [Path(out_dir) / name for name in ("runs.csv", "train_logs.csv", "run_times.csv")]
    for path, table in zip(paths, (runs, logs, times)):
        atomic_write_text(path, table.to_csv(index=False))
    return paths


# Columns that hold a level's label or an axis's name beside the axis columns themselves.
LABEL_COLUMNS = (
    *("declared", "axis", "level", "level_ref", "by_axis", "by_level", "by_level_ref"),
    *("feed_axis", "reference", "working", "broken", "repaired"),  # mechanism.csv's and remedies.csv's roles
)
# What pandas writes for a missing number; label columns keep every string (a level may be labelled "nan").
MISSING = ["", "NA", "NaN", "nan"]


def read_table(tables: str | Path, name: str, axes: list[str] = (), hint: str = "run `ganablate stats` first"):
    """name.csv with the axis and label columns as strings: a label such as "16" or "nan" stays itself."""
    path = Path(tables) / f"{name}.csv"
    if not path.is_file():
        raise UsageError(f"--tables: {path} not found ({hint})")
    columns = pd.read_csv(path, nrows=0).columns
    labels = [c for c in columns if c in axes or c in LABEL_COLUMNS]
    return pd.read_csv(
        path,
        dtype=dict.fromkeys(labels, str),
        keep_default_na=False,
        na_values={c: MISSING for c in columns if c not in labels},
    )


def load_runs(tables: str | Path, axes: list[str]) -> pd.DataFrame:
    """runs.csv of one dataset with the given axes, in a fixed row order (resamples and fits see the values in
    this order: fixing it makes the tables independent of the file's)."""
    runs = read_table(tables, "runs", axes, hint="run `ganablate aggregate` first")
    keys = ["dataset", *axes, "seed"]
    missing = [c for c in [*keys, *RUN_INFO, *METRICS_COLUMNS] if c not in runs.columns]
    if missing:
        raise UsageError(
            f"--tables: runs.csv lacks columns {', '.join(missing)} (are study.axes those the runs were trained with?)"
        )
    times = Path(tables) / "run_times.csv"
    if times.is_file():  # the machine's timings, beside the results (remedies.csv's cost per step reads them)
        runs = runs.merge(read_table(tables, "run_times", axes)[[*keys, *TIMING]], on=keys, how="left")
    else:
        runs = runs.assign(**dict.fromkeys(TIMING, math.nan))
    datasets = runs["dataset"].unique()
    if len(datasets) > 1:
        raise UsageError(
            f"--tables: runs.csv mixes datasets ({', '.join(sorted(datasets))}); aggregate one dataset per folder"
        )
    return runs.sort_values([*keys, "step", "extractor", "metric"], ignore_index=True)
