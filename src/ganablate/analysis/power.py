"""power.csv: the simulated power of the rule each confirmatory and control contrast is judged by, at the spread of
its own per-seed contrast (an interaction's is about twice a simple effect's variance; the table uses its own).
A contrast declared `test: equivalence` or `test: noninferiority` is judged by that test, at a true ratio of 1."""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
from scipy import stats

from ganablate.analysis.contrasts import Contrast, per_seed
from ganablate.analysis.estimators import group_rng
from ganablate.study import vocab
from ganablate.study.plan import POWER_TARGET, Plan


def _p_values(test: str, effect: float, sd: float, n: int, sims: int, rng: np.random.Generator) -> np.ndarray:
    """p of the configured test on `sims` simulated studies of n seeds whose per-seed contrast ~ N(effect, sd)."""
    d = rng.normal(effect, sd, size=(sims, n))
    return stats.ttest_1samp(d, 0.0, axis=-1).pvalue if test == "paired_t_log" else stats.wilcoxon(d, axis=-1).pvalue


def _hypothesis_p(d: np.ndarray, hypothesis: str, margin: float) -> np.ndarray:
    """p of the equivalence (paired TOST: the larger one-sided p) or non-inferiority (one-sided t, H0: mean log ratio
    >= log(1 + margin)) test on every row of d. At a true ratio of 1 the direction of non-inferiority does not
    matter: the simulated contrast is symmetric about 0."""
    bound = math.log1p(margin)
    high = stats.ttest_1samp(d, bound, axis=-1, alternative="less").pvalue
    if hypothesis == "noninferiority":
        return high
    low = stats.ttest_1samp(d, -bound, axis=-1, alternative="greater").pvalue
    return np.maximum(low, high)


def holm_power(
    test: str,
    effect: float,
    sds: list[float],
    ns: list[int],
    alpha: float,
    sims: int,
    rng: np.random.Generator,
    hypotheses: list[tuple[str, float | None]] | None = None,
) -> np.ndarray:
    """Power of each member of a Holm family when every member carries `effect` (log ratio): the share of
    simulated studies in which Holm's procedure at alpha rejects it. hypotheses: per member (test, margin); a member
    that tests equivalence or non-inferiority is simulated at a true ratio of 1 and rejects with that test's p."""
    hypotheses = hypotheses or [("difference", None)] * len(sds)
    p = np.column_stack(
        [
            _p_values(test, effect, sd, n, sims, rng)
            if hypothesis == "difference"
            else _hypothesis_p(rng.normal(0.0, sd, size=(sims, n)), hypothesis, margin)
            for sd, n, (hypothesis, margin) in zip(sds, ns, hypotheses)
        ]
    )
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


def tost_power(
    margin: float, sd: float, n: int, alpha: float, sims: int, rng: np.random.Generator, hypothesis="equivalence"
) -> float:
    """Power of the paired TOST to declare equivalence within +-margin (ratio) when the true ratio is 1; of the
    one-sided test to declare non-inferiority within +margin with hypothesis="noninferiority"."""
    d = rng.normal(0.0, sd, size=(sims, n))
    return float((_hypothesis_p(d, hypothesis, margin) < alpha).mean())


def power_decimals(simulations: int) -> int:
    """The decimals a simulated power supports: down to the first significant digit of its largest Monte Carlo SE,
    0.5 / sqrt(simulations) (2000 simulations: SE <= 0.011, 2 decimals; 10000: 0.005, 3)."""
    return max(0, -math.floor(math.log10(0.5 / math.sqrt(simulations))))


def _seeds_needed(power_at, max_seeds: int) -> int | None:
    """The fewest seeds (2..max_seeds) at which power_at(n) >= POWER_TARGET, by bisection (power grows with n)."""
    if power_at(max_seeds) < POWER_TARGET:
        return None
    low, high = 1, max_seeds
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if power_at(mid) >= POWER_TARGET else (mid, high)
    return high


_RULES = {
    "equivalence": lambda margin: f"paired TOST within ±{round(100 * margin, 6):g}%",
    "noninferiority": lambda margin: f"one-sided t for non-inferiority within +{round(100 * margin, 6):g}%",
}

TAIL = [
    "step",
    "extractor",
    "metric",
    "role",
    "rule",
    "n_pairs",
    "sd_log",
    "assumed_ratio",
    "family_size",
    "simulations",
    "power",
    "seeds_needed",
    "note",
]


