"""The verdict rules: what contrasts.csv's verdict column says of each row, one short function per rule, over the
facts the engine computed (analysis/contrasts.py) with the pure estimators of estimators.py. The part to audit.

A hypothesis (a declared contrast's `test:`) is one register_hypothesis call beside its rule. Its literal settings
are read torch-free by catalog.py (config validation, the schema's `test` enum, contrast names and the page need
them): whether it is tested against a margin, its title in a contrast's name, the verdicts it gives, its rule in
power.csv and its words on the page. Its code: p (contrasts.csv's p_equivalence), beyond (p_beyond_margin), bound
(equivalence_bound) and simulated (its p on simulated studies at a true ratio of 1, for power.csv).

Every rule decides at alpha, on Holm's p over the confirmatory family for its members (each counted, an untestable
one as p = 1) and on the unadjusted p otherwise, in the metric's own direction (a ratio above 1 of a lower-is-better
metric is worse, also for a ratio of ratios or per doubling). Two outcomes come before any hypothesis:
- identical: the two arms of a contrast of two arms gave bitwise-equal values in every seed (and failed at the same
  seeds): a property of the code, not evidence, kept out of the counts of equivalent controls;
- failed runs in the compared cells: no verdict from the survivors (a difference is judged by the failures instead).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ganablate import catalog
from ganablate.analysis import estimators, sequential
from ganablate.analysis.estimators import holm
from ganablate.study.vocab import IDENTICAL, INCONCLUSIVE


@dataclass(frozen=True)
class Facts:
    """What the rules read, one array per row of the table."""

    alpha: float
    p: np.ndarray  # the p the verdict rests on (judged_p), Holm-adjusted for a confirmatory member
    beyond: np.ndarray  # p_beyond_margin, Holm-adjusted over the confirmatory members tested against a margin
    tost: np.ndarray  # the paired TOST (p_equivalence) shows equivalence, and no run failed
    better: np.ndarray  # the ratio lies on the metric's better side of 1
    more_failed: np.ndarray  # the level's arm failed at more seeds than level_ref's
    failed: np.ndarray  # a run of the compared cells failed
    identical: np.ndarray
    confirmatory: np.ndarray
    control: np.ndarray

    @classmethod
    def of(cls, table: pd.DataFrame, alpha: float) -> Facts:
        confirmatory, failed = (table["role"] == "confirmatory").to_numpy(), (table["n_failed"] > 0).to_numpy()
        margin = takes_margin(table["test"]).to_numpy()
        beyond = table["p_beyond_margin"].astype(float)
        return cls(
            alpha=alpha,
            p=np.where(confirmatory, table["p_holm"], judged_p(table)).astype(float),
            beyond=np.where(confirmatory, holm(beyond, pd.Series(confirmatory & margin, table.index)), beyond).astype(
                float
            ),
            tost=((table["p_equivalence"].astype(float) < alpha) & ~failed).to_numpy(),
            better=((table["ratio"].astype(float) > 1) == (table["better"] == "higher")).to_numpy(),
            more_failed=(table["n_failed_level"] > table["n_failed_level_ref"]).to_numpy(),
            failed=failed,
            identical=table["identical"].astype(bool).to_numpy(),
            confirmatory=confirmatory,
            control=(table["role"] == "control").to_numpy(),
        )


@dataclass(frozen=True)
class Hypothesis:
    name: str
    words: tuple[str, ...]  # the verdicts it gives besides identical and inconclusive
    verdict: Callable[[Facts, tuple[str, ...]], np.ndarray]  # (facts, words) -> every row's verdict under it
    p: Callable  # (d, margin, better) -> p_equivalence
    beyond: Callable  # (d, margin, better) -> p_beyond_margin
    bound: Callable  # (low, high, better) of the 1 - 2 alpha interval of mean log ratio -> equivalence_bound
    margin: bool = False  # tested against a margin (test: with margin:), its verdict on p_equivalence
    title: str | None = None  # in a contrast's name: "feed: a vs b (title, margin 10%)"
    rule: str | None = None  # power.csv's rule; {margin}: the margin in percent
    simulated: Callable | None = None  # (d: studies x seeds, margin) -> p per study, at a true ratio of 1
    page: tuple[str, str, str] | None = None  # findings.md: its interval, its p and the margin's sign
    sequential: sequential.Rule | None = None  # how a sequential study judges it at a look (analysis/looks.py)


HYPOTHESES: dict[str, Hypothesis] = {}


def register_hypothesis(name: str, **fields) -> None:
    """Add a hypothesis; `name` and the literal settings are read torch-free by catalog.py."""
    catalog.check_new("register_hypothesis", name, HYPOTHESES)
    HYPOTHESES[name] = Hypothesis(name, **fields)


def takes_margin(tests: pd.Series) -> pd.Series:
    return tests.map(lambda test: HYPOTHESES[test].margin)


def judged_p(table: pd.DataFrame) -> pd.Series:
    """The p each row's verdict rests on (what Holm adjusts over the confirmatory family): p for a difference,
    p_equivalence for a hypothesis with a margin; for a row with failed runs, the failures' McNemar p for a
    difference and none (p = 1 in Holm) for the others, whose survivors decide nothing."""
    margin = takes_margin(table["test"])
    p = table["p"].where(~margin, table["p_equivalence"])
    return p.where(~(table["n_failed"] > 0), table["p_failures"].where(~margin))


def verdicts(table: pd.DataFrame, alpha: float) -> pd.Series:
    """The verdict of every row of the contrasts table: its hypothesis's rule (the `test` column)."""
    facts, verdict = Facts.of(table, alpha), pd.Series(INCONCLUSIVE, index=table.index, dtype=object)
    for name, hypothesis in HYPOTHESES.items():
        rows = (table["test"] == name).to_numpy()
        if rows.any():
            verdict[rows] = hypothesis.verdict(facts, hypothesis.words)[rows]
    return verdict


