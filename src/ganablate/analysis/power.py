"""power.csv: the simulated power of the rule each confirmatory and control contrast is judged by, at the spread of
its own per-seed contrast (an interaction's is about twice a simple effect's variance; the table uses its own).
A contrast declared with a hypothesis tested against a margin (`test: equivalence`, `noninferiority`) is judged by
that test (its `simulated` p, analysis/verdicts.py), at a true ratio of 1."""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
from scipy import stats

from ganablate.analysis.cells import at_primary, usable
from ganablate.analysis.contrasts import Contrast, as_cells, contrasts_of, margin_of, per_seed, wide
from ganablate.analysis.estimators import group_rng
from ganablate.analysis.evidence import Evidence, register_table
from ganablate.analysis.verdicts import HYPOTHESES
from ganablate.study import vocab
from ganablate.study.contrasts import CONTROL_TEST, DEFAULT_TEST
from ganablate.study.plan import POWER_TARGET, Plan


def _p_values(test: str, effect: float, sd: float, n: int, sims: int, rng: np.random.Generator) -> np.ndarray:
    """p of the configured test on `sims` simulated studies of n seeds whose per-seed contrast ~ N(effect, sd)."""
    d = rng.normal(effect, sd, size=(sims, n))
    return stats.ttest_1samp(d, 0.0, axis=-1).pvalue if test == "paired_t_log" else stats.wilcoxon(d, axis=-1).pvalue


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
    hypotheses = hypotheses or [(DEFAULT_TEST, None)] * len(sds)
    p = np.column_stack(
        [
            HYPOTHESES[hypothesis].simulated(rng.normal(0.0, sd, size=(sims, n)), margin)
            if HYPOTHESES[hypothesis].margin
            else _p_values(test, effect, sd, n, sims, rng)
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
    margin: float, sd: float, n: int, alpha: float, sims: int, rng: np.random.Generator, hypothesis: str = CONTROL_TEST
) -> float:
    """Power of a hypothesis with a margin (the paired TOST of equivalence by default) to be shown when the true
    ratio is 1."""
    d = rng.normal(0.0, sd, size=(sims, n))
    return float((HYPOTHESES[hypothesis].simulated(d, margin) < alpha).mean())


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


def power_table(contrasts: pd.DataFrame, found: list[Contrast], logs: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """Rows: the confirmatory and control contrasts (primary metric, extractor, final step). Confirmatory: the
    configured test with Holm over the family, every member at a true ratio of stats.smallest_effect; controls:
    the paired TOST at a true ratio of 1. A contrast declared test: equivalence or noninferiority is simulated with
    that test at a true ratio of 1 (in the family, with Holm over it). sd_log: the SD over seeds of the contrast's
    own per-seed values. logs: seeds x cells of the log primary metric at the final step. seeds_needed: the fewest
    seeds for 80%. found: the contrasts (contrasts_of), each found by its row's id and cell."""
    names = plan.design.names
    placed = {(c.spec.id, c.cell): c for c in found}
    alpha, sims = plan.alpha, plan.simulations
    judged = contrasts[contrasts["role"].isin(["confirmatory", "control"])]
    rows, contrast_of = [], []
    for _, r in judged.iterrows():
        c = placed[r["id"], tuple((n, r[n]) for n in names)]
        d, _ = per_seed(c, logs)
        sd = float(np.std(d, ddof=1)) if len(d) >= 2 else math.nan
        rows.append(
            {k: r[k] for k in ["id", "contrast", "kind", *names, "step", "extractor", "metric", "role"]}
            | {"n_pairs": len(d), "sd_log": sd}
        )
        contrast_of.append(c)
    table = pd.DataFrame(rows, columns=["id", "contrast", "kind", *names, *TAIL])
    if table.empty:
        return table
    ok = np.isfinite(table["sd_log"].astype(float)) & (table["sd_log"].astype(float) > 0)
    confirmatory = table["role"] == "confirmatory"
    # Every member counts, as in the analysis's Holm: one without spread is simulated as never rejected (p = 1).
    members = table.index[confirmatory]
    effect = math.log(plan.smallest_effect)
    table["simulations"], table["family_size"] = sims, len(members)
    table["rule"] = np.where(
        confirmatory,
        f"{vocab.TESTS[plan.test]}, Holm over {len(members)}, at a true ratio of {plan.smallest_effect:g}",
        f"paired TOST within ±{plan.margin:.0%}, at a true ratio of 1",
    )
    table["assumed_ratio"] = np.where(confirmatory, plan.smallest_effect, 1.0)
    hypotheses = {}  # row -> (test, margin) of the rows declared test: equivalence or noninferiority
    for index, c in zip(table.index, contrast_of):
        hypothesis = HYPOTHESES[c.spec.test]
        if hypothesis.margin:
            hypotheses[index] = (c.spec.test, margin_of(c, plan))
            rule = hypothesis.rule.format(margin=f"{round(100 * hypotheses[index][1], 6):g}%")
            holm_over = f", Holm over {len(members)}" if confirmatory[index] else ""
            table.loc[index, "rule"] = f"{rule}{holm_over}, at a true ratio of 1"
            table.loc[index, "assumed_ratio"] = 1.0
    if len(members):
        sds, ns = table.loc[members, "sd_log"].tolist(), table.loc[members, "n_pairs"].tolist()
        tested = [hypotheses.get(index, (DEFAULT_TEST, None)) for index in members]

        @functools.cache  # every member's bisection asks for the family's power at the same few n
        def family(n: int | None) -> np.ndarray:
            rng = group_rng(plan.seed, ("power", "confirmatory"))  # common random numbers across n: a smooth curve
            n_of = ns if n is None else [n] * len(ns)
            return holm_power(plan.test, effect, sds, n_of, alpha, sims, rng, tested)

        table.loc[members, "power"] = family(None)
        for i, index in enumerate(members):  # the family shares one n; each member's need is where it crosses 80%
            table.loc[index, "seeds_needed"] = _seeds_needed(lambda n, i=i: family(n)[i], plan.max_seeds)
    for index in table.index[(table["role"] == "control") & ok]:
        r = table.loc[index]
        hypothesis, margin = hypotheses.get(index, (CONTROL_TEST, plan.margin))

        def tost_at(n: int, r=r, hypothesis=hypothesis, margin=margin) -> float:
            rng = group_rng(plan.seed, ("power", r["contrast"]))
            return tost_power(margin, r["sd_log"], n, alpha, sims, rng, hypothesis)

        table.loc[index, "power"] = tost_at(int(r["n_pairs"]))
        table.loc[index, "seeds_needed"] = _seeds_needed(tost_at, plan.max_seeds)
    table.loc[~ok, "power"] = math.nan
    # Printed to the precision the simulations give: the Monte Carlo SE is at most 0.5 / sqrt(simulations).
    table["power"] = table["power"].astype(float).round(power_decimals(sims))
    table["seeds_needed"] = table["seeds_needed"].astype("Int64")
    table["note"] = np.where(ok, "", "no spread over seeds (fewer than 2, or identical): power undefined")
    return table


def _power_of(evidence: Evidence) -> pd.DataFrame:
    """power_table on the contrasts table's rows and the per-seed log primary metric of every cell."""
    plan, runs = evidence.plan, evidence.runs
    names = plan.design.names
    values = as_cells(wide(runs[usable(runs) & at_primary(runs, plan)], names, "value"), names)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(values.where(values > 0))
    found, _, _ = contrasts_of(plan)
    return power_table(evidence.table("contrasts"), found, logs, plan)


def _power_note(plan: Plan) -> str:
    return (
        f"Simulated power ({plan.simulations} studies, seed {plan.seed}) of the rule each confirmatory and "
        f"control contrast is judged by, at the SD over seeds of its own per-seed contrast; seeds_needed for "
        f"{plan.record['power_target']:.0%} power (NA: more than {plan.max_seeds})."
    )


register_table("power", category="diagnostics", build=_power_of, note=_power_note)
