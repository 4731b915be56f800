"""Run directories -> tidy tables (runs.csv, train_logs.csv) -> the statistics tables of the study.

Every test and interval comes from scipy or statsmodels except three written here, which neither offers: the
interquartile mean, Fieller's interval for a ratio of paired means, and Holm's adjustment of many simulated
families at once (checked against statsmodels). Random draws (the IQM's bootstrap, the power simulations) are
seeded per group, so the same runs.csv always gives byte-identical tables whatever other groups it holds.
"""

from __future__ import annotations

import json
import math
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ganablate import vocab
from ganablate.config import UsageError, config_hash

# Which way is better, per compared metric; is_std and kid_std are the estimators' own spread: summarized, never compared.
BETTER = vocab.COMPARED
NAMES = {name: m.label for name, m in vocab.METRICS.items()}
METRICS = list(vocab.METRICS)
TESTS = vocab.TESTS
RUN_KEYS = ["dataset", "feed", "norm", "seed"]
RUN_INFO = [*RUN_KEYS, "status", "steps_done"]  # from summary.json
RUN_COLUMNS = [*RUN_INFO, "step", "extractor", "metric", "value"]
METRICS_COLUMNS = ["step", "extractor", "metric", "value"]
LOG_COLUMNS = ["step", "d_acc", "context_gap"]
STATUSES = ("completed", "diverged")
POWER = 0.8  # the power power.csv's seeds_needed aims at
BOOTSTRAP_BATCH = 1000  # bounds the bootstrap's memory; results depend on it, so it is fixed


# --- aggregation -------------------------------------------------------------------------------


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


