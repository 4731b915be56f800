"""results/findings.md: the study's answer, formatted from the tables that `ganablate stats` wrote.

Nothing here computes a statistic or decides a verdict: every number and every word that states a result
(better, worse, equivalent, inconclusive, the share of the gap recovered) is a cell of a table.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from ganablate import stats
from ganablate.files import atomic_write_text


def fmt(x) -> str:
    """Every number of the page: 3 significant digits (tests/test_findings.py reads them back from the tables)."""
    return "NA" if x is None or pd.isna(x) else f"{x:.3g}"


def fmt_p(p, name: str = "p") -> str:
    return f"{name} NA" if pd.isna(p) else (f"{name} < 0.001" if p < 0.001 else f"{name} = {fmt(p)}")


def ci(low, high, level: str) -> str:
    return f"{level} CI NA" if pd.isna(low) or pd.isna(high) else f"{level} CI {fmt(low)}–{fmt(high)}"


class Tables:
    """The tables of one study, and the sentences they make."""

    def __init__(self, config: dict, tables: str | Path):
        self.config, self.cfg, self.folder = config, config["stats"], Path(tables)
        self.runs = stats.load_runs(tables)
        path = self.folder / "plan.json"
        if not path.is_file():
            raise stats.UsageError(f"--tables: {path} not found (run `ganablate stats` first)")
        self.plan = json.loads(path.read_text())
        read = {name: stats.read_table(tables, name) for name in stats.TABLES}
        self.summary, self.effects, self.anova, self.mixed = (read[n] for n in ("summary", "feed_effects",
                                                                                "interaction", "mixed"))
        self.failures, self.power, self.gaps, self.trend = (read[n] for n in ("failures", "power", "context_gap",
                                                                              "trend"))
        self.step, self.metric = self.plan["final_step"], self.plan["primary_metric"]
        self.mechanism = read["mechanism"][read["mechanism"]["step"] == self.step]
        self.name, self.ref = stats.NAMES[self.metric], self.plan["reference_feed"]
        self.level = f"{self.cfg['confidence_level']:.0%}"
        each = stats.ordered(self.runs[["feed", "norm"]].drop_duplicates(), config, ["norm", "feed"])
        self.norms = list(dict.fromkeys(each["norm"]))
        self.feeds = list(dict.fromkeys(stats.ordered(each, config, ["feed"])["feed"]))

    # --- rows --------------------------------------------------------------------------------------

    def _primary(self, table: pd.DataFrame) -> pd.DataFrame:
        return table[stats.primary_family(table, self.cfg, self.step)] if len(table) else table

    def rows(self, norm: str, metric: str | None = None) -> pd.DataFrame:
        """The comparisons of one norm at the final step (primary metric unless another is named)."""
        e = self.effects
        return e[(e["norm"] == norm) & (e["step"] == self.step) & (e["extractor"] == self.plan["extractor"])
                 & (e["metric"] == (metric or self.metric))]

    def _one(self, table: pd.DataFrame, **match) -> pd.Series | None:
        for key, value in match.items():
            table = table[table[key] == value]
        return None if table.empty else table.iloc[0]

    def median(self, feed: str, norm: str) -> str:
        r = self._one(self._primary(self.summary), feed=feed, norm=norm)
        if r is None or r["n"] == 0:
            return f"{feed}: no usable run"
        return f"{feed} {fmt(r['median'])} ({ci(r['median_ci_low'], r['median_ci_high'], self.level)})"

    # --- sentences ---------------------------------------------------------------------------------

    def comparison(self, e: pd.Series) -> str:
        """One comparison: its verdict (a column of feed_effects) and the numbers behind it."""
        what = f"**{e['feed']} vs {e['feed_ref']}**"
        ratio = (f"{self.name} ratio {fmt(e['ratio'])} ({ci(e['ratio_ci_low'], e['ratio_ci_high'], self.level)}, "
                 f"paired over {int(e['n_pairs'])} seeds)")
        if e["role"] == "confirmatory":
            test = fmt_p(e["p_holm"], "Holm p")
        else:
            test = fmt_p(e["p_holm_equivalence_family"], "Holm p (controls)")
        tost = fmt_p(e["p_equivalence"], f"TOST ±{self.cfg['equivalence_margin']:.0%} p")
        wins = (f"P({e['feed']} better within a seed) = {fmt(e['p_improve'])} "
                f"({ci(e['p_improve_ci_low'], e['p_improve_ci_high'], self.level)})")
        verdict = e["verdict"]
        if verdict in ("better", "worse"):
            text = f"{what}: {e['feed']} is **{verdict}** than {e['feed_ref']}: {ratio}; {test}; {wins}."
        elif verdict == "equivalent":
            text = (f"{what}: **equivalent** within ±{self.cfg['equivalence_margin']:.0%}: {ratio}; {tost}; "
                    f"{wins}.")
        else:
            text = (f"{what}: **inconclusive**, neither a difference nor equivalence could be shown: {ratio}; "
                    f"{test}; {tost}.")
        if isinstance(e["note"], str) and e["note"]:
            text += f" ({e['note']})"
        return text + self.power_clause(e)

    def power_clause(self, e: pd.Series) -> str:
        p = self._one(self.power, norm=e["norm"], feed_ref=e["feed_ref"], feed=e["feed"])
        if p is None or pd.isna(p["power"]):
            return ""
        need = (f"about {int(p['seeds_needed'])} seeds per variant give 80%" if pd.notna(p["seeds_needed"])
                else f"more than {self.cfg['max_seeds']} seeds per variant would be needed for 80%")
        return f" Power of this rule ({p['rule']}) with {int(p['n_pairs'])} seeds: {fmt(p['power'])}; {need}."

    def recovered(self, norm: str) -> str | None:
        m = self._one(self.mechanism, norm=norm)
        if m is None or pd.isna(m["recovered"]):
            return None
        return (f"**Mechanism.** joint_consistent recovers {fmt(m['recovered'])} of joint's gap to {m['feed_ref']} "
                f"on the log scale ({ci(m['recovered_ci_low'], m['recovered_ci_high'], self.level)}, Fieller, "
                f"{int(m['n_pairs'])} seeds; 1 = all of it, 0 = none).")

    def over_training(self, e: pd.Series) -> str:
        t = self._one(self.trend, norm=e["norm"], feed_ref=e["feed_ref"], feed=e["feed"])
        if t is None or not isinstance(t["trend"], str) or not t["trend"]:
            return ""
        said = {"widens": "the gap **widens**", "closes": "the gap **closes**"}.get(t["trend"], f"**{t['trend']}**")
        return (f" Over training (steps {int(t['first_step'])}–{int(t['last_step'])}): ratio {fmt(t['ratio_first'])} → "
                f"{fmt(t['ratio_last'])}; {said} (log-ratio slope {fmt(t['slope_per_1000'])} per "
                f"1000 steps, {ci(t['slope_ci_low'], t['slope_ci_high'], self.level)}, over {int(t['n_pairs'])} seeds).")

    def context_gap(self, norm: str) -> str:
        g = self.gaps[self.gaps["norm"] == norm]
        if g.empty:
            return "**Context gap.** Not logged."
        gaps = ", ".join(f"{r['feed']} {fmt(r['context_gap_median'])}" for _, r in g.iterrows())
        accs = ", ".join(f"{r['feed']} {fmt(r['d_acc_median'])}" for _, r in g.iterrows())
        text = (f"**Context gap.** Median over runs of the late-training context gap (logits): {gaps}; "
                f"D accuracy: {accs}.")
        m = self._one(self.mechanism, norm=norm)
        if m is None:
            return text
        if pd.isna(m["gap_slope"]):
            return text + f" Its association with {self.name} within feeds: not estimated ({m['gap_note']})."
        return (text + f" Within feeds (OLS log {self.name} ~ gap + feed, {int(m['gap_n_runs'])} runs), "
                f"log {self.name} changes by {fmt(m['gap_slope'])} per logit of gap "
                f"({ci(m['gap_slope_ci_low'], m['gap_slope_ci_high'], self.level)}, {fmt_p(m['gap_p_unadj'])}, "
                f"unadjusted, exploratory).")

    def failure_line(self, norm: str) -> str:
        parts = [f"{r['feed']} {r['n_failed']}/{r['n_runs']} ({ci(r['rate_ci_low'], r['rate_ci_high'], self.level)})"
                 for _, r in self.failures[self.failures["norm"] == norm].iterrows()]
        return "**Failed runs.** " + "; ".join(parts) + "."

    # --- page --------------------------------------------------------------------------------------

    def header(self) -> list[str]:
        plan, design = self.plan, self.plan["design"]
        low, high = design["seeds_min"], design["seeds_max"]
        seeds = f"{low}" if low == high else f"{low} to {high}"
        steps = ", ".join(str(s) for s in design["steps"])
        family = "; ".join(plan["confirmatory"]) or "none (no confirmatory comparison is in the study)"
        return [
            f"# Findings: feed mode × discriminator normalization ({design['dataset']})",
            "",
            f"Generated by `ganablate findings` from the tables in {self.folder}; every number and verdict is read "
            "from them. Regenerate rather than edit.",
            "",
            f"## Analysis plan (declared in the config before the runs; hash {plan['hash']})",
            "",
            f"- Primary outcome: {self.name} on {plan['extractor']} features at the final step {plan['final_step']} "
            f"({stats.BETTER[self.metric]} is better); secondary: {stats.NAMES[plan['secondary_metric']]}.",
            f"- Primary test: {stats.TESTS[plan['test']][1]}; effects are ratios (feed / reference, geometric mean "
            f"over seeds) with paired-t {self.level} CIs.",
            f"- Confirmatory family, Holm-adjusted at alpha {fmt(plan['alpha'])}: {family}.",
            f"- Every other comparison of the primary outcome is a negative control, judged by a paired TOST: "
            f"equivalent when the ratio lies within ±{plan['equivalence_margin']:.0%} (alpha {fmt(plan['alpha'])}).",
            f"- Smallest effect of interest (for power): a ratio of {plan['smallest_effect']:g}.",
            f"- Diverged runs: {plan['diverged_runs']}.",
            "",
            "## Study",
            "",
            f"- Variants: feeds {', '.join(self.feeds)} × norms {', '.join(self.norms)}; {seeds} seeds per variant "
            f"({design['variants']} variants, {design['runs']} runs); scored at steps {steps}.",
            f"- Failure rule: {stats.failure_rule(self.config)}.",
            f"- {self.interaction()}",
        ]

    def interaction(self) -> str:
        t = self._one(self.mixed, term="feed:norm")
        if t is None:
            note = self.mixed["note"].fillna("").iloc[0] if len(self.mixed) else "no table"
            return f"Feed × norm interaction: not estimated ({note})."
        a = self._one(self.anova, term="feed:norm")
        sensitivity = "" if a is None else (f"; unpaired OLS ANOVA (HC3) as a sensitivity analysis: "
                                            f"F = {fmt(a['F'])}, {fmt_p(a['p'])}")
        return (f"Feed × norm interaction (mixed model on {t['transform']} {self.name}, seed and seed × norm "
                f"random effects, {int(t['n_runs'])} runs): Wald χ²({int(t['df'])}) = {fmt(t['chi2'])}, "
                f"{fmt_p(t['p'])}; runs of one seed share {fmt(t['icc_seed'])} of the variance{sensitivity}.")

    def answer(self) -> list[str]:
        confirm = self._primary(self.effects)
        confirm = confirm[confirm["role"] == "confirmatory"]
        if confirm.empty:
            return []
        lines = ["", "## The confirmatory answer", ""]
        for _, e in confirm.iterrows():
            lines.append(f"- {e['norm']}: {self.comparison(e)}{self.over_training(e)}")
            secondary = self.rows(e["norm"], self.plan["secondary_metric"])
            s = self._one(secondary, feed_ref=e["feed_ref"], feed=e["feed"])
            if s is not None:
                lines[-1] += (f" Secondary {stats.NAMES[self.plan['secondary_metric']]}: ratio {fmt(s['ratio'])} "
                              f"({ci(s['ratio_ci_low'], s['ratio_ci_high'], self.level)}), {s['verdict']} "
                              f"(exploratory, unadjusted).")
        for norm in dict.fromkeys(confirm["norm"]):
            line = self.recovered(norm)
            if line:
                lines.append(f"- {norm}: {line}")
        return lines

    def section(self, norm: str) -> list[str]:
        medians = "; ".join(self.median(f, norm) for f in self.feeds)
        lines = ["", f"## norm = {norm}", "", f"- **Median {self.name}.** {medians}.", f"- {self.failure_line(norm)}"]
        rows = self.rows(norm)
        lines += [f"- {self.comparison(e)}" for _, e in rows.iterrows()]
        if rows.empty:
            lines.append("- No comparison: the study holds one feed of this norm.")
        line = self.recovered(norm)
        if line:
            lines.append(f"- {line}")
        lines.append(f"- {self.context_gap(norm)}")
        return lines

    def markdown(self) -> str:
        lines = self.header() + self.answer()
        for norm in self.norms:
            lines += self.section(norm)
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
    """out (Markdown) and, beside it, the same page as .rst."""
    out = Path(out)
    text = Tables(config, tables).markdown()
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)
    atomic_write_text(out.with_suffix(".rst"), to_rst(text))
    return [out, out.with_suffix(".rst")]
