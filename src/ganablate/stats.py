"""Run directories -> tidy tables (runs.csv, train_logs.csv) -> the statistics tables of the study.

Every statistic comes from scipy or statsmodels except the interquartile mean and the probability of
improvement, which are written here. Bootstraps are seeded per group, so the same runs.csv always gives
byte-identical tables whatever other groups it holds.
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

from ganablate.config import UsageError

# Which way is better, per metric. is_std and kid_std are the estimators' own spread: summarized, never compared.
BETTER = {"fid": "lower", "kid": "lower", "is": "higher", "precision": "higher", "recall": "higher"}
NAMES = {"fid": "FID", "kid": "KID", "is": "Inception score", "precision": "Precision", "recall": "Recall"}
METRICS = ["fid", "kid", "is", "precision", "recall", "is_std", "kid_std"]
RUN_KEYS = ["dataset", "feed", "norm", "seed"]
RUN_INFO = [*RUN_KEYS, "status", "steps_done"]  # from summary.json
RUN_COLUMNS = [*RUN_INFO, "step", "extractor", "metric", "value"]
METRICS_COLUMNS = ["step", "extractor", "metric", "value"]
LOG_COLUMNS = ["step", "d_acc", "context_gap"]
STATUSES = ("completed", "diverged")
POWER, POWER_ALPHA = 0.8, 0.05
BOOTSTRAP_BATCH = 1000  # bounds memory of the pairwise p_improve statistic; results depend on it, so it is fixed

TESTS = {"mannwhitney": ("p_mwu", "two-sided Mann-Whitney U"), "welch": ("p_welch", "two-sided Welch t-test"),
         "wilcoxon": ("p_wilcoxon", "two-sided Wilcoxon signed-rank test, runs paired by seed")}


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
    orders = {"feed": config["study"]["feeds"], "norm": config["study"]["norms"], "metric": METRICS}

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


FAILED_RUNS = ("Diverged runs, and runs without a value, are counted (n_failed) but left out of every mean, "
               "CI and test; runs beyond the failure threshold keep their value there, being real outcomes.")


def failure_rule(config: dict) -> str:
    cfg = config["stats"]
    rule = "a run fails when it diverged (non-finite loss) or has no value for the primary metric at the final step"
    if cfg["failure_threshold"] is not None:
        worse = ">" if BETTER[cfg["primary_metric"]] == "lower" else "<"
        rule += f", or when its {NAMES[cfg['primary_metric']]} there is {worse} {cfg['failure_threshold']:g}"
    return rule


# --- statistics written here --------------------------------------------------------------------


def iqm(x, axis: int = -1):
    """Interquartile mean: the mean after cutting floor(n/4) values from each end (rliable's definition)."""
    x = np.sort(np.asarray(x, dtype=float), axis=axis)
    n = x.shape[axis]
    return np.take(x, np.arange(n // 4, n - n // 4), axis=axis).mean(axis=axis)


def prob_improvement(ref, new, better: str, axis: int = -1):
    """P(a run of `new` is better than a run of `ref`), ties counting half: U / (n_ref * n)."""
    ref = np.moveaxis(np.asarray(ref, dtype=float), axis, -1)[..., :, None]
    new = np.moveaxis(np.asarray(new, dtype=float), axis, -1)[..., None, :]
    wins = new < ref if better == "lower" else new > ref
    return (wins + 0.5 * (new == ref)).mean(axis=(-2, -1))


def _rng(seed: int, key: tuple) -> np.random.Generator:
    # A group's resamples depend on its key only, not on which other groups the table holds.
    return np.random.default_rng([seed, zlib.crc32("/".join(map(str, key)).encode())])


def bootstrap_ci(samples: tuple, statistic, cfg: dict, key: tuple) -> tuple[float, float, str]:
    """(low, high, method): BCa, or the percentile interval where BCa is undefined (e.g. ties, skew at tiny n)."""
    if any(len(s) < 2 for s in samples):
        return math.nan, math.nan, ""
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BCa's degenerate-data warning is acted on below
            ci = stats.bootstrap(
                samples, statistic, n_resamples=cfg["bootstrap_resamples"], confidence_level=cfg["confidence_level"],
                method=method, vectorized=True, batch=BOOTSTRAP_BATCH, rng=_rng(cfg["seed"], key),
            ).confidence_interval
        if np.isfinite(ci.low) and np.isfinite(ci.high):
            return float(ci.low), float(ci.high), method.lower()
    return math.nan, math.nan, ""


# --- tables ------------------------------------------------------------------------------------

GROUP = ["feed", "norm", "step", "extractor", "metric"]


def summary_table(runs: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Per feed, norm, step, extractor and metric: location, spread and bootstrap CIs of the usable runs."""
    cfg, ok, rows = config["stats"], usable(runs), []
    for key, group in runs.groupby(GROUP, sort=False):
        x = group.loc[ok[group.index], "value"].to_numpy(float)
        n = len(x)
        row = dict(zip(GROUP, key)) | {
            "n": n, "n_failed": len(group) - n,
            "mean": x.mean() if n else math.nan, "sd": x.std(ddof=1) if n > 1 else math.nan,
            "median": np.median(x) if n else math.nan, "iqm": iqm(x) if n else math.nan,
            "min": x.min() if n else math.nan, "max": x.max() if n else math.nan,
        }
        methods = []
        for name, statistic in (("mean", np.mean), ("iqm", iqm), ("median", np.median)):
            row[f"{name}_ci_low"], row[f"{name}_ci_high"], method = bootstrap_ci((x,), statistic, cfg, (name, *key))
            methods.append(method)
        row["ci_method"] = methods[0] if len(set(methods)) == 1 else "/".join(methods)
        row["note"] = "" if n >= 2 else f"{n} usable run(s): no CI"
        rows.append(row)
    return ordered(pd.DataFrame(rows), config, ["feed", "norm", "step", "extractor", "metric"])


EFFECT_COLUMNS = [
    "norm", "step", "extractor", "metric", "feed_ref", "feed", "n_ref", "n", "median_ref", "median",
    "delta_mean", "delta_ci_low", "delta_ci_high", "hedges_g", "p_improve", "p_improve_ci_low", "p_improve_ci_high",
    "p_welch", "p_mwu", "p_wilcoxon", "p_holm", "better", "n_pairs", "note",
]


def _delta_mean(ref, new, axis=-1):
    return np.mean(new, axis=axis) - np.mean(ref, axis=axis)


def _compare(ref: pd.Series, new: pd.Series, better: str, cfg: dict, key: tuple) -> dict:
    """One feed against the reference; `ref` and `new` are usable values indexed by seed."""
    from statsmodels.stats.meta_analysis import effectsize_smd

    x_ref, x = ref.to_numpy(float), new.to_numpy(float)
    paired = ref.index.intersection(new.index)
    out = {"n_ref": len(x_ref), "n": len(x), "n_pairs": len(paired),
           "median_ref": np.median(x_ref) if len(x_ref) else math.nan, "median": np.median(x) if len(x) else math.nan}
    nan = dict.fromkeys(["delta_mean", "delta_ci_low", "delta_ci_high", "hedges_g", "p_improve", "p_improve_ci_low",
                         "p_improve_ci_high", "p_welch", "p_mwu", "p_wilcoxon"], math.nan)
    if min(len(x_ref), len(x)) < 2:
        return out | nan | {"note": f"too few usable runs (n_ref={len(x_ref)}, n={len(x)}): no CI or test"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant samples give NaN statistics, which is what the table should show
        g = effectsize_smd(x.mean(), x.std(ddof=1), len(x), x_ref.mean(), x_ref.std(ddof=1), len(x_ref))[0]
        out |= {
            "delta_mean": _delta_mean(x_ref, x),
            "hedges_g": g if np.isfinite(g) else math.nan,
            "p_improve": prob_improvement(x_ref, x, better),
            "p_welch": stats.ttest_ind(x, x_ref, equal_var=False).pvalue,
            "p_mwu": stats.mannwhitneyu(x, x_ref, alternative="two-sided").pvalue,
            "p_wilcoxon": (stats.wilcoxon(new[paired].to_numpy(float), ref[paired].to_numpy(float)).pvalue
                           if len(paired) >= 2 else math.nan),
        }
    out["delta_ci_low"], out["delta_ci_high"], _ = bootstrap_ci((x_ref, x), _delta_mean, cfg, ("delta", *key))
    out["p_improve_ci_low"], out["p_improve_ci_high"], _ = bootstrap_ci(
        (x_ref, x), lambda a, b, axis=-1: prob_improvement(a, b, better, axis), cfg, ("p_improve", *key))
    out["note"] = "" if len(paired) >= 2 else f"{len(paired)} seed pair(s): no Wilcoxon test"
    return out


def feed_effects_table(runs: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Every feed against stats.reference_feed, per norm, step, extractor and metric with a direction."""
    cfg = config["stats"]
    ref_feed, step_final = cfg["reference_feed"], final_step(runs, cfg)
    values = runs[usable(runs)]
    rows = []
    for (norm, step, extractor, metric), group in runs[runs["metric"].isin(list(BETTER))].groupby(
            ["norm", "step", "extractor", "metric"], sort=False):
        feeds = group["feed"].unique()
        if ref_feed not in feeds:
            continue
        here = values.loc[values.index.intersection(group.index)]
        ref = here[here["feed"] == ref_feed].set_index("seed")["value"]
        for feed in feeds:
            if feed == ref_feed:
                continue
            key = (norm, step, extractor, metric, feed)
            new = here[here["feed"] == feed].set_index("seed")["value"]
            rows.append({"norm": norm, "step": step, "extractor": extractor, "metric": metric, "feed_ref": ref_feed,
                         "feed": feed, "better": BETTER[metric]} | _compare(ref, new, BETTER[metric], cfg, key))
    table = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    if not table.empty:
        table = ordered(table, config, ["norm", "step", "extractor", "metric", "feed"])
        table["p_holm"] = _holm(table, primary_family(table, cfg, step_final), TESTS[cfg["test"]][0])
    return table


def primary_family(table: pd.DataFrame, cfg: dict, step: int) -> pd.Series:
    return (table["metric"] == cfg["primary_metric"]) & (table["extractor"] == cfg["primary_extractor"]) & (
        table["step"] == step)


def _holm(table: pd.DataFrame, family: pd.Series, column: str) -> pd.Series:
    from statsmodels.stats.multitest import multipletests

    adjusted = pd.Series(math.nan, index=table.index)
    tested = family & np.isfinite(table[column].astype(float))
    if tested.any():
        adjusted[tested] = multipletests(table.loc[tested, column].astype(float), method="holm")[1]
    return adjusted


INTERACTION_COLUMNS = ["term", "sum_sq", "df", "F", "p", "partial_eta_sq", "metric", "extractor", "step", "transform",
                       "n_runs", "excluded_norms", "note"]


def interaction_table(runs: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Two-way ANOVA feed x norm (type 3, sum-to-zero contrasts, HC3) on the log primary metric at the final step."""
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    cfg = config["stats"]
    step = final_step(runs, cfg)
    data = runs[usable(runs) & (runs["metric"] == cfg["primary_metric"]) & (runs["extractor"] == cfg["primary_extractor"])
                & (runs["step"] == step)]
    # HC3 is undefined for a cell with one run (leverage 1), and type-3 tests need every cell filled:
    # a norm with fewer than two usable runs in some feed leaves the model, and the table says so.
    counts = data.groupby(["norm", "feed"]).size().unstack(fill_value=0)
    excluded = sorted(counts.index[(counts < 2).any(axis=1)]) if len(counts) else []
    data = data[~data["norm"].isin(excluded)]
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


def failures_table(runs: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Failure rate per variant with a Wilson CI; Fisher's exact test of each feed against the reference, per norm."""
    from statsmodels.stats.proportion import proportion_confint

    cfg = config["stats"]
    outcomes = run_outcomes(runs, config)
    rows = []
    for (feed, norm), group in outcomes.groupby(["feed", "norm"], sort=False):
        n, failed = len(group), int((group["failure"] != "").sum())
        low, high = proportion_confint(failed, n, alpha=1 - cfg["confidence_level"], method="wilson")
        # Wilson's bound is exactly 0 (or 1) at no (or all) failures; the formula leaves float dust there.
        low, high = (0.0 if failed == 0 else low), (1.0 if failed == n else high)
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

    table["p_fisher"] = table.apply(fisher, axis=1).astype(float)
    table["p_holm"] = _holm(table, pd.Series(True, index=table.index), "p_fisher")
    return table


def _power(g: float, nobs1, ratio: float):
    from statsmodels.stats.power import TTestIndPower

    power = TTestIndPower().power(g, nobs1=nobs1, ratio=ratio, alpha=POWER_ALPHA)
    # For large effects the lower tail of the two-sided power underflows to NaN; it is negligible there.
    upper = TTestIndPower().power(g, nobs1=nobs1, ratio=ratio, alpha=POWER_ALPHA / 2, alternative="larger")
    return np.where(np.isnan(power), upper, power)


def _seeds_needed(g: float) -> int:
    from statsmodels.stats.power import TTestIndPower

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a failed root search is handled below
        n = TTestIndPower().solve_power(g, power=POWER, alpha=POWER_ALPHA, ratio=1.0)
    if np.isfinite(n):
        return max(2, math.ceil(n))
    # The root finder fails for very large effects, whose answer is a handful of seeds: count up.
    few = np.arange(2, 11)
    return int(few[np.argmax(_power(g, few, 1.0) >= POWER)])


def smallest_p(test: str, n_ref: int, n: int, n_pairs: int) -> float:
    """The smallest two-sided p-value a rank test can give with these sample sizes (NaN for Welch: none)."""
    if test == "welch" or min(n_ref, n) < 1:
        return math.nan
    if test == "mannwhitney":  # every run of one feed beyond every run of the other
        return float(stats.mannwhitneyu(np.arange(n), np.arange(n, n + n_ref), alternative="two-sided").pvalue)
    return float(stats.wilcoxon(np.arange(1.0, n_pairs + 1)).pvalue) if n_pairs else math.nan


def power_table(effects: pd.DataFrame, config: dict, step: int) -> pd.DataFrame:
    """Seeds per variant for 80% power at alpha 0.05 (two-sided two-sample t-test) at each observed Hedges g,
    and the smallest p-value the primary test can reach with the seeds at hand."""
    rows = []
    for _, e in effects[effects["step"] == step].iterrows():
        g = abs(e["hedges_g"])
        testable = np.isfinite(g) and g > 0
        rows.append({
            "norm": e["norm"], "step": e["step"], "extractor": e["extractor"], "metric": e["metric"],
            "feed_ref": e["feed_ref"], "feed": e["feed"], "n_ref": e["n_ref"], "n": e["n"],
            "effect_size_measure": "hedges_g", "effect_size": e["hedges_g"],
            "power_now": float(_power(g, e["n_ref"], e["n"] / e["n_ref"])) if testable else math.nan,
            "n_needed": _seeds_needed(g) if testable else pd.NA,
            "p_min_primary": smallest_p(config["stats"]["test"], e["n_ref"], e["n"], e["n_pairs"]),
        })
    # Every Holm-adjusted p is at least m times the family's smallest raw p: what the seeds at hand can reach.
    family_size = int(primary_family(effects, config["stats"], step).sum())
    table = pd.DataFrame(rows, columns=["norm", "step", "extractor", "metric", "feed_ref", "feed", "n_ref", "n",
                                        "effect_size_measure", "effect_size", "power_now", "n_needed", "p_min_primary"])
    table["p_min_holm"] = (table["p_min_primary"] * family_size).clip(upper=1.0)
    table["n_needed"] = table["n_needed"].astype("Int64")
    reachable = ~(table["p_min_holm"] >= POWER_ALPHA)
    table["enough"] = ((table[["n_ref", "n"]].min(axis=1) >= table["n_needed"]) & reachable).astype("boolean")
    return table


# --- output --------------------------------------------------------------------------------------


def table_notes(config: dict, step: int) -> dict[str, str]:
    cfg = config["stats"]
    level = f"{cfg['confidence_level']:.0%}"
    boot = (f"{level} bootstrap CIs ({cfg['bootstrap_resamples']} resamples, BCa, percentile where BCa is undefined, "
            f"seed {cfg['seed']})")
    directions = ", ".join(f"{m}: {b} is better" for m, b in BETTER.items())
    return {
        "summary": f"Per variant, step, extractor and metric. n = usable runs; n_failed = runs left out (diverged, or no "
                   f"value); {boot}; ci_method lists mean/iqm/median when they differ.",
        "feed_effects": f"Each feed against {cfg['reference_feed']}. {directions}. delta_mean and hedges_g are feed minus "
                        f"reference; p_improve = P(a run of feed is better than one of feed_ref); {boot}. p_holm: the "
                        f"{TESTS[cfg['test']][1]} Holm-adjusted over all comparisons of {cfg['primary_metric']} "
                        f"({cfg['primary_extractor']}) at step {step}; NaN outside that family.",
        "interaction": f"Two-way ANOVA feed x norm on {cfg['primary_metric']} at step {step}, log-transformed unless "
                       f"the transform column says otherwise: OLS, sum-to-zero contrasts, type-3 tests with HC3 "
                       f"errors; partial eta^2 = F df / (F df + df_resid).",
        "failures": f"Failure rule: {failure_rule(config)}. Wilson {level} CI; Fisher's exact test against "
                    f"{cfg['reference_feed']} within each norm, Holm-adjusted over the table.",
        "power": f"Seeds per variant for {POWER:.0%} power at alpha {POWER_ALPHA} (two-sided two-sample t-test, equal "
                 f"groups) to detect the observed |Hedges g| at step {step}; the observed g is itself uncertain, so "
                 f"read n_needed as an order of magnitude (a rank test needs about 5% more under normality). "
                 f"p_min_primary: the smallest p the {TESTS[cfg['test']][1]} can give with these runs, before Holm; "
                 f"p_min_holm: the smallest it can give after Holm's correction over the primary family; "
                 f"enough: n_needed seeds are there and p_min_holm < {POWER_ALPHA}.",
    }


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
    tables = Path(tables)
    runs = load_runs(tables)
    step = final_step(runs, config["stats"])
    effects = feed_effects_table(runs, config)
    built = {
        "summary": summary_table(runs, config),
        "feed_effects": effects,
        "interaction": interaction_table(runs, config),
        "failures": failures_table(runs, config),
        "power": power_table(effects, config, step),
    }
    notes = table_notes(config, step)
    return [p for name, table in built.items() for p in write_table(table, tables, name, notes[name])]