def _read_csv(path: Path, required: list[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UsageError(f"{path}: cannot read ({type(exc).__name__})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise UsageError(f"{path}: missing columns {', '.join(missing)}")
    return frame


def _read_run(run_dir: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    path = run_dir / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: cannot read ({type(exc).__name__})") from None
    missing = [k for k in RUN_INFO if k not in summary]
    if missing:
        raise UsageError(f"{path}: missing keys {', '.join(missing)}")
    if summary["status"] not in STATUSES:
        raise UsageError(f"{path}: status {summary['status']!r} is not final; allowed: {', '.join(STATUSES)}")
    run = {k: summary[k] for k in RUN_INFO}
    metrics = _read_csv(run_dir / "metrics.csv", METRICS_COLUMNS)
    # metrics.csv repeats the run's status; summary.json is the source of it.
    metrics = metrics.drop(columns="status", errors="ignore")
    log = _read_csv(run_dir / "train_log.csv", LOG_COLUMNS)
    return run, metrics.assign(**run), log.assign(**run)


def aggregate(roots: list[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, train_logs): one tidy row per (run, step, extractor, metric), and per (run, logged step)."""
    metrics, logs, seen = [], [], {}
    for run_dir in find_run_dirs(roots):
        run, run_metrics, run_log = _read_run(run_dir)
        key = tuple(run[k] for k in RUN_KEYS)
        if key in seen:
            raise UsageError(f"--runs: {run_dir} and {seen[key]} are the same run {key}")
        seen[key] = run_dir
        metrics.append(run_metrics)
        logs.append(run_log)
    table = pd.concat(metrics, ignore_index=True)
    table = table[RUN_COLUMNS + [c for c in table.columns if c not in RUN_COLUMNS]]
    log_table = pd.concat(logs, ignore_index=True)
    log_table = log_table[RUN_INFO + [c for c in log_table.columns if c not in RUN_INFO]]
    return (table.sort_values(RUN_KEYS + ["step", "extractor", "metric"], ignore_index=True),
            log_table.sort_values(RUN_KEYS + ["step"], ignore_index=True))


def write_aggregate(roots: list[str | Path], out_dir: str | Path) -> list[Path]:
    runs, logs = aggregate(roots)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs.to_csv(out_dir / "runs.csv", index=False)
    logs.to_csv(out_dir / "train_logs.csv", index=False)
    return [out_dir / "runs.csv", out_dir / "train_logs.csv"]


# --- inputs of the statistics ------------------------------------------------------------------


def read_table(tables: str | Path, name: str, hint: str = "run `ganablate stats` first") -> pd.DataFrame:
    path = Path(tables) / f"{name}.csv"
    if not path.is_file():
        raise UsageError(f"--tables: {path} not found ({hint})")
    return pd.read_csv(path)


def load_runs(tables: str | Path) -> pd.DataFrame:
    runs = read_table(tables, "runs", hint="run `ganablate aggregate` first")
    missing = [c for c in RUN_COLUMNS if c not in runs.columns]
    if missing:
        raise UsageError(f"--tables: runs.csv lacks columns {', '.join(missing)}")
    datasets = runs["dataset"].unique()
    if len(datasets) > 1:
        raise UsageError(f"--tables: runs.csv mixes datasets ({', '.join(sorted(datasets))}); "
                         "aggregate one dataset per folder")
    # Resamples and least squares see the values in this order: fixing it makes the tables independent of the file's.
    return runs.sort_values(RUN_KEYS + ["step", "extractor", "metric"], ignore_index=True)


def final_step(runs: pd.DataFrame, stats_cfg: dict) -> int:
    primary = runs[(runs["metric"] == stats_cfg["primary_metric"]) & (runs["extractor"] == stats_cfg["primary_extractor"])]
    if primary.empty:
        raise UsageError(
            f"runs.csv has no {stats_cfg['primary_metric']} on the {stats_cfg['primary_extractor']} extractor; "
            f"set stats.primary_metric / stats.primary_extractor to one it has"
        )
    return int(primary["step"].max())


def ordered(frame: pd.DataFrame, config: dict, by: list[str]) -> pd.DataFrame:
    """Sort feeds and norms in the config's order (then any others alphabetically), metrics as in METRICS."""
    feeds = config["study"]["feeds"]
    orders = {"feed": feeds, "feed_ref": feeds, "norm": config["study"]["norms"], "metric": METRICS}

    def key(column: pd.Series):
        if column.name not in orders:
            return column
        order = orders[column.name]
        return column.map(lambda v: (order.index(v), "") if v in order else (len(order), str(v)))

    return frame.sort_values(by, key=key, ignore_index=True, kind="stable")


def usable(runs: pd.DataFrame) -> pd.Series:
    """Rows that enter means and tests: completed runs with a finite value. Diverged runs never do."""
    return (runs["status"] == "completed") & np.isfinite(runs["value"].astype(float))


def run_outcomes(runs: pd.DataFrame, config: dict) -> pd.DataFrame:
    """One row per run: its primary metric at the final step and why it failed ('' when it did not)."""
    cfg = config["stats"]
    metric, step, threshold = cfg["primary_metric"], final_step(runs, cfg), cfg["failure_threshold"]
    primary = runs[(runs["metric"] == metric) & (runs["extractor"] == cfg["primary_extractor"]) & (runs["step"] == step)]
    each = runs[RUN_INFO].drop_duplicates(RUN_KEYS)
    out = each.merge(primary[RUN_KEYS + ["value"]], on=RUN_KEYS, how="left")
    value = out["value"].astype(float)
    beyond = pd.Series(False, index=out.index)
    if threshold is not None:
        beyond = value > threshold if BETTER[metric] == "lower" else value < threshold
    out["failure"] = np.select(
        [out["status"] == "diverged", ~np.isfinite(value), beyond], ["diverged", "no value", "beyond threshold"], ""
    )
    return ordered(out, config, ["feed", "norm", "seed"])


def failure_rule(config: dict) -> str:
    cfg = config["stats"]
    rule = "a run fails when it diverged (non-finite loss) or has no value for the primary metric at the final step"
    if cfg["failure_threshold"] is not None:
        worse = ">" if BETTER[cfg["primary_metric"]] == "lower" else "<"
        rule += f", or when its {NAMES[cfg['primary_metric']]} there is {worse} {cfg['failure_threshold']:g}"
    return rule


# --- the analysis plan ---------------------------------------------------------------------------

DIVERGED_RULE = ("a diverged run ranks worst in the rank tests (Wilcoxon, Mann-Whitney, P(improvement)) and leaves "
                 "its seed pair out of the paired t-test, the TOST and the ratio; a run without a value is left out")


def alpha_of(cfg: dict) -> float:
    return round(1 - cfg["confidence_level"], 10)


def analysis_plan(config: dict, runs: pd.DataFrame) -> dict:
    """What the study declared before looking: written into every table's note and atop findings.md."""
    cfg = config["stats"]
    return {
        "primary_metric": cfg["primary_metric"], "secondary_metric": cfg["secondary_metric"],
        "extractor": cfg["primary_extractor"], "final_step": final_step(runs, cfg), "test": cfg["test"],
        "reference_feed": cfg["reference_feed"],
        "confirmatory": [f"{c['norm']}: {c['feed']} vs {c['feed_ref']}" for c in cfg["confirmatory"]],
        "equivalence_margin": cfg["equivalence_margin"], "smallest_effect": cfg["smallest_effect"],
        "alpha": alpha_of(cfg), "diverged_runs": DIVERGED_RULE,
    }


def plan_line(plan: dict) -> str:
    return f"analysis plan {config_hash(plan)[:8]}"


# --- statistics written here --------------------------------------------------------------------


def iqm(x, axis: int = -1):
    """Interquartile mean: the mean after cutting floor(n/4) values from each end (rliable's definition)."""
    x = np.sort(np.asarray(x, dtype=float), axis=axis)
    n = x.shape[axis]
    return np.take(x, np.arange(n // 4, n - n // 4), axis=axis).mean(axis=axis)


def group_rng(seed: int, key: tuple) -> np.random.Generator:
    # A group's random draws depend on its key only, not on which other groups the table holds.
    return np.random.default_rng([seed, zlib.crc32("/".join(map(str, key)).encode())])


def bootstrap_ci(samples: tuple, statistic, cfg: dict, key: tuple) -> tuple[float, float]:
    """BCa, or percentile where BCa is undefined; only for the IQM, which has no exact interval."""
    if any(len(s) < 2 for s in samples):
        return math.nan, math.nan
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BCa's degenerate-data warning is acted on below
            ci = stats.bootstrap(
                samples, statistic, n_resamples=cfg["bootstrap_resamples"], confidence_level=cfg["confidence_level"],
                method=method, vectorized=True, batch=BOOTSTRAP_BATCH, rng=group_rng(cfg["seed"], key),
            ).confidence_interval
        if np.isfinite(ci.low) and np.isfinite(ci.high):
            return float(ci.low), float(ci.high)
    return math.nan, math.nan


def mean_interval(x, level: float) -> tuple[float, float]:
    """Student-t interval of the mean (exact coverage for normal data at any n >= 2)."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    if np.ptp(x) == 0:
        return float(x[0]), float(x[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's precision warning for nearly identical values: the CI is still right
        ci = stats.ttest_1samp(x, 0.0).confidence_interval(level)
    return float(ci.low), float(ci.high)


def median_interval(x, level: float) -> tuple[float, float]:
    """Distribution-free interval of the median from order statistics (scipy's quantile_test); NaN where the
    sample is too small to reach the level (n = 5 reaches 94%, so 95% needs n >= 6)."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    ci = stats.quantile_test(x, q=float(np.median(x)), p=0.5).confidence_interval(level)
    low, high = float(ci.low), float(ci.high)
    return (low, high) if np.isfinite(low) and np.isfinite(high) else (math.nan, math.nan)


def paired_interval(d, level: float) -> tuple[float, float]:
    """Paired-t interval of the mean of the per-seed differences d."""
    return mean_interval(d, level)


def wilson_interval(count: float, n: int, level: float) -> tuple[float, float]:
    """Wilson's interval of a proportion count / n (statsmodels), exactly 0 (or 1) at none (or all): the formula
    leaves float dust there."""
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(count, n, alpha=1 - level, method="wilson")
    return (0.0 if count == 0 else float(low)), (1.0 if count == n else float(high))


def fieller_interval(a, b, level: float) -> tuple[float, float]:
    """Fieller's interval for mean(a) / mean(b) of paired samples (neither scipy nor statsmodels has it).
    NaN when mean(b) is not distinguishable from 0 at this level: the interval is then unbounded."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(a)
    if n < 2:
        return math.nan, math.nan
    cov = np.cov(a, b, ddof=1) / n  # covariance matrix of the two means
    t2 = stats.t.ppf(0.5 + level / 2, n - 1) ** 2
    ma, mb = a.mean(), b.mean()
    qa, qb, qc = mb * mb - t2 * cov[1, 1], ma * mb - t2 * cov[0, 1], ma * ma - t2 * cov[0, 0]
    disc = qb * qb - qa * qc
    if qa <= 0 or disc < 0:
        return math.nan, math.nan
    root = math.sqrt(disc)
    return (qb - root) / qa, (qb + root) / qa


# --- tables ------------------------------------------------------------------------------------

GROUP = ["feed", "norm", "step", "extractor", "metric"]
SUMMARY_COLUMNS = [*GROUP, "n", "n_failed", "mean", "sd", "mean_ci_low", "mean_ci_high", "median", "median_ci_low",
                   "median_ci_high", "gmean", "gmean_ci_low", "gmean_ci_high", "iqm", "iqm_ci_low", "iqm_ci_high",
                   "min", "max", "note"]


def summary_table(runs: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Per feed, norm, step, extractor and metric: location and spread of the usable runs, with intervals."""
    cfg, ok, rows = config["stats"], usable(runs), []
    level = cfg["confidence_level"]
    for key, group in runs.groupby(GROUP, sort=False):
        x = group.loc[ok[group.index], "value"].to_numpy(float)
        n = len(x)
        row = dict(zip(GROUP, key)) | {
            "n": n, "n_failed": len(group) - n,
            "mean": x.mean() if n else math.nan, "sd": x.std(ddof=1) if n > 1 else math.nan,
            "median": np.median(x) if n else math.nan, "iqm": iqm(x) if n else math.nan,
            "min": x.min() if n else math.nan, "max": x.max() if n else math.nan,
        }
        row["mean_ci_low"], row["mean_ci_high"] = mean_interval(x, level)
        row["median_ci_low"], row["median_ci_high"] = median_interval(x, level)
        positive = n and (x > 0).all()
        row["gmean"] = math.exp(np.log(x).mean()) if positive else math.nan
        low, high = mean_interval(np.log(x), level) if positive else (math.nan, math.nan)
        row["gmean_ci_low"], row["gmean_ci_high"] = math.exp(low), math.exp(high)
        row["iqm_ci_low"], row["iqm_ci_high"] = bootstrap_ci((x,), iqm, cfg, ("iqm", *key))
        notes = []
        if n < 2:
            notes.append(f"{n} usable run(s): no CI")
        elif not np.isfinite(row["median_ci_low"]):
            notes.append(f"{n} runs cannot give a {level:.0%} order-statistic interval of the median")
        row["note"] = "; ".join(notes)
        rows.append(row)
    return ordered(pd.DataFrame(rows, columns=SUMMARY_COLUMNS), config, GROUP)


P_COLUMNS = ["p_paired_t_unadj", "p_wilcoxon_unadj", "p_mwu_unadj", "p_welch_unadj"]
EFFECT_COLUMNS = [
    "norm", "step", "extractor", "metric", "feed_ref", "feed", "role", "better", "scale", "n_ref", "n", "n_pairs",
    "n_pairs_failed", "median_ref", "median", "ratio", "ratio_ci_low", "ratio_ci_high", "within_seed_r",
    "delta_mean", "delta_ci_low", "delta_ci_high", "p_improve", "p_improve_ci_low", "p_improve_ci_high",
    *P_COLUMNS, "p_holm", "p_holm_equivalence_family", "p_equivalence", "verdict", "note",
]


def comparisons(config: dict, feeds) -> list[tuple[str, str]]:
    """(feed_ref, feed) pairs compared within every norm: each feed against the reference, the pairs the
    confirmatory family names, and always joint_consistent against joint (the mechanism, tested directly)."""
    cfg = config["stats"]
    pairs = [(cfg["reference_feed"], f) for f in feeds if f != cfg["reference_feed"]]
    pairs += [(c["feed_ref"], c["feed"]) for c in cfg["confirmatory"]]
    pairs.append(("joint", "joint_consistent"))
    return [p for p in dict.fromkeys(pairs) if p[0] in feeds and p[1] in feeds and p[0] != p[1]]


def _transform(values: np.ndarray, scale: str) -> np.ndarray:
    return np.log(values) if scale == "log" else values


def _compare(ref: pd.DataFrame, new: pd.DataFrame, better: str, cfg: dict) -> dict:
    """One feed against feed_ref. `ref`/`new`: per seed, `value` and `diverged` (bool), usable or diverged runs."""
    level, margin = cfg["confidence_level"], cfg["equivalence_margin"]
    ok_ref, ok_new = ref[~ref["diverged"]], new[~new["diverged"]]
    x_ref, x = ok_ref["value"].to_numpy(float), ok_new["value"].to_numpy(float)
    scale = "log" if (x_ref > 0).all() and (x > 0).all() else "identity"
    seeds = ok_ref.index.intersection(ok_new.index)
    ranked = ref.index.intersection(new.index)
    out = dict.fromkeys(EFFECT_COLUMNS[EFFECT_COLUMNS.index("ratio"):-1], math.nan) | {
        "scale": scale, "n_ref": len(x_ref), "n": len(x), "n_pairs": len(seeds),
        "n_pairs_failed": len(ranked) - len(seeds),
        "median_ref": np.median(x_ref) if len(x_ref) else math.nan, "median": np.median(x) if len(x) else math.nan,
    }
    notes = []
    worst = math.inf if better == "lower" else -math.inf

    def ranked_values(frame: pd.DataFrame) -> np.ndarray:  # diverged runs rank worst (the declared rule)
        values = _transform(frame["value"].where(~frame["diverged"], 1.0).to_numpy(float), scale)
        return np.where(frame["diverged"].to_numpy(), worst, values)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant samples give NaN statistics, which is what the table should show
        if len(seeds) >= 2:
            a, b = _transform(ok_new.loc[seeds, "value"].to_numpy(float), scale), _transform(
                ok_ref.loc[seeds, "value"].to_numpy(float), scale)
            d = a - b
            out["p_paired_t_unadj"] = stats.ttest_rel(a, b).pvalue if np.ptp(d) > 0 else math.nan
            raw = ok_new.loc[seeds, "value"].to_numpy(float) - ok_ref.loc[seeds, "value"].to_numpy(float)
            out["delta_mean"] = raw.mean()
            out["delta_ci_low"], out["delta_ci_high"] = paired_interval(raw, level)
            if len(seeds) >= 3 and np.ptp(a) > 0 and np.ptp(b) > 0:
                out["within_seed_r"] = stats.pearsonr(a, b).statistic
            if scale == "log":
                from statsmodels.stats.weightstats import ttost_paired

                low, high = paired_interval(d, level)
                out["ratio"], out["ratio_ci_low"], out["ratio_ci_high"] = math.exp(d.mean()), math.exp(low), math.exp(high)
                out["p_equivalence"] = float(ttost_paired(np.exp(a), np.exp(b), 1 / (1 + margin), 1 + margin,
                                                          transform=np.log)[0])
            else:
                notes.append("non-positive values: no ratio, no equivalence test")
        else:
            notes.append(f"{len(seeds)} usable seed pair(s): no paired test or interval")
        if len(ranked) >= 1:
            r_new, r_ref = ranked_values(new.loc[ranked]), ranked_values(ref.loc[ranked])
            wins = (r_new < r_ref) if better == "lower" else (r_new > r_ref)
            share = float((wins + 0.5 * (r_new == r_ref)).mean())
            low, high = wilson_interval(share * len(ranked), len(ranked), level)
            out["p_improve"], out["p_improve_ci_low"], out["p_improve_ci_high"] = share, low, high
            diff = r_new - r_ref
            diff = np.where(np.isnan(diff), 0.0, diff)  # both diverged: a tie
            if len(ranked) >= 2 and np.any(diff != 0):
                out["p_wilcoxon_unadj"] = stats.wilcoxon(diff).pvalue
        if min(len(ref), len(new)) >= 2:
            out["p_mwu_unadj"] = stats.mannwhitneyu(ranked_values(new), ranked_values(ref),
                                                    alternative="two-sided").pvalue
        if min(len(x_ref), len(x)) >= 2:
            out["p_welch_unadj"] = stats.ttest_ind(_transform(x, scale), _transform(x_ref, scale),
                                                   equal_var=False).pvalue
    out["note"] = "; ".join(notes)
    return out


def _per_seed(frame: pd.DataFrame) -> pd.DataFrame:
    """value and diverged per seed, for runs that are usable or diverged (runs with no value otherwise drop out)."""
    diverged = frame["status"] == "diverged"
    keep = diverged | (frame["status"] == "completed") & np.isfinite(frame["value"].astype(float))
    return pd.DataFrame({"value": frame["value"].astype(float), "diverged": diverged}).set_index(frame["seed"])[
        keep.to_numpy()]


def role_of(cfg: dict, step_final: int, norm: str, step: int, extractor: str, metric: str, feed_ref: str,
            feed: str) -> str:
    if (metric, extractor, step) != (cfg["primary_metric"], cfg["primary_extractor"], step_final):
        return "exploratory"
    confirmatory = {(c["norm"], c["feed_ref"], c["feed"]) for c in cfg["confirmatory"]}
    return "confirmatory" if (norm, feed_ref, feed) in confirmatory else "equivalence"


def feed_effects_table(runs: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Every comparison (`comparisons`) per norm, step, extractor and compared metric, with its verdict."""
    cfg = config["stats"]
    step_final = final_step(runs, cfg)
    rows = []
    for (norm, step, extractor, metric), group in runs[runs["metric"].isin(list(BETTER))].groupby(
            ["norm", "step", "extractor", "metric"], sort=False):
        feeds = list(group["feed"].unique())
        for feed_ref, feed in comparisons(config, feeds):
            key = {"norm": norm, "step": step, "extractor": extractor, "metric": metric, "feed_ref": feed_ref,
                   "feed": feed, "better": BETTER[metric],
                   "role": role_of(cfg, step_final, norm, step, extractor, metric, feed_ref, feed)}
            rows.append(key | _compare(_per_seed(group[group["feed"] == feed_ref]),
                                       _per_seed(group[group["feed"] == feed]), BETTER[metric], cfg))
    table = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    if table.empty:
        return table
    table = ordered(table, config, ["norm", "step", "extractor", "metric", "feed_ref", "feed"])
    primary = TESTS[cfg["test"]][0]
    table["p_holm"] = _holm(table, table["role"] == "confirmatory", primary)
    table["p_holm_equivalence_family"] = _holm(table, table["role"] == "equivalence", primary)
    table["verdict"] = verdicts(table, cfg)
    return table


def verdicts(table: pd.DataFrame, cfg: dict) -> pd.Series:
    """better / worse / equivalent / inconclusive, for `feed` against `feed_ref` on the metric's own direction.
    A difference is called at alpha on the Holm-adjusted primary p (its family's), unadjusted for exploratory
    rows; equivalence when the paired TOST's p < alpha. Confirmatory and exploratory rows ask first for a
    difference; equivalence rows (the negative controls) first for equivalence."""
    alpha, primary = alpha_of(cfg), TESTS[cfg["test"]][0]
    p_diff = np.select([table["role"] == "confirmatory", table["role"] == "equivalence"],
                       [table["p_holm"], table["p_holm_equivalence_family"]], table[primary]).astype(float)
    higher = np.where(np.isfinite(table["ratio"]), table["ratio"] > 1, table["median"] > table["median_ref"])
    direction = np.where(higher == (table["better"] == "higher"), "better", "worse")
    differs, equivalent = p_diff < alpha, table["p_equivalence"].astype(float) < alpha
    first_equivalence = table["role"] == "equivalence"
    return pd.Series(np.select(
        [first_equivalence & equivalent, differs, equivalent], ["equivalent", direction, "equivalent"],
        "inconclusive"), index=table.index)


def _holm(table: pd.DataFrame, family: pd.Series, column: str) -> pd.Series:
    from statsmodels.stats.multitest import multipletests

    adjusted = pd.Series(math.nan, index=table.index)
    tested = family & np.isfinite(table[column].astype(float))
    if tested.any():
        adjusted[tested] = multipletests(table.loc[tested, column].astype(float), method="holm")[1]
    return adjusted


def primary_family(table: pd.DataFrame, cfg: dict, step: int) -> pd.Series:
    """Rows of the primary metric and extractor at the final step: the confirmatory and equivalence rows."""
    return (table["metric"] == cfg["primary_metric"]) & (table["extractor"] == cfg["primary_extractor"]) & (
        table["step"] == step)


def primary_values(runs: pd.DataFrame, cfg: dict, step: int) -> pd.DataFrame:
    return runs[usable(runs) & (runs["metric"] == cfg["primary_metric"]) &
                (runs["extractor"] == cfg["primary_extractor"]) & (runs["step"] == step)]


INTERACTION_COLUMNS = ["term", "sum_sq", "df", "F", "p", "partial_eta_sq", "metric", "extractor", "step", "transform",
                       "n_runs", "excluded_norms", "note"]


def _balanced(data: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    # Type-3 tests need every cell filled, and HC3 is undefined for a one-run cell (leverage 1): a norm with
    # fewer than two usable runs in some feed leaves the model, and the table says so.
    counts = data.groupby(["norm", "feed"]).size().unstack(fill_value=0)
    excluded = sorted(counts.index[(counts < 2).any(axis=1)]) if len(counts) else []
    return data[~data["norm"].isin(excluded)], excluded


def interaction_table(runs: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Two-way ANOVA feed x norm (OLS, type 3, sum-to-zero contrasts, HC3) on the log primary metric at the final
    step: the unpaired sensitivity analysis beside the mixed model."""
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    cfg = config["stats"]
    step = final_step(runs, cfg)
    data, excluded = _balanced(primary_values(runs, cfg, step))
    transform = "log" if (data["value"] > 0).all() else "identity"
    base = {"metric": cfg["primary_metric"], "extractor": cfg["primary_extractor"], "step": step,
            "transform": transform, "n_runs": len(data), "excluded_norms": " ".join(excluded)}
    if data["feed"].nunique() < 2 or data["norm"].nunique() < 2:
        return pd.DataFrame([base | {"note": "needs two feeds and two norms with at least two usable runs each"}],
                            columns=INTERACTION_COLUMNS)
    data = data.assign(y=np.log(data["value"]) if transform == "log" else data["value"])
    model = smf.ols("y ~ C(feed, Sum) * C(norm, Sum)", data=data).fit()
    if model.df_resid < 1:
        return pd.DataFrame([base | {"note": "no residual degrees of freedom"}], columns=INTERACTION_COLUMNS)
    anova = sm.stats.anova_lm(model, typ=3, robust="hc3").drop(index="Intercept")
    # With robust errors anova_lm backs sum_sq out of the Wald F, so this is F*df / (F*df + df_resid).
    residual = anova.loc["Residual", "sum_sq"]
    table = pd.DataFrame({
        "term": ["feed", "norm", "feed:norm", "Residual"],
        "sum_sq": anova["sum_sq"].to_numpy(), "df": anova["df"].to_numpy(), "F": anova["F"].to_numpy(),
        "p": anova["PR(>F)"].to_numpy(), "partial_eta_sq": (anova["sum_sq"] / (anova["sum_sq"] + residual)).to_numpy(),
    })
    table.loc[table["term"] == "Residual", "partial_eta_sq"] = math.nan
    note = "" if transform == "log" else "non-positive values: analysed untransformed"
    return table.assign(**base, note=note)[INTERACTION_COLUMNS]


MIXED_COLUMNS = ["term", "chi2", "df", "p", "metric", "extractor", "step", "transform", "n_runs", "n_seeds",
                 "var_seed", "var_seed_norm", "var_residual", "icc_seed", "converged", "note"]


def mixed_table(runs: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Linear mixed model log(metric) ~ feed * norm, random intercepts per seed and per seed x norm (a seed fixes
    G's init, the data order and z for every norm; D's init per seed and norm): Wald chi2 tests per term."""
    import statsmodels.formula.api as smf

    cfg = config["stats"]
    step = final_step(runs, cfg)
    data, excluded = _balanced(primary_values(runs, cfg, step))
    transform = "log" if (data["value"] > 0).all() else "identity"
    base = {"metric": cfg["primary_metric"], "extractor": cfg["primary_extractor"], "step": step,
            "transform": transform, "n_runs": len(data), "n_seeds": data["seed"].nunique()}
    if data["feed"].nunique() < 2 or data["norm"].nunique() < 2 or data["seed"].nunique() < 3:
        return pd.DataFrame([base | {"note": "needs two feeds, two norms and three seeds with usable runs"}],
                            columns=MIXED_COLUMNS)
    data = data.assign(y=np.log(data["value"]) if transform == "log" else data["value"])
    model = smf.mixedlm("y ~ C(feed, Sum) * C(norm, Sum)", data, groups="seed", re_formula="1",
                        vc_formula={"seed_norm": "0 + C(norm)"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and boundary warnings: reported in the table instead
        fit = model.fit(reml=True)
        terms = fit.wald_test_terms(scalar=True).summary_frame().drop(index="Intercept")
    var_seed, var_seed_norm, var_res = float(fit.cov_re.iloc[0, 0]), float(fit.vcomp[0]), float(fit.scale)
    names = {"C(feed, Sum)": "feed", "C(norm, Sum)": "norm", "C(feed, Sum):C(norm, Sum)": "feed:norm"}
    notes = [f"norms left out for too few runs: {' '.join(excluded)}"] if excluded else []
    if not fit.converged:
        notes.append("the REML fit did not converge: read with care")
    return pd.DataFrame({
        "term": [names[t] for t in terms.index], "chi2": terms["chi2"].to_numpy(float),
        "df": terms["df constraint"].to_numpy(int), "p": terms["P>chi2"].to_numpy(float),
    }).assign(**base, var_seed=var_seed, var_seed_norm=var_seed_norm, var_residual=var_res,
              icc_seed=var_seed / (var_seed + var_seed_norm + var_res), converged=bool(fit.converged),
              note="; ".join(notes))[MIXED_COLUMNS]


GAP_ZERO = 1e-4  # logits; per-sample norms give a context gap of float rounding (< 1e-5, tests/test_train.py)
CONTEXT_COLUMNS = ["feed", "norm", "n_runs", "context_gap_median", "d_acc_median"]
MECHANISM_COLUMNS = [
    "norm", "metric", "extractor", "step", "feed_ref", "n_pairs", "log_ratio_joint", "log_ratio_consistent",
    "recovered", "recovered_ci_low", "recovered_ci_high", "gap_slope", "gap_slope_ci_low", "gap_slope_ci_high",
    "gap_p_unadj", "gap_n_runs", "recovered_note", "gap_note",
]


def late_context_gap(logs: pd.DataFrame) -> pd.DataFrame:
    """Per run: the mean context gap and D accuracy over the second half of training, where D has settled."""
    late = logs[logs["step"] > logs.groupby(RUN_KEYS)["step"].transform("max") / 2]
    return late.groupby(RUN_KEYS)[["context_gap", "d_acc"]].mean().reset_index().dropna(subset=["context_gap"])


def context_table(logs: pd.DataFrame, config: dict) -> pd.DataFrame:
    per_run = late_context_gap(logs)
    table = per_run.groupby(["feed", "norm"]).agg(
        n_runs=("context_gap", "size"), context_gap_median=("context_gap", "median"),
        d_acc_median=("d_acc", "median")).reset_index()
    return ordered(table, config, ["norm", "feed"])[CONTEXT_COLUMNS]


def mechanism_table(runs: pd.DataFrame, logs: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Per norm and step: the share of the joint-vs-reference gap (log scale, paired by seed) that joint_consistent recovers,
    with Fieller's interval; and the association of the context gap with the log metric within feeds
    (OLS log metric ~ gap + feed, final step), never pooled across feeds, where the feed effect would masquerade as it."""
    import statsmodels.formula.api as smf

    cfg = config["stats"]
    final, ref, level = final_step(runs, cfg), cfg["reference_feed"], cfg["confidence_level"]
    gaps = late_context_gap(logs)
    rows = []
    steps = sorted(runs.loc[(runs["metric"] == cfg["primary_metric"]) & (runs["extractor"] == cfg["primary_extractor"]),
                            "step"].unique())
    values = pd.concat([primary_values(runs, cfg, s) for s in steps])
    for (norm, step), here in ordered(values, config, ["norm", "step"]).groupby(["norm", "step"], sort=False):
        wide = here.pivot(index="seed", columns="feed", values="value")
        row = dict.fromkeys(MECHANISM_COLUMNS, math.nan) | {
            "norm": norm, "metric": cfg["primary_metric"], "extractor": cfg["primary_extractor"], "step": step,
            "feed_ref": ref, "recovered_note": "", "gap_note": ""}
        needed = [ref, "joint", "joint_consistent"]
        pairs = wide[needed].dropna() if set(needed) <= set(wide.columns) else None
        if pairs is not None and ref not in ("joint", "joint_consistent") and (pairs > 0).all().all():
            row["n_pairs"] = len(pairs)
            a = np.log(pairs["joint_consistent"] / pairs[ref]).to_numpy()
            b = np.log(pairs["joint"] / pairs[ref]).to_numpy()
            row["log_ratio_joint"], row["log_ratio_consistent"] = (b.mean(), a.mean()) if len(pairs) else (
                math.nan, math.nan)
            low, high = fieller_interval(a, b, level) if len(pairs) >= 2 else (math.nan, math.nan)
            if np.isfinite(low):
                row["recovered"] = 1 - a.mean() / b.mean()
                row["recovered_ci_low"], row["recovered_ci_high"] = 1 - high, 1 - low
            else:  # a share of a gap that may be 0 is undefined: Fieller's interval is unbounded then
                row["recovered_note"] = f"joint's gap to {ref} is not distinguishable from 0: no share to recover"
        else:
            row["recovered_note"] = f"needs {ref}, joint and joint_consistent runs with positive values"
        # The context gap is a late-training average: related to the metric at the final step only.
        both = here.merge(gaps[RUN_KEYS + ["context_gap"]], on=RUN_KEYS) if step == final else here.iloc[:0]
        row["gap_n_runs"] = len(both)
        spread = both.groupby("feed")["context_gap"].agg(np.ptp) if len(both) else pd.Series(dtype=float)
        if step != final:
            pass
        elif len(both) and both["context_gap"].abs().max() < GAP_ZERO:
            row["gap_note"] = "no context gap (a per-sample D): nothing to relate"
        elif len(both) < both["feed"].nunique() + 3 or not (spread > 0).any() or not (both["value"] > 0).all():
            row["gap_note"] = "too few runs, or no gap variation within a feed, to relate the gap to the metric"
        else:
            fit = smf.ols("np.log(value) ~ context_gap + C(feed)", data=both).fit()
            row["gap_slope"], row["gap_p_unadj"] = fit.params["context_gap"], fit.pvalues["context_gap"]
            row["gap_slope_ci_low"], row["gap_slope_ci_high"] = fit.conf_int(1 - level).loc["context_gap"]
        rows.append(row)
    return pd.DataFrame(rows, columns=MECHANISM_COLUMNS)


TREND_COLUMNS = ["norm", "metric", "extractor", "feed_ref", "feed", "n_pairs", "first_step", "last_step",
                 "ratio_first", "ratio_last", "slope_per_1000", "slope_ci_low", "slope_ci_high", "p_slope_unadj",
                 "trend", "note"]


def trend_table(runs: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Does a gap close, stay or widen with training? Per comparison of the primary metric: each seed's OLS slope
    of log(feed / feed_ref) over the checkpoints, and a t interval of the mean slope over seeds (paired by seed,
    one slope per seed, so checkpoints of one run are not taken as independent). trend: 'widens' when the slope
    moves the log ratio away from 0 (the final gap's sign) with its CI excluding 0, 'closes' when toward 0,
    'no detectable change' otherwise."""
    cfg = config["stats"]
    level, alpha = cfg["confidence_level"], alpha_of(cfg)
    data = runs[usable(runs) & (runs["metric"] == cfg["primary_metric"]) &
                (runs["extractor"] == cfg["primary_extractor"])]
    rows = []
    for norm, here in ordered(data, config, ["norm"]).groupby("norm", sort=False):
        wide = here.pivot_table(index=["seed", "step"], columns="feed", values="value")
        steps = sorted(here["step"].unique())
        for feed_ref, feed in comparisons(config, list(wide.columns)):
            row = dict.fromkeys(TREND_COLUMNS, math.nan) | {
                "norm": norm, "metric": cfg["primary_metric"], "extractor": cfg["primary_extractor"],
                "feed_ref": feed_ref, "feed": feed, "first_step": steps[0], "last_step": steps[-1], "note": ""}
            ratio = np.log(wide[feed] / wide[feed_ref]).dropna().unstack("step").reindex(columns=steps).dropna()
            row["n_pairs"] = len(ratio)
            if len(steps) < 2 or len(ratio) < 2 or not (wide[[feed, feed_ref]].dropna() > 0).all().all():
                row["note"], row["trend"] = "needs 2 checkpoints, 2 complete seed pairs and positive values", ""
                rows.append(row)
                continue
            row["ratio_first"], row["ratio_last"] = np.exp(ratio[steps[0]].mean()), np.exp(ratio[steps[-1]].mean())
            x = np.asarray(steps, dtype=float) / 1000
            slopes = np.array([stats.linregress(x, r).slope for r in ratio.to_numpy()])
            row["slope_per_1000"] = slopes.mean()
            row["slope_ci_low"], row["slope_ci_high"] = mean_interval(slopes, level)
            row["p_slope_unadj"] = stats.ttest_1samp(slopes, 0.0).pvalue if np.ptp(slopes) > 0 else math.nan
            toward_zero = np.sign(row["slope_per_1000"]) != np.sign(ratio[steps[-1]].mean())
            moved = row["slope_ci_low"] > 0 or row["slope_ci_high"] < 0
            row["trend"] = ("closes" if toward_zero else "widens") if moved else "no detectable change"
            rows.append(row)
    return pd.DataFrame(rows, columns=TREND_COLUMNS)


def failures_table(runs: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Failure rate per variant with a Wilson CI; Fisher's exact test of each feed against the reference, per norm."""
    cfg = config["stats"]
    outcomes = run_outcomes(runs, config)
    rows = []
    for (feed, norm), group in outcomes.groupby(["feed", "norm"], sort=False):
        n, failed = len(group), int((group["failure"] != "").sum())
        low, high = wilson_interval(failed, n, cfg["confidence_level"])
        rows.append({"feed": feed, "norm": norm, "n_runs": n, "n_diverged": int((group["failure"] == "diverged").sum()),
                     "n_beyond_threshold": int((group["failure"] == "beyond threshold").sum()),
                     "n_no_value": int((group["failure"] == "no value").sum()), "n_failed": failed,
                     "failure_rate": failed / n, "rate_ci_low": low, "rate_ci_high": high})
    table = ordered(pd.DataFrame(rows), config, ["norm", "feed"])
    ref = table[table["feed"] == cfg["reference_feed"]].set_index("norm")
    table["feed_ref"] = cfg["reference_feed"]

    def fisher(row) -> float:
        if row["feed"] == cfg["reference_feed"] or row["norm"] not in ref.index:
            return math.nan
        r = ref.loc[row["norm"]]
        return stats.fisher_exact([[row["n_failed"], row["n_runs"] - row["n_failed"]],
                                   [r["n_failed"], r["n_runs"] - r["n_failed"]]]).pvalue

    table["p_fisher_unadj"] = table.apply(fisher, axis=1).astype(float)
    table["p_holm"] = _holm(table, pd.Series(True, index=table.index), "p_fisher_unadj")
    return table


# --- output --------------------------------------------------------------------------------------


def table_notes(config: dict, plan: dict) -> dict[str, str]:
    cfg = config["stats"]
    level, step = f"{cfg['confidence_level']:.0%}", plan["final_step"]
    directions = ", ".join(f"{m}: {b} is better" for m, b in BETTER.items())
    tail = f" [{plan_line(plan)}: {json.dumps(plan, sort_keys=True)}]"
    notes = {
        "summary": f"Per variant, step, extractor and metric over the usable runs (n; n_failed left out). {level} "
                   f"intervals: Student t for the mean and (on the log scale) the geometric mean, order statistics "
                   f"(distribution-free) for the median, bootstrap (BCa, percentile where undefined; approximate at "
                   f"small n) for the IQM.",
        "feed_effects": f"feed against feed_ref, paired by seed; {directions}. ratio: geometric mean over seeds of "
                        f"feed / feed_ref with its paired-t {level} CI (scale log); delta_*: raw paired differences. "
                        f"p_improve: share of seeds in which feed beats feed_ref, ties half, Wilson CI. Every p_*_unadj "
                        f"is unadjusted. p_holm: the {TESTS[cfg['test']][1]} Holm-adjusted over the confirmatory "
                        f"family (role confirmatory); p_holm_equivalence_family: the same over the equivalence rows; "
                        f"p_equivalence: paired TOST on the log ratio within ±{cfg['equivalence_margin']:.0%} (no "
                        f"multiplicity penalty: intersection-union). verdict: see stats.verdicts. Diverged runs: "
                        f"{DIVERGED_RULE}.",
        "interaction": f"Sensitivity analysis, unpaired: two-way ANOVA feed x norm on {cfg['primary_metric']} at step "
                       f"{step}, log-transformed unless the transform column says otherwise: OLS, sum-to-zero "
                       f"contrasts, type-3 tests with HC3 errors; partial eta^2 = F df / (F df + df_resid).",
        "mixed": f"Linear mixed model (REML) of log {cfg['primary_metric']} at step {step}: feed * norm fixed (sum "
                 f"contrasts), random intercepts per seed and per seed x norm; Wald chi2 test per term; icc_seed: "
                 f"share of the variance that runs of one seed share.",
        "failures": f"Failure rule: {failure_rule(config)}. Wilson {level} CI; Fisher's exact test against "
                    f"{cfg['reference_feed']} within each norm (unadjusted), Holm-adjusted over the table.",
        "power": f"Simulated power ({cfg['power_simulations']} studies, seed {cfg['seed']}) of the rule each primary "
                 f"comparison is judged by, at its observed within-pair SD of the log metric (pooled within-feed SD "
                 f"for unpaired tests); seeds_needed for {POWER:.0%} power (NA: more than {cfg['max_seeds']}).",
        "context_gap": "Per variant: median over runs of each run's mean context gap (logits) and D accuracy over "
                       "the second half of training.",
        "trend": f"Per comparison of {cfg['primary_metric']} over the checkpoints: ratio_first/ratio_last, geometric "
                 f"means over seeds of feed / feed_ref at the first and last step; slope_per_1000: the mean over seeds "
                 f"of each seed's OLS slope of log(feed / feed_ref) per 1000 steps, with its t {level} CI and "
                 f"unadjusted p; trend: widens / closes (CI excludes 0; away from / toward ratio 1) or no detectable "
                 f"change.",
        "mechanism": f"Per norm and step (the gap association at the final step {step} only): recovered = 1 - mean log(joint_consistent/{cfg['reference_feed']}) / "
                     f"mean log(joint/{cfg['reference_feed']}) over seed triples, Fieller {level} CI; gap_slope: "
                     f"OLS log {cfg['primary_metric']} ~ context gap + feed (within feeds), per logit of gap, "
                     f"unadjusted p.",
    }
    return {name: note + tail for name, note in notes.items()}


TABLES = ("summary", "feed_effects", "interaction", "mixed", "failures", "power", "context_gap", "mechanism", "trend")


def write_table(table: pd.DataFrame, out_dir: Path, name: str, note: str) -> list[Path]:
    """name.csv (full precision), name.md and name.tex (4 significant digits, with the note)."""
    paths = [out_dir / f"{name}.{ext}" for ext in ("csv", "md", "tex")]
    table.to_csv(paths[0], index=False)
    shown = table.astype(object).where(table.notna(), None)  # one missing marker for NaN and pd.NA alike
    paths[1].write_text(f"{note}\n\n{shown.to_markdown(index=False, floatfmt='.4g', missingval='NA')}\n")
    latex = table.to_latex(index=False, float_format="%.4g", na_rep="--", escape=True, longtable=len(table) > 40)
    paths[2].write_text(f"% {note}\n{latex}")
    return paths


def write_stats(config: dict, tables: str | Path) -> list[Path]:
    from ganablate import power  # it builds on this module's tables
    tables = Path(tables)
    runs = load_runs(tables)
    logs = read_table(tables, "train_logs", hint="run `ganablate aggregate` first")
    plan = analysis_plan(config, runs)
    effects = feed_effects_table(runs, config)
    built = {
        "summary": summary_table(runs, config),
        "feed_effects": effects,
        "interaction": interaction_table(runs, config),
        "mixed": mixed_table(runs, config),
        "failures": failures_table(runs, config),
        "power": power.power_table(runs, effects, config),
        "context_gap": context_table(logs, config),
        "mechanism": mechanism_table(runs, logs, config),
        "trend": trend_table(runs, config),
    }
    notes = table_notes(config, plan)
    paths = [p for name, table in built.items() for p in write_table(table, tables, name, notes[name])]
    per_variant = runs.drop_duplicates(RUN_KEYS).groupby(["feed", "norm"]).size()
    design = {"dataset": str(runs["dataset"].iloc[0]), "variants": len(per_variant), "runs": int(per_variant.sum()),
              "seeds_min": int(per_variant.min()), "seeds_max": int(per_variant.max()),
              "steps": sorted(int(s) for s in runs["step"].unique())}
    (tables / "plan.json").write_text(json.dumps(plan | {"hash": config_hash(plan)[:8], "design": design}, indent=2)
                                      + "\n")
    return [*paths, tables / "plan.json"]