def power_table(contrasts: pd.DataFrame, placed: dict[str, Contrast], logs: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """Rows: the confirmatory and control contrasts (primary metric, extractor, final step). Confirmatory: the
    configured test with Holm over the family, every member at a true ratio of stats.smallest_effect; controls:
    the paired TOST at a true ratio of 1. A contrast declared test: equivalence or noninferiority is simulated with
    that test at a true ratio of 1 (in the family, with Holm over it). sd_log: the SD over seeds of the contrast's
    own per-seed values. logs: seeds x cells of the log primary metric at the final step. seeds_needed: the fewest
    seeds for 80%."""
    cfg, names = plan.stats, plan.design.names
    alpha, sims = plan.alpha, cfg["power_simulations"]
    judged = contrasts[contrasts["role"].isin(["confirmatory", "control"])]
    rows = []
    for _, r in judged.iterrows():
        d, _ = per_seed(placed[r["contrast"]], logs)
        sd = float(np.std(d, ddof=1)) if len(d) >= 2 else math.nan
        rows.append(
            {k: r[k] for k in ["contrast", "kind", *names, "step", "extractor", "metric", "role"]}
            | {"n_pairs": len(d), "sd_log": sd}
        )
    table = pd.DataFrame(rows, columns=["contrast", "kind", *names, *TAIL])
    if table.empty:
        return table
    ok = np.isfinite(table["sd_log"].astype(float)) & (table["sd_log"].astype(float) > 0)
    confirmatory = table["role"] == "confirmatory"
    # Every member counts, as in the analysis's Holm: one without spread is simulated as never rejected (p = 1).
    members = table.index[confirmatory]
    effect = math.log(cfg["smallest_effect"])
    table["simulations"], table["family_size"] = sims, len(members)
    table["rule"] = np.where(
        confirmatory,
        f"{vocab.TESTS[cfg['test']]}, Holm over {len(members)}, at a true ratio of {cfg['smallest_effect']:g}",
        f"paired TOST within ±{cfg['equivalence_margin']:.0%}, at a true ratio of 1",
    )
    table["assumed_ratio"] = np.where(confirmatory, cfg["smallest_effect"], 1.0)
    hypotheses = {}  # row -> (test, margin) of the rows declared test: equivalence or noninferiority
    for index in table.index:
        spec = placed[table.loc[index, "contrast"]].spec
        if spec.test != "difference":
            hypotheses[index] = (spec.test, cfg["equivalence_margin"] if spec.margin is None else spec.margin)
            holm_over = f", Holm over {len(members)}" if confirmatory[index] else ""
            table.loc[index, "rule"] = f"{_RULES[spec.test](hypotheses[index][1])}{holm_over}, at a true ratio of 1"
            table.loc[index, "assumed_ratio"] = 1.0
    if len(members):
        sds, ns = table.loc[members, "sd_log"].tolist(), table.loc[members, "n_pairs"].tolist()
        tested = [hypotheses.get(index, ("difference", None)) for index in members]

        @functools.cache  # every member's bisection asks for the family's power at the same few n
        def family(n: int | None) -> np.ndarray:
            rng = group_rng(cfg["seed"], ("power", "confirmatory"))  # common random numbers across n: a smooth curve
            n_of = ns if n is None else [n] * len(ns)
            return holm_power(cfg["test"], effect, sds, n_of, alpha, sims, rng, tested)

        table.loc[members, "power"] = family(None)
        for i, index in enumerate(members):  # the family shares one n; each member's need is where it crosses 80%
            table.loc[index, "seeds_needed"] = _seeds_needed(lambda n, i=i: family(n)[i], cfg["max_seeds"])
    for index in table.index[(table["role"] == "control") & ok]:
        r = table.loc[index]
        hypothesis, margin = hypotheses.get(index, ("equivalence", cfg["equivalence_margin"]))

        def tost_at(n: int, r=r, hypothesis=hypothesis, margin=margin) -> float:
            rng = group_rng(cfg["seed"], ("power", r["contrast"]))
            return tost_power(margin, r["sd_log"], n, alpha, sims, rng, hypothesis)

        table.loc[index, "power"] = tost_at(int(r["n_pairs"]))
        table.loc[index, "seeds_needed"] = _seeds_needed(tost_at, cfg["max_seeds"])
    table.loc[~ok, "power"] = math.nan
    # Printed to the precision the simulations give: the Monte Carlo SE is at most 0.5 / sqrt(simulations).
    table["power"] = table["power"].astype(float).round(power_decimals(sims))
    table["seeds_needed"] = table["seeds_needed"].astype("Int64")
    table["note"] = np.where(ok, "", "no spread over seeds (fewer than 2, or identical): power undefined")
    return table
