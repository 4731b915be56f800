"""power.csv: the simulated power of the decision rule each primary comparison is actually judged by."""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
from scipy import stats

from ganablate.stats import POWER, TESTS, alpha_of, final_step, group_rng, primary_family, primary_values

PAIRED_TESTS = ("paired_t_log", "wilcoxon")


def _p_values(test: str, effect: float, sd: float, n: int, sims: int, rng: np.random.Generator) -> np.ndarray:
    """p of the configured test on `sims` simulated studies of n seeds: per-seed log differences ~ N(effect, sd)
    for paired tests; two groups of log values with SD sd, `effect` apart, for the unpaired ones."""
    if test in PAIRED_TESTS:
        d = rng.normal(effect, sd, size=(sims, n))
        return stats.ttest_1samp(d, 0.0, axis=-1).pvalue if test == "paired_t_log" else stats.wilcoxon(d, axis=-1).pvalue
    ref, new = rng.normal(0.0, sd, size=(sims, n)), rng.normal(effect, sd, size=(sims, n))
    if test == "mannwhitney":
        return stats.mannwhitneyu(new, ref, axis=-1, alternative="two-sided").pvalue
    return stats.ttest_ind(new, ref, axis=-1, equal_var=False).pvalue


def holm_power(test: str, effect: float, sds: list[float], ns: list[int], alpha: float, sims: int,
               rng: np.random.Generator) -> np.ndarray:
    """Power of each member of a Holm family when every member carries `effect` (log ratio): the share of
    simulated studies in which Holm's procedure at alpha rejects it."""
    p = np.column_stack([_p_values(test, effect, sd, n, sims, rng) for sd, n in zip(sds, ns)])
    return (holm_adjusted(p) < alpha).mean(axis=0)


def holm_adjusted(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values of every row of p at once (statsmodels' multipletests takes one family per call,
    about 0.1 s each here, too slow for thousands of simulated studies; tests check the two agree)."""
    p = np.where(np.isnan(p), 1.0, p)  # an untestable simulated study rejects nothing
    m = p.shape[-1]
    order = np.argsort(p, axis=-1)
    stepped = np.maximum.accumulate(np.take_along_axis(p, order, axis=-1) * (m - np.arange(m)), axis=-1)
    adjusted = np.empty_like(p)
    np.put_along_axis(adjusted, order, np.minimum(stepped, 1.0), axis=-1)
    return adjusted


def tost_power(margin: float, sd: float, n: int, alpha: float, sims: int, rng: np.random.Generator) -> float:
    """Power of the paired TOST to declare equivalence within +-margin (ratio) when the true ratio is 1."""
    d = rng.normal(0.0, sd, size=(sims, n))
    low = stats.ttest_1samp(d, -math.log1p(margin), axis=-1, alternative="greater").pvalue
    high = stats.ttest_1samp(d, math.log1p(margin), axis=-1, alternative="less").pvalue
    return float((np.maximum(low, high) < alpha).mean())


def _seeds_needed(power_at, max_seeds: int) -> int | None:
    """The fewest seeds (2..max_seeds) at which power_at(n) >= POWER, by bisection (power grows with n)."""
    if power_at(max_seeds) < POWER:
        return None
    low, high = 1, max_seeds
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if power_at(mid) >= POWER else (mid, high)
    return high


POWER_COLUMNS = ["norm", "step", "extractor", "metric", "feed_ref", "feed", "role", "rule", "n_pairs", "sd_log",
                 "assumed_ratio", "family_size", "simulations", "power", "seeds_needed", "note"]


def power_table(runs: pd.DataFrame, effects: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Simulated power of the rule each primary comparison is judged by, at the spread observed in it:
    confirmatory rows, the configured test with Holm over the confirmatory family, at a true ratio of
    stats.smallest_effect for every member; equivalence rows, the paired TOST at a true ratio of 1.
    seeds_needed: the fewest seeds per variant that give 80% power (NA beyond stats.max_seeds)."""
    cfg = config["stats"]
    step, alpha, sims = final_step(runs, cfg), alpha_of(cfg), cfg["power_simulations"]
    values = primary_values(runs, cfg, step)
    rows = []
    for _, e in effects[primary_family(effects, cfg, step)].iterrows():
        here = values[values["norm"] == e["norm"]].pivot(index="seed", columns="feed", values="value")
        pair = here[[e["feed_ref"], e["feed"]]].dropna() if {e["feed_ref"], e["feed"]} <= set(here.columns) else None
        sd = math.nan
        if pair is not None and len(pair) >= 2 and (pair > 0).all().all():
            logs = np.log(pair)
            if cfg["test"] in PAIRED_TESTS or e["role"] == "equivalence":
                sd = float((logs[e["feed"]] - logs[e["feed_ref"]]).std(ddof=1))
            else:  # the pooled within-feed SD: what an unpaired test sees
                sd = float(np.sqrt((logs.var(ddof=1)).mean()))
        rows.append({"norm": e["norm"], "step": step, "extractor": e["extractor"], "metric": e["metric"],
                     "feed_ref": e["feed_ref"], "feed": e["feed"], "role": e["role"],
                     "n_pairs": 0 if pair is None else len(pair), "sd_log": sd})
    table = pd.DataFrame(rows, columns=POWER_COLUMNS)
    if table.empty:
        return table
    ok = np.isfinite(table["sd_log"]) & (table["sd_log"] > 0)
    confirm = table.index[(table["role"] == "confirmatory") & ok]
    effect = math.log(cfg["smallest_effect"])
    table["simulations"] = sims
    table["family_size"] = len(confirm)
    confirmatory = table["role"] == "confirmatory"
    table["rule"] = np.where(
        confirmatory, f"{TESTS[cfg['test']][1]}, Holm over {len(confirm)}, at a true ratio of {cfg['smallest_effect']:g}",
        f"paired TOST within ±{cfg['equivalence_margin']:.0%}, at a true ratio of 1")
    table["assumed_ratio"] = np.where(confirmatory, cfg["smallest_effect"], 1.0)
    if len(confirm):
        sds, ns = table.loc[confirm, "sd_log"].tolist(), table.loc[confirm, "n_pairs"].tolist()

        @functools.cache  # every member's bisection asks for the family's power at the same few n
        def family(n: int | None) -> np.ndarray:
            rng = group_rng(cfg["seed"], ("power", "confirmatory"))  # common random numbers across n: a smooth curve
            return holm_power(cfg["test"], effect, sds, ns if n is None else [n] * len(ns), alpha, sims, rng)

        table.loc[confirm, "power"] = family(None)
        # The family shares one n; each member's need is where its own power crosses 80%.
        for i, index in enumerate(confirm):
            table.loc[index, "seeds_needed"] = _seeds_needed(lambda n: family(n)[i], cfg["max_seeds"])
    for index in table.index[(table["role"] == "equivalence") & ok]:
        r = table.loc[index]

        def tost_at(n: int, r=r) -> float:
            return tost_power(cfg["equivalence_margin"], r["sd_log"], n, alpha, sims,
                              group_rng(cfg["seed"], ("power", r["norm"], r["feed_ref"], r["feed"])))

        table.loc[index, "power"] = tost_at(int(r["n_pairs"]))
        table.loc[index, "seeds_needed"] = _seeds_needed(tost_at, cfg["max_seeds"])
    table["seeds_needed"] = table["seeds_needed"].astype("Int64")
    table["note"] = np.where(ok, "", "no within-pair spread (fewer than 2 pairs, or identical): power undefined")
    return table
