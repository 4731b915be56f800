"""results/<study>/findings.md: the study's answer, formatted from the tables and plan.json that `ganablate stats`
wrote, and the same page as .rst beside it for the Snakemake report.

The answers come first (the confirmatory family, the controls, the remedies; a sequential study's looks right after
them), then the plan and the rest; exploratory rows are counted by verdict with a pointer to their table, not listed.
Nothing here computes a statistic or decides a verdict: every number is a cell of a table or a value of plan.json
(or a count of rows), and every word that states a result (better, worse, equivalent, identical, inconclusive, a
trend) is a table's. A sequential study's declared rows read their verdict and interval from looks.csv, the look
that reached it. Axis and level names come from plan.json and the tables, never from this module.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ganablate.analysis.looks import OPEN
from ganablate.catalog import entries
from ganablate.files import atomic_write_text
from ganablate.report.view import StudyView
from ganablate.study import vocab
from ganablate.study.contrasts import CONTROL_TEST, DEFAULT_TEST, KINDS, named

HYPOTHESES = entries("hypotheses")
DIRECTIONS = tuple(HYPOTHESES[DEFAULT_TEST]["words"][:2])  # a difference's verdicts that point one way: better, worse
INTERACTIONS = [name for name, kind in entries("kinds").items() if kind.get("page") == "interactions"]
DECLARED = ("confirmatory", "control")  # the roles that answer the study's questions; the rest is exploratory


def fmt(x) -> str:
    """Every number of the page: 3 significant digits (tests/test_findings.py reads them back from the tables)."""
    return "NA" if x is None or pd.isna(x) else f"{x:.3g}"


def count(x) -> str:
    """A count (seeds, runs, degrees of freedom) in full: 3 significant digits would round 1234 runs."""
    return "NA" if x is None or pd.isna(x) else str(int(x))


def fmt_p(p, name: str = "p") -> str:
    return f"{name} NA" if pd.isna(p) else (f"{name} < 0.001" if p < 0.001 else f"{name} = {fmt(p)}")


def ci(low, high, level: str) -> str:
    return f"{level} CI NA" if pd.isna(low) or pd.isna(high) else f"{level} CI {fmt(low)}–{fmt(high)}"


def text(x) -> str:
    """A text cell: pandas reads an empty one as NaN."""
    return x if isinstance(x, str) else ""


SECTIONS: list[Callable[[Page], list[str]]] = []


def section(method: Callable[[Page], list[str]]) -> Callable[[Page], list[str]]:
    """A section of the page (its lines): the page shows them in the order Page defines them."""
    SECTIONS.append(method)
    return method


class Page:
    """The tables of one study and the page they make, section by section."""

    def __init__(self, tables: str | Path):
        self.study = study = StudyView(tables)
        self.plan = study.plan
        self.contrasts = study.table("contrasts")
        self.power, self.trend, self.mechanism, self.failures, self.mixed, self.remedies = (
            study.table(name) for name in ("power", "trend", "mechanism", "failures", "mixed", "remedies")
        )
        self.runs = study.table("runs")
        self.dataset = self.runs["dataset"].iloc[0]
        self.margin = f"±{self.plan['equivalence_margin']:.0%}"
        self.final = study.primary(self.contrasts)
        declared = self.final[self.final["role"].isin(DECLARED)]
        # A sequential study's declared rows: their verdict and interval are the looks', not the fixed-n ones.
        self.sequential = "looks" in self.plan
        self.declared = self.at_looks(declared) if self.sequential else declared

    def at_looks(self, declared: pd.DataFrame) -> pd.DataFrame:
        """The declared rows of contrasts.csv, each with its row of looks.csv at the look that reached its verdict
        (the last look it was read at: a row is read until it is decided), joined on id and contrast; `verdict` is
        that look's decision (NaN where looks.csv has no row for it)."""
        looks = self.study.table("looks").sort_values("look", kind="stable")
        reached = looks.groupby(["id", "contrast"], sort=False).tail(1)
        reached = reached[["id", "contrast", "look", "seeds", "n", "ratio", "rci_low", "rci_high", "decision", "note"]]
        joined = declared.merge(
            reached.rename(columns={"ratio": "look_ratio", "note": "look_note"}), on=["id", "contrast"], how="left"
        )
        return joined.assign(verdict=joined["decision"])

    # --- pieces of sentences -----------------------------------------------------------------------

    def verdict(self, r: pd.Series) -> str:
        """The row's verdict in words; 'equivalent' only where the row's verdict is."""
        v, arms = r["verdict"], KINDS[r["kind"]].arms
        if v != vocab.IDENTICAL and HYPOTHESES[r["test"]].get("margin"):  # its margin is in its name
            return f"**{v}**"
        if v in DIRECTIONS and arms is not None:
            level, level_ref = arms(r)
            return f"{level} is **{v}** than {level_ref}"
        return {
            "equivalent": f"**equivalent** within {self.margin}",
            "identical": "**identical** runs (the same values in every seed pair; no test of equivalence)",
            "inconclusive": "**inconclusive**, neither a difference nor equivalence could be shown",
            vocab.NO_MATERIAL_DIFFERENCE: "**no material difference** (its adjusted interval inside the margin)",
            OPEN: "**open** (no verdict yet: it goes on to the next look)",
        }.get(v, f"**{v}**")

    def ratio(self, r: pd.Series) -> str:
        """The ratio with its CI, saying what it is a ratio of (its kind's words)."""
        return (
            f"{self.study.metric_name} ratio ({KINDS[r['kind']].words(r)}) {fmt(r['ratio'])} "
            f"({ci(r['ratio_ci_low'], r['ratio_ci_high'], self.study.level)}, paired over {count(r['n_pairs'])} "
            f"seeds, pair correlation {fmt(r['pair_correlation'])}){self.levels(r)}"
        )

    def levels(self, r: pd.Series) -> str:
        """A simple contrast's two arms at their levels beside the ratio, so that two arms that both failed do not
        read as 'a ratio of 1, no difference'; '' for the other kinds, which have no two arms."""
        arms = KINDS[r["kind"]].arms
        if arms is None or pd.isna(r["gmean_level"]) or pd.isna(r["gmean_level_ref"]):
            return ""
        level, level_ref = arms(r, full=True)
        return (
            f", {entries('metrics')[r['metric']]['label']} {fmt(r['gmean_level'])} ({level}) against "
            f"{fmt(r['gmean_level_ref'])} ({level_ref}) as geometric means over the paired seeds"
        )

    def interval(self, r: pd.Series, test: str) -> str:
        """The 1 - 2 alpha interval of a hypothesis with a margin, its p and the margin the data meet, in its words
        (its registry entry's `page`)."""
        interval, p, sign = HYPOTHESES[test]["page"]
        interval = interval.format(interval=f"{1 - 2 * self.plan['alpha']:.0%}")
        return (
            f"{interval} {fmt(r['equivalence_ci_low'])}–{fmt(r['equivalence_ci_high'])}, "
            f"{fmt_p(r['p_equivalence'], p)}; the data meet a margin of {sign}{fmt(r['equivalence_bound'])}"
        )

    def test(self, r: pd.Series) -> str:
        if HYPOTHESES[r["test"]].get("margin"):  # a declared test with a margin: its 1 - 2 alpha interval
            interval = self.interval(r, r["test"])
            return interval + (f", {fmt_p(r['p_holm'], 'Holm p')}" if r["role"] == "confirmatory" else "")
        if r["role"] == "confirmatory":
            return fmt_p(r["p_holm"], "Holm p")
        if r["role"] == "control":
            return self.interval(r, CONTROL_TEST)
        return fmt_p(r["p"], "p (unadjusted)")

    def sentence(self, r: pd.Series) -> str:
        """A declared row: its verdict, ratio and test; identical arms have no test to print, only the fact."""
        if self.sequential:
            return self.at_look(r)
        note = f" ({text(r['note'])})" if text(r["note"]) else ""
        if r["identical"]:
            return f"**{r['contrast']}**: {self.verdict(r)}, over {count(r['n_pairs'])} seeds.{note}"
        return f"**{r['contrast']}**: {self.verdict(r)}: {self.ratio(r)}; {self.test(r)}.{note}"

    def at_look(self, r: pd.Series) -> str:
        """A sequential study's declared row: the verdict and adjusted interval (the repeated CI) of the look that
        reached it, from looks.csv."""
        if pd.isna(r["look"]):
            return f"**{r['contrast']}**: no row in looks.csv."
        note = f" ({text(r['look_note'])})" if text(r["look_note"]) else ""
        at = f"at look {count(r['look'])}, {count(r['seeds'])} seeds"
        if r["verdict"] == vocab.IDENTICAL:
            return f"**{r['contrast']}**: {self.verdict(r)}, {at}.{note}"
        return (
            f"**{r['contrast']}**: {self.verdict(r)}: {self.study.metric_name} ratio ({KINDS[r['kind']].words(r)}) "
            f"{fmt(r['look_ratio'])} ({self.adjusted(r)}; {at}, {count(r['n'])} without a failed run){note}."
        )

    @staticmethod
    def adjusted(r: pd.Series) -> str:
        if pd.isna(r["rci_low"]) or pd.isna(r["rci_high"]):
            return "no adjusted interval"
        return f"adjusted interval {fmt(r['rci_low'])}–{fmt(r['rci_high'])}, the repeated CI"

    def tally(self, words: pd.Series) -> str:
        """How many rows say each word, the most frequent first: '5 **worse**, 5 **inconclusive**'."""
        counts = words.value_counts()
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return ", ".join(f"{count(n)} **{word}**" for word, n in ordered)

    def _match(self, table: pd.DataFrame, r: pd.Series, metric: str | None = None) -> pd.Series | None:
        """The row of `table` for the contrast of r: its id and cell, step and extractor; r's metric unless another
        is named."""
        hit = table[
            (table["id"] == r["id"])
            & np.logical_and.reduce([table[n] == r[n] for n in self.study.names])
            & (table["step"] == r["step"])
            & (table["extractor"] == r["extractor"])
            & (table["metric"] == (metric or r["metric"]))
        ]
        return None if hit.empty else hit.iloc[0]

    def power_clause(self, r: pd.Series) -> str:
        """The power of the row's fixed-n rule (power.csv); none for a sequential study, whose rule is its looks'."""
        p = None if self.sequential else self._match(self.power, r)
        if p is None or pd.isna(p["power"]):
            return ""
        target = f"{self.plan['power_target']:.0%}"
        need = (
            f"{count(p['seeds_needed'])} seeds would reach {target}"
            if pd.notna(p["seeds_needed"])
            else f"more than {count(self.plan['max_seeds'])} seeds would be needed for {target}"
        )
        note = f" ({text(p['note'])})" if text(p["note"]) else ""
        return f" Power of this rule ({p['rule']}) with {count(p['n_pairs'])} seeds: {fmt(p['power'])}; {need}.{note}"

    def secondary(self, r: pd.Series) -> str:
        s = self._match(self.contrasts, r, self.plan["secondary_metric"])
        if s is None:
            return ""
        return (
            f" Secondary {entries('metrics')[s['metric']]['label']}: ratio {fmt(s['ratio'])} "
            f"({ci(s['ratio_ci_low'], s['ratio_ci_high'], self.study.level)}){self.levels(s)}, {s['verdict']} "
            f"(exploratory)."
        )

    # --- sections: the answers first, then the plan and the rest --------------------------------------

    @section
    def header(self) -> list[str]:
        plan = self.plan
        source = (
            f"Generated by `ganablate findings` from the tables in {self.study.folder}; every number and "
            f"verdict is read from them. Regenerate rather than edit."
        )
        lines = [f"# Findings: study {plan['study']} ({self.dataset})", "", source]
        if plan["plan_changed_after_launch"]:
            warning = (
                f"**Warning: analysis plan changed after launch.** Its hash {plan['hash']} is not the one the "
                f"runs were launched with (launch hashes {', '.join(plan['launch_hashes'])}): the confirmatory "
                f"answer is not the one declared before the runs."
            )
            lines += ["", warning]
        return lines

    @section
    def answer(self) -> list[str]:
        rows = self.declared[self.declared["role"] == "confirmatory"]
        body = [f"- {self.sentence(r)}{self.power_clause(r)}{self.secondary(r)}" for _, r in rows.iterrows()]
        body += [
            f"- **{name}**: no row in contrasts.csv."
            for id_, name in named(self.plan["confirmatory"]).items()
            if id_ not in set(rows["id"])
        ]
        return ["", "## The confirmatory answer", "", *(body or ["- The plan declares no confirmatory contrast."])]

    @section
    def controls(self) -> list[str]:
        rows = self.declared[self.declared["role"] == "control"]
        lines = ["", "## Controls", ""]
        if rows.empty:
            return [*lines, "- The study has no control contrast."]
        identical = rows[rows["identical"].astype(bool)]
        judged = "its adjusted interval at the look beside it" if self.sequential else "the TOST interval beside it"
        lines.append(
            f"- {count((rows['verdict'] == 'equivalent').sum())} of {count(len(rows))} controls are "
            f"**equivalent** within {self.margin}, each judged on {judged}; "
            f"{count(len(identical))} gave identical runs and are listed apart (not counted as equivalent)."
        )
        lines += [f"- {self.sentence(r)}{self.power_clause(r)}" for _, r in rows.drop(identical.index).iterrows()]
        if not identical.empty:
            lines += ["", "Identical runs:", ""]
            lines += [f"- {self.sentence(r)}" for _, r in identical.iterrows()]
        return lines

    @section
    def remedies_section(self) -> list[str]:
        """remedies.csv as the practitioner's table: one row per remedy and cell of the other axes."""
        lines = ["", "## Remedies", ""]
        if self.remedies.empty:
            return [*lines, "- No remedies were declared (remedies.csv is empty)."]
        first = self.remedies.iloc[0]
        fix, in_broken = (
            f"{first['broken']}+R vs {first['working']}+{first['reference']}",
            f"{first['broken']}+R vs {first['broken']}+{first['reference']}",
        )
        arms = f"{self.study.metric_name} of each arm"
        header = [
            f"| remedy R | {fix}: {self.study.metric_name} ratio ({self.study.level} CI), {arms} | verdict | "
            f"{in_broken} | "
            f"verdict | time per step vs {first['reference']} | when to use |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        rows = [self.remedy(r) for _, r in self.study.ordered(self.remedies).iterrows()]
        notes = [
            f"- {self.study.cell_text(r)}: {text(r['note'])}" for _, r in self.remedies.iterrows() if text(r["note"])
        ]
        return [*lines, *header, *rows, *([""] + notes if notes else [])]

    def remedy(self, r: pd.Series) -> str:
        """A remedy's row: its comparisons (rows of contrasts.csv, as remedies.csv copies them), cost and use."""

        def compared(name: str) -> list[str]:
            if pd.isna(r[f"{name}_ratio"]):
                return ["not estimated", ""]
            interval = ci(r[f"{name}_ci_low"], r[f"{name}_ci_high"], self.study.level).removeprefix(
                f"{self.study.level} CI "
            )
            # each arm's level beside the ratio (R's first): two remedies that both failed do not read as a ratio of 1
            levels = r[[f"{name}_gmean_level", f"{name}_gmean_level_ref"]]
            arms = "" if levels.isna().any() else f", {fmt(levels.iloc[0])} vs {fmt(levels.iloc[1])}"
            return [f"{fmt(r[f'{name}_ratio'])} ({interval}){arms}", f"{r[f'{name}_verdict']} ({r[f'{name}_role']})"]

        cost = f"{fmt(r['cost_ratio'])}x" if pd.notna(r["cost_ratio"]) else "not measured"
        cells = [self.study.cell_text(r), *compared("fix"), *compared("in_broken"), cost, text(r["use"])]
        return "| " + " | ".join(cells) + " |"

    @section
    def looks_section(self) -> list[str]:
        """A sequential study's looks: when it looked, what each cell ran, where each verdict was reached."""
        if not self.sequential:
            return []
        looks = self.plan["looks"]
        counts = looks["counts"]
        at = ", ".join(map(str, counts)) if len(counts) <= 4 else f"{counts[0]}, {counts[1]}, ..., {counts[-1]}"
        paths = "the default paths" if looks["calibration_paths"] is None else f"{looks['calibration_paths']} paths"
        lines = [
            (
                f"- Looks at {at} seeds (first {looks['first']}, blocks of {looks['block']}, cap {looks['cap']}); "
                f"`{looks['spending']}` error spending, gamma {fmt(looks['gamma'])}; the paired t's boundary at each "
                f"look calibrated by simulation ({paths}, seed {looks['calibration_seed']}) and frozen at launch in "
                f"plan.json."
            ),
            f"- Seeds each cell ran (runs.csv): {self.seeds_per_cell()}.",
        ]
        for _, r in pd.concat([self.declared[self.declared["role"] == role] for role in DECLARED]).iterrows():
            if pd.isna(r["look"]):
                lines.append(f"- **{r['contrast']}**: no row in looks.csv.")
                continue
            reached = "still open after" if r["verdict"] == OPEN else "reached at"
            lines.append(
                f"- **{r['contrast']}** ({r['role']}): **{r['verdict']}** {reached} look {count(r['look'])} of "
                f"{count(len(counts))} ({count(r['seeds'])} seeds); {self.adjusted(r)} (the interval to quote)."
            )
        lines.append(
            "- Exploratory rows (every other contrast, the trends, the mechanism, the mixed model) are reported at the "
            "seeds that ran, with fixed-n intervals not adjusted for the looks."
        )
        return ["", "## Seeds and looks (sequential)", "", *lines]

    def seeds_per_cell(self) -> str:
        """The seeds each cell ran (its seeds in runs.csv), cells grouped by that count, the most seeds first; the
        largest group (of fewest seeds on a tie: the cells that stopped first) last, as every other cell."""
        names = self.study.names
        ran = self.runs.drop_duplicates([*names, "seed"]).groupby(names, sort=False).size().rename("n").reset_index()
        groups = {n: self.study.ordered(cells) for n, cells in ran.groupby("n")}
        if len(groups) == 1:
            return f"{count(next(iter(groups)))} in every cell"
        rest = max(groups, key=lambda n: (len(groups[n]), -n))
        listed = [
            f"{count(n)} in " + ", ".join(f"({self.study.cell_text(c)})" for _, c in groups[n].iterrows())
            for n in sorted(groups, reverse=True)
            if n != rest
        ]
        return "; ".join([*listed, f"{count(rest)} in every other cell"])

    @section
    def plan_section(self) -> list[str]:
        plan, study = self.plan, self.study
        family = "; ".join(named(plan["confirmatory"]).values()) or "none"
        further = "; ".join(named(plan["contrasts"]).values()) or "none"
        threshold = "none" if plan["failure_threshold"] is None else fmt(plan["failure_threshold"])
        axes = "; ".join(self.axis_line(a) for a in plan["axes"])
        seeds = (
            f"seeds in looks, up to {count(plan['looks']['cap'])} in a cell (Seeds and looks, above)"
            if self.sequential
            else f"seeds {', '.join(str(s) for s in plan['seeds'])} in every cell"
        )
        secondary = entries("metrics")[plan["secondary_metric"]]["label"]
        lines = [
            f"- Axes (the first is compared in the figures): {axes}.",
            f"- Design: {plan['design']}, {count(len(plan['cells']))} cells; {seeds}.",
            (
                f"- Primary outcome: {study.metric_name} on {study.extractor} features at the final step {study.step} "
                f"({study.better} is better); secondary: {secondary}."
            ),
            (
                f"- Primary test: {vocab.TESTS[plan['test']]}; effects are ratios of a level to another (geometric "
                f"mean over seeds) with {study.level} CIs."
            ),
            f"- Confirmatory family, Holm-adjusted at alpha {fmt(plan['alpha'])}: {family}.",
            f"- Further declared contrasts (outside the family): {further}.",
            (
                f"- Controls are judged by a paired TOST: equivalent when its interval lies within {self.margin} of a "
                f"ratio of 1. Why this margin: {plan['equivalence_justification'].strip()}"
            ),
            f"- Smallest effect of interest (for power): a ratio of {fmt(plan['smallest_effect'])}.",
            f"- Failure threshold: {threshold}; diverged runs: {plan['diverged_runs']}.",
        ]
        if plan.get("final_only"):
            scored = ", ".join(entries("metrics")[m]["label"] for m in plan["final_only"])
            lines.append(f"- Scored at the final step only (eval.final_only): {scored}.")
        return ["", f"## Analysis plan (hash {plan['hash']})", "", *lines]

    @staticmethod
    def axis_line(a: dict) -> str:
        levels = ", ".join(f"{x} (reference)" if x == a["reference"] else x for x in a["levels"])
        return f"**{a['name']}** (sets {a['sets']}{', ordered' if a['ordered'] else ''}): {levels}"

    @section
    def mechanism_section(self) -> list[str]:
        rows = self.study.primary(self.mechanism) if len(self.mechanism) else self.mechanism
        lines = ["", "## Mechanism", ""]
        if rows.empty:
            return [*lines, "- No mechanism was declared (mechanism.csv is empty)."]
        for _, m in self.study.ordered(rows).iterrows():
            where = self.study.cell_text(m) or "all cells"
            lines.append(f"- {where}: {self.recovered(m)} {self.gap(m)}")
        return lines

    def recovered(self, m: pd.Series) -> str:
        note = f" ({text(m['recovered_note'])})" if text(m["recovered_note"]) else ""
        if pd.isna(m["recovered"]) and pd.isna(m["recovered_raw"]):
            return (
                f"the share of {m['broken']}'s gap to {m['reference']} that {m['repaired']} recovers: not "
                f"estimated{note}."
            )
        level = self.study.level
        log, raw = (ci(m[f"{c}_ci_low"], m[f"{c}_ci_high"], level) for c in ("recovered", "recovered_raw"))
        return (
            f"{m['repaired']} recovers {fmt(m['recovered'])} of {m['broken']}'s gap to {m['reference']} on the "
            f"log scale ({log}, Fieller) and {fmt(m['recovered_raw'])} on the raw scale ({raw}), over "
            f"{count(m['n_pairs'])} seeds (1 = all of it, 0 = none).{note}"
        )

    def gap(self, m: pd.Series) -> str:
        """The context gap's association with the metric: a CI that holds 0 is no detectable association, never
        'no association'."""
        what = f"the context gap and log {self.study.metric_name} within levels of {m['axis']}"
        if pd.isna(m["gap_slope"]):
            return f"Association of {what}: not estimated ({text(m['gap_note'])})."
        interval = (
            f"{ci(m['gap_slope_ci_low'], m['gap_slope_ci_high'], self.study.level)}, "
            f"{fmt_p(m['gap_p_unadj'], 'p (unadjusted)')}, {count(m['gap_n_runs'])} runs, exploratory"
        )
        if m["gap_slope_ci_low"] <= 0 <= m["gap_slope_ci_high"]:
            return (
                f"No detectable association between {what}: slope {fmt(m['gap_slope'])} per logit of gap ({interval})."
            )
        return (
            f"Between {what}: log {self.study.metric_name} changes by {fmt(m['gap_slope'])} per logit of gap "
            f"({interval})."
        )

    @section
    def exploratory(self) -> list[str]:
        """The exploratory rows counted by verdict, each count pointing at the table that holds its rows: the
        interactions and trends of contrasts.csv (the kinds with a `page`), and the trends over training."""
        rows = self.final[self.final["kind"].isin(INTERACTIONS) & ~self.final["role"].isin(DECLARED)]
        lines = ["", "## Exploratory (unadjusted p; not part of the answer)", ""]
        for kind, group in rows.groupby("kind", sort=False):
            failed = (group["n_failed"] > 0).sum()
            with_failed = f"; {count(failed)} with a failed run in their cells (no verdict from the survivors)"
            lines.append(
                f"- Kind {kind}: {count(len(group))} rows in contrasts.csv, each with its ratio, {self.study.level} "
                f"CI and p: {self.tally(group['verdict'])}{with_failed if failed else ''}."
            )
        if rows.empty:
            lines.append(
                "- No exploratory interaction or trend in contrasts.csv (an interaction needs two axes, a "
                "trend an ordered axis)."
            )
        return [*lines, self.over_training()]

    def over_training(self) -> str:
        rows = self.study.primary(self.trend, final=False) if len(self.trend) else self.trend
        if rows.empty:
            return "- Over training: no trend in trend.csv (it needs two scored checkpoints)."
        first, last = rows["first_step"].unique(), rows["last_step"].unique()
        steps = f" from step {count(first[0])} to step {count(last[0])}" if len(first) == len(last) == 1 else ""
        words = rows["trend"].map(lambda word: text(word) or "not estimated")
        return (
            f"- Over training: {count(len(rows))} contrasts' log ratios{steps} (trend.csv, each with its slope per "
            f"1000 steps, {self.study.level} CI and p): {self.tally(words)}."
        )

    @section
    def failures_section(self) -> list[str]:
        failed = self.study.ordered(self.failures[self.failures["n_failed"] > 0])
        lines = ["", "## Failures", ""]
        if failed.empty:
            return [*lines, "- No run failed."]
        for _, f in failed.iterrows():
            lines.append(
                f"- {self.study.cell_text(f) or 'all'}: {count(f['n_failed'])} of {count(f['n_runs'])} runs failed "
                f"({count(f['n_diverged'])} diverged, {count(f['n_beyond_threshold'])} beyond the threshold, "
                f"{count(f['n_no_value'])} without a value); rate {fmt(f['failure_rate'])} "
                f"({ci(f['rate_ci_low'], f['rate_ci_high'], self.study.level)})."
            )
        return [*lines, "- Every other cell: no failed run."]

    @section
    def mixed_section(self) -> list[str]:
        lines = ["", "## Mixed model (exploratory sensitivity analysis)", ""]
        terms = self.mixed[self.mixed["chi2"].notna()] if len(self.mixed) else self.mixed
        if terms.empty:
            note = text(self.mixed["note"].iloc[0]) if len(self.mixed) else "mixed.csv is empty"
            return [*lines, f"- Not estimated ({note})."]
        t = terms.iloc[0]
        converged = "converged" if pd.notna(t["converged"]) and bool(t["converged"]) else "**did not converge**"
        lines.append(
            f"- `{t['formula']}` on the {t['transform']} scale, {count(t['n_runs'])} runs of "
            f"{count(t['n_seeds'])} seeds, {converged}; runs of one seed share {fmt(t['icc_seed'])} of the "
            f"variance."
        )
        lines += [
            f"- {r['term']}: Wald χ²({count(r['df'])}) = {fmt(r['chi2'])}, {fmt_p(r['p'])}."
            for _, r in terms.iterrows()
        ]
        return lines

    def markdown(self) -> str:
        return "\n".join(line for section in SECTIONS for line in section(self)) + "\n"


def to_rst(markdown: str) -> str:
    """The page as reStructuredText, for the Snakemake report's front page (docutils reads no Markdown): headings
    underlined, inline code in double backticks; bullets and bold are the same in both."""
    lines = []
    for line in markdown.splitlines():
        heading = re.match(r"(#+) (.*)", line)
        line = re.sub(r"`([^`]+)`", r"``\1``", heading.group(2) if heading else line)
        lines.append(line)
        if heading:
            lines.append("=-~"[min(len(heading.group(1)), 3) - 1] * len(line))
    return "\n".join(lines) + "\n"


def write_findings(tables: str | Path, out: str | Path) -> list[Path]:
    """out (Markdown) and, beside it, the same page as .rst. The axes, levels and plan are plan.json's (the
    tables'), so the page states what the statistics computed."""
    out = Path(out)
    page = Page(tables).markdown()
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, page)
    atomic_write_text(out.with_suffix(".rst"), to_rst(page))
    return [out, out.with_suffix(".rst")]