def difference(f: Facts, words: tuple[str, ...]) -> np.ndarray:
    """better / worse at alpha, else inconclusive. Equivalent (the paired TOST) only for a control, which asks for
    it first, or an exploratory row; never for a confirmatory difference, whose TOST is not part of the family.
    With failed runs: better / worse by the failures' exact McNemar p (the arm that failed more is worse), else
    inconclusive."""
    better, worse, equivalent = words
    differs = f.p < f.alpha
    return np.select(
        [f.identical, f.failed & differs, f.failed, f.control & f.tost, differs, f.tost & ~f.confirmatory],
        [
            IDENTICAL,
            np.where(f.more_failed, worse, better),
            INCONCLUSIVE,
            equivalent,
            np.where(f.better, better, worse),
            equivalent,
        ],
        INCONCLUSIVE,
    )


def within_margin(f: Facts, words: tuple[str, ...]) -> np.ndarray:
    """Three outcomes: shown (its own test at alpha: equivalent, non-inferior), beyond (the 1 - 2 alpha interval
    wholly outside the margin, on the worse side for non-inferiority: not equivalent, inferior), else inconclusive;
    each Holm-adjusted over the family's members tested against a margin. No verdict from the survivors of failed
    runs."""
    shown, beyond = words
    ok = ~f.failed
    return np.select(
        [f.identical, (f.p < f.alpha) & ok, (f.beyond < f.alpha) & ok], [IDENTICAL, shown, beyond], INCONCLUSIVE
    )


register_hypothesis(
    "difference",
    words=("better", "worse", "equivalent"),
    verdict=difference,
    p=lambda d, margin, better: estimators.tost(d, margin),  # reported beside every difference
    beyond=lambda d, margin, better: estimators.beyond_equivalence(d, margin),
    bound=lambda low, high, better: estimators.equivalence_bound(low, high),
    sequential=sequential.DIFFERENCE,
)
register_hypothesis(
    "equivalence",
    words=("equivalent", "not equivalent"),
    verdict=within_margin,
    p=lambda d, margin, better: estimators.tost(d, margin),
    beyond=lambda d, margin, better: estimators.beyond_equivalence(d, margin),
    bound=lambda low, high, better: estimators.equivalence_bound(low, high),
    margin=True,
    title="equivalence",
    rule="paired TOST within ±{margin}",
    simulated=estimators.tost_rows,
    page=("TOST interval", "TOST p", "±"),
    sequential=sequential.EQUIVALENCE,
)
register_hypothesis(
    "noninferiority",
    words=("non-inferior", "inferior"),
    verdict=within_margin,
    p=estimators.noninferiority,
    beyond=estimators.beyond_noninferiority,
    bound=estimators.noninferiority_bound,
    margin=True,
    title="non-inferiority",
    rule="one-sided t for non-inferiority within +{margin}",
    # at a true ratio of 1 the metric's direction does not matter: the simulated contrast is symmetric about 0
    simulated=estimators.noninferiority_rows,
    page=("{interval} interval", "non-inferiority p", "+"),
    sequential=sequential.NONINFERIORITY,
)
