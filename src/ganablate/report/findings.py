"""results/<study>/findings.md: the study's answer, formatted from the tables and plan.json that `ganablate stats`
wrote, and the same page as .rst beside it for the Snakemake report.

Nothing here computes a statistic or decides a verdict: every number is a cell of a table or a value of plan.json,
and every word that states a result (better, worse, equivalent, identical, inconclusive, a trend) is a table's.
Axis and level names come from plan.json and the tables, never from this module.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ganablate.catalog import entries
from ganablate.files import atomic_write_text
from ganablate.report.view import StudyView
from ganablate.study import vocab


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


# How contrasts.csv's name marks a contrast declared `test: equivalence` or `test: noninferiority` (plan.contrast_name).
HYPOTHESIS = re.compile(r" \((equivalence|non-inferiority), margin [^)]*\)")


def text(x) -> str:
    """A text cell: pandas reads an empty one as NaN."""
    return x if isinstance(x, str) else ""


class Page:
    """The tables of one study and the page they make, section by section."""

    def __init__(self, tables: str | Path):
        self.study = study = StudyView(tables)
        self.plan = study.plan
        self.contrasts = study.table("contrasts")
        self.power, self.trend, self.mechanism, self.failures, self.mixed, self.remedies = (
            study.table(name) for name in ("power", "trend", "mechanism", "failures", "mixed", "remedies")
        )
        self.dataset = study.table("runs", hint="run `ganablate aggregate` first")["dataset"].iloc[0]
        self.margin = f"±{self.plan['equivalence_margin']:.0%}"
        self.final = study.primary(self.contrasts)

    # --- pieces of sentences -----------------------------------------------------------------------

    def verdict(self, r: pd.Series) -> str:
        """The row's verdict in words; 'equivalent' only where the row's verdict is."""
        v = r["verdict"]
        if v != "identical" and HYPOTHESIS.search(r["contrast"]):  # its margin is in its name
            return f"**{v}**"
        if v in ("better", "worse") and r["kind"] == "simple":
            level, level_ref = self.arms(r)
            return f"{level} is **{v}** than {level_ref}"
        return {
            "equivalent": f"**equivalent** within {self.margin}",
            "identical": "**identical** runs (the same values in every seed pair; no test of equivalence)",
            "inconclusive": "**inconclusive**, neither a difference nor equivalence could be shown",
        }.get(v, f"**{v}**")

    @staticmethod
    def arms(r: pd.Series) -> tuple[str, str]:
        """A simple contrast's two arms: its levels, or where it compares cells that differ on several axes (axis
        `feed,norm`, level `joint,ghost`) each cell as `feed=joint, norm=ghost`."""
        axes = str(r["axis"]).split(",")
        if len(axes) == 1:
            return r["level"], r["level_ref"]
        arm = [", ".join(f"{a}={lab}" for a, lab in zip(axes, str(r[k]).split(","))) for k in ("level", "level_ref")]
        return arm[0], arm[1]

    def ratio(self, r: pd.Series) -> str:
        """The ratio with its CI, saying what it is a ratio of (kind simple, interaction or trend)."""
        level, level_ref = self.arms(r)
        of = {
            "simple": f"{level} {'over' if ',' in str(r['axis']) else '/'} {level_ref}",
            "interaction": f"{r['axis']} {r['level']} / {r['level_ref']} at {r['by_axis']} = {r['by_level']} over at "
            f"{r['by_level_ref']}",
            "trend": f"per doubling of {r['by_axis']}",
            "linear": f"{r['axis']} {r['level']} over {r['level_ref']}",
        }.get(r["kind"], r["kind"])
        return (
            f"{self.study.metric_name} ratio ({of}) {fmt(r['ratio'])} "
            f"({ci(r['ratio_ci_low'], r['ratio_ci_high'], self.study.level)}, paired over {count(r['n_pairs'])} "
            f"seeds, pair correlation {fmt(r['pair_correlation'])}){self.levels(r)}"
        )

    def levels(self, r: pd.Series) -> str:
        """A simple contrast's two arms at their levels beside the ratio, so that two arms that both failed do not
        read as 'a ratio of 1, no difference'; '' for the other kinds, which have no two arms."""
        if r["kind"] != "simple" or pd.isna(r["gmean_level"]) or pd.isna(r["gmean_level_ref"]):
            return ""
        level, level_ref = (arm if "=" in arm else f"{r['axis']}={arm}" for arm in self.arms(r))
        return (
            f", {entries('metrics')[r['metric']]['label']} {fmt(r['gmean_level'])} ({level}) against "
            f"{fmt(r['gmean_level_ref'])} ({level_ref}) as geometric means over the paired seeds"
        )

    def tost(self, r: pd.Series) -> str:
        return (
            f"TOST interval {fmt(r['equivalence_ci_low'])}–{fmt(r['equivalence_ci_high'])}, "
            f"{fmt_p(r['p_equivalence'], 'TOST p')}; the data meet a margin of ±{fmt(r['equivalence_bound'])}"
        )

    def noninferiority(self, r: pd.Series) -> str:
        level = f"{1 - 2 * self.plan['alpha']:.0%}"
        return (
            f"{level} interval {fmt(r['equivalence_ci_low'])}–{fmt(r['equivalence_ci_high'])}, "
            f"{fmt_p(r['p_equivalence'], 'non-inferiority p')}; "
            f"the data meet a margin of +{fmt(r['equivalence_bound'])}"
        )

    def test(self, r: pd.Series) -> str:
        hypothesis = HYPOTHESIS.search(r["contrast"])
        if hypothesis:  # a declared equivalence or non-inferiority test: its 1 - 2 alpha interval, as controls'
            interval = self.tost(r) if hypothesis[1] == "equivalence" else self.noninferiority(r)
            return interval + (f", {fmt_p(r['p_holm'], 'Holm p')}" if r["role"] == "confirmatory" else "")
        if r["role"] == "confirmatory":
            return fmt_p(r["p_holm"], "Holm p")
        if r["role"] == "control":
            return self.tost(r)
        return fmt_p(r["p"], "p (unadjusted)")

    def sentence(self, r: pd.Series) -> str:
        note = f" ({text(r['note'])})" if text(r["note"]) else ""
        return f"**{r['contrast']}**: {self.verdict(r)}: {self.ratio(r)}; {self.test(r)}.{note}"

    def _match(self, table: pd.DataFrame, r: pd.Series, metric: str | None = None) -> pd.Series | None:
        """The row of `table` for the contrast of r (its step and extractor; r's metric unless another is named)."""
        hit = table[
            (table["contrast"] == r["contrast"])
            & (table["step"] == r["step"])
            & (table["extractor"] == r["extractor"])
            & (table["metric"] == (metric or r["metric"]))
        ]
        return None if hit.empty else hit.iloc[0]

    def power_clause(self, r: pd.Series) -> str:
        p = self._match(self.power, r)
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

    # --- sections ----------------------------------------------------------------------------------

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

    def plan_section(self) -> list[str]:
        plan, study = self.plan, self.study
        family = "; ".join(plan["confirmatory"]) or "none"
        threshold = "none" if plan["failure_threshold"] is None else fmt(plan["failure_threshold"])
        axes, seeds = "; ".join(self.axis_line(a) for a in plan["axes"]), ", ".join(str(s) for s in plan["seeds"])
        secondary = entries("metrics")[plan["secondary_metric"]]["label"]
        lines = [
            f"- Axes (the first is compared in the figures): {axes}.",
            f"- Design: {plan['design']}, {count(len(plan['cells']))} cells; seeds {seeds} in every cell.",
            (
                f"- Primary outcome: {study.metric_name} on {study.extractor} features at the final step {study.step} "
                f"({study.better} is better); secondary: {secondary}."
            ),
            (
                f"- Primary test: {vocab.TESTS[plan['test']]}; effects are ratios of a level to another (geometric "
                f"mean over seeds) with {study.level} CIs."
            ),
            f"- Confirmatory family, Holm-adjusted at alpha {fmt(plan['alpha'])}: {family}.",
            f"- Further declared contrasts (outside the family): {'; '.join(plan['contrasts']) or 'none'}.",
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

    def answer(self) -> list[str]:
        rows = self.final[self.final["role"] == "confirmatory"]
        body = [f"- {self.sentence(r)}{self.power_clause(r)}{self.secondary(r)}" for _, r in rows.iterrows()]
        body += [
            f"- **{name}**: no row in contrasts.csv."
            for name in self.plan["confirmatory"]
            if name not in set(rows["declared"])
        ]
        return ["", "## The confirmatory answer", "", *(body or ["- The plan declares no confirmatory contrast."])]

    def controls(self) -> list[str]:
        rows = self.final[self.final["role"] == "control"]
        identical = rows[rows["verdict"] == "identical"]
        tested = rows[rows["verdict"] != "identical"]
        lines = ["", "## Controls", ""]
        if rows.empty:
            return [*lines, "- The study has no control contrast."]
        lines.append(
            f"- {count((rows['verdict'] == 'equivalent').sum())} of {count(len(rows))} controls are "
            f"**equivalent** within {self.margin}, each judged on the TOST interval beside it; "
            f"{count(len(identical))} gave identical runs and are listed apart (not counted as equivalent)."
        )
        lines += [f"- {self.sentence(r)}{self.power_clause(r)}" for _, r in tested.iterrows()]
        if not identical.empty:
            lines += ["", "Identical runs:", ""]
            lines += [f"- {self.sentence(r)}" for _, r in identical.iterrows()]
        return lines

    def interactions(self) -> list[str]:
        rows = self.final[self.final["kind"].isin(["interaction", "trend"])]
        lines = ["", "## Interactions and trends", ""]
        if rows.empty:
            return [*lines, "- None in contrasts.csv (an interaction needs two axes, a trend an ordered axis)."]
        return lines + [
            f"- ({'confirmatory' if r['role'] == 'confirmatory' else 'exploratory'}) {self.sentence(r)}"
            for _, r in rows.iterrows()
        ]

    def over_training(self) -> list[str]:
        rows = self.study.primary(self.trend, final=False) if len(self.trend) else self.trend
        lines = ["", "## Over training (exploratory)", ""]
        if rows.empty:
            return [*lines, "- No trend over training in trend.csv (it needs two scored checkpoints)."]
        for _, t in rows.iterrows():
            trend = f"**{t['trend']}**" if text(t["trend"]) else "not estimated"
            note = f" ({text(t['note'])})" if text(t["note"]) else ""
            lines.append(
                f"- **{t['contrast']}**: ratio {fmt(t['ratio_first'])} at step {count(t['first_step'])}, "
                f"{fmt(t['ratio_last'])} at step {count(t['last_step'])}; log-ratio slope {fmt(t['slope_per_1000'])} "
                f"per 1000 steps ({ci(t['slope_ci_low'], t['slope_ci_high'], self.study.level)}, "
                f"{fmt_p(t['p_slope_unadj'], 'p (unadjusted)')}, {count(t['n_pairs'])} seeds): {trend}.{note}"
            )
        return lines

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
        lines = [
            *self.header(),
            *self.plan_section(),
            *self.answer(),
            *self.controls(),
            *self.interactions(),
            *self.over_training(),
            *self.mechanism_section(),
            *self.remedies_section(),
            *self.failures_section(),
            *self.mixed_section(),
        ]
        return "\n".join(lines) + "\n"


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


def write_findings(config: dict, tables: str | Path, out: str | Path) -> list[Path]:
    """out (Markdown) and, beside it, the same page as .rst. The axes, levels and plan are plan.json's (the
    tables'), not the config's, so the page states what the statistics computed; config is the CLI's, unused here."""
    out = Path(out)
    page = Page(tables).markdown()
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, page)
    atomic_write_text(out.with_suffix(".rst"), to_rst(page))
    return [out, out.with_suffix(".rst")]
