"""A study's tables as `ganablate aggregate` and `ganablate stats` write them (the spec's columns), and the sample
grids of its run folders, for any axes: the figures and the findings page are tested on these, without running the
statistics.

The metric is a made-up FID: the second level of the first axis is worse by `EFFECT` in the first cell of the other
axes and the same elsewhere; ratios, CIs and verdicts are computed from these values so that the tables agree.
"""

from __future__ import annotations

import itertools
import json
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import image
from scipy import stats as sps

from ganablate.analysis import contrasts, looks, mechanism, over_training, remedies
from ganablate.study.contrasts import derived_id

EFFECT = 1.4
METRICS = {"fid": "lower", "kid": "lower"}
DATASET = "fashion-mnist"
ALPHA = 0.05
MARGIN = 0.10
# The columns are the analysis package's own (one place names them); the values below are made up here.
MECHANISM_COLUMNS = tuple(mechanism.TAIL)


def contrast_columns(names: list[str]) -> list[str]:
    return [*contrasts.COLUMNS_HEAD, *names, *contrasts.COLUMNS_TAIL]


def trend_columns(names: list[str]) -> list[str]:
    return [*over_training.HEAD, *names, *over_training.TAIL]


def axis(levels, reference=None, values=None, ordered=False, sets="train.some_key") -> dict:
    return {
        "sets": sets,
        "levels": [str(x) for x in levels],
        "values": list(values or levels),
        "reference": reference or str(levels[0]),
        "ordered": ordered,
    }


class Synthetic:
    """axes: {name: axis(...)} in declared order; cells: the full product unless given."""

    def __init__(self, axes: dict, seeds=range(4), steps=(250, 500), diverged=frozenset(), cells=None):
        self.axes, self.names = axes, list(axes)
        self.cells = [tuple(c) for c in (cells or itertools.product(*(a["levels"] for a in axes.values())))]
        self.seeds, self.steps, self.diverged = list(seeds), list(steps), set(diverged)
        self.final = self.steps[-1]

    def cell(self, labels) -> dict:
        return dict(zip(self.names, labels))

    def value(self, cell: tuple, seed: int, step: int, metric: str) -> float:
        """NaN after a diverged run's first step."""
        if (cell, seed) in self.diverged and step > self.steps[0]:
            return math.nan
        levels = self.axes[self.names[0]]["levels"]
        worse = len(levels) > 1 and cell[0] == levels[1] and cell[1:] == self.cells[0][1:]
        effect = EFFECT if worse else 1.0
        noise = np.random.default_rng(zlib.crc32(f"{cell}{seed}".encode())).normal(0, 0.03)
        fid = (60.0 + 3.0 * seed) * effect * math.exp(noise) * 500.0 / (step + 250.0)
        return fid if metric == "fid" else fid / 1000

    def run_path(self, cell: tuple, seed: int) -> str:
        return "/".join([*(f"{n}~{label}" for n, label in zip(self.names, cell)), f"seed{seed}"])

    # --- tables ------------------------------------------------------------------------------------

    def runs(self) -> pd.DataFrame:
        rows = []
        for cell, seed, step, metric in itertools.product(self.cells, self.seeds, self.steps, METRICS):
            failed = (cell, seed) in self.diverged
            rows.append(
                {
                    "dataset": DATASET,
                    **self.cell(cell),
                    "seed": seed,
                    "status": "diverged" if failed else "completed",
                    "steps_done": self.steps[0] + 7 if failed else self.final,
                    "step": step,
                    "extractor": "domain",
                    "metric": metric,
                    "value": self.value(cell, seed, step, metric),
                }
            )
        return pd.DataFrame(rows)

    def train_logs(self) -> pd.DataFrame:
        return (
            self.runs()[["dataset", *self.names, "seed", "status", "steps_done", "step"]]
            .drop_duplicates()
            .assign(loss_d=1.2, loss_g=0.8, d_acc=0.7, context_gap=0.05)
        )

    def summary(self) -> pd.DataFrame:
        rows = []
        for cell, step, metric in itertools.product(self.cells, self.steps, METRICS):
            x = np.array([self.value(cell, s, step, metric) for s in self.seeds])
            ok = x[np.isfinite(x)]
            mean, sd = (ok.mean(), ok.std(ddof=1)) if len(ok) > 1 else (ok.mean() if len(ok) else math.nan, math.nan)
            half = sps.t.ppf(0.975, len(ok) - 1) * sd / math.sqrt(len(ok)) if len(ok) > 1 else math.nan
            low, high = (ok.min(), ok.max()) if len(ok) else (math.nan, math.nan)
            rows.append(
                {
                    **self.cell(cell),
                    "step": step,
                    "extractor": "domain",
                    "metric": metric,
                    "n": len(ok),
                    "n_failed": len(x) - len(ok),
                    "mean": mean,
                    "sd": sd,
                    "mean_ci_low": mean - half,
                    "mean_ci_high": mean + half,
                    "median": np.median(ok) if len(ok) else math.nan,
                    "median_ci_low": low,
                    "median_ci_high": high,
                    "gmean": mean,
                    "gmean_ci_low": mean - half,
                    "gmean_ci_high": mean + half,
                    "iqm": mean,
                    "iqm_ci_low": low,
                    "iqm_ci_high": high,
                    "min": low,
                    "max": high,
                    "note": "",
                }
            )
        return pd.DataFrame(rows)

    def log_ratios(self, cell: tuple, ref: tuple, step: int, metric: str = "fid") -> np.ndarray:
        d = np.array(
            [math.log(self.value(cell, s, step, metric) / self.value(ref, s, step, metric)) for s in self.seeds]
        )
        return d  # NaN where a run diverged: test() leaves that seed's pair out

    def simple(self) -> list[dict]:
        """Every level against its axis's reference, in every cell of the other axes that the design holds."""
        rows = []
        for i, name in enumerate(self.names):
            reference = self.axes[name]["reference"]
            for cell in self.cells:
                ref = cell[:i] + (reference,) + cell[i + 1 :]
                if cell[i] == reference or ref not in self.cells:
                    continue
                for step, metric in itertools.product(self.steps, METRICS):
                    rows.append(
                        self._row(
                            name, cell[i], reference, i, cell, self.log_ratios(cell, ref, step, metric), step, metric
                        )
                        | self.levels(cell, ref, step, metric)
                    )
        return rows

    def levels(self, cell: tuple, ref: tuple, step: int, metric: str) -> dict:
        """Each arm's geometric mean over the seeds where both have a value (contrasts.csv's gmean_level*)."""
        both = np.array([[self.value(c, s, step, metric) for c in (cell, ref)] for s in self.seeds])
        both = both[np.isfinite(both).all(axis=1)]
        if not len(both):
            return {}
        level, level_ref = np.exp(np.log(both).mean(axis=0))
        return {"gmean_level": float(level), "gmean_level_ref": float(level_ref)}

    def _row(
        self,
        name: str,
        level: str,
        reference: str,
        i: int,
        cell: tuple,
        d: np.ndarray,
        step: int,
        metric: str,
        kind: str = "simple",
    ) -> dict:
        labels = self.cell(cell) | {name: "*"}
        where = ", ".join(f"{n}={v}" for n, v in labels.items() if v != "*")
        contrast = f"{name}: {level} vs {reference}" + (f" | {where}" if where else "")
        return {
            "contrast": contrast,
            "kind": kind,
            "axis": name,
            "level": level,
            "level_ref": reference,
            "by_axis": "",
            "by_level": "",
            "by_level_ref": "",
            **labels,
            "step": step,
            "extractor": "domain",
            "metric": metric,
            "better": METRICS[metric],
        } | self.test(d)

    def test(self, d: np.ndarray) -> dict:
        d = d[np.isfinite(d)]
        n = len(d)
        tail = contrasts.COLUMNS_TAIL
        out = dict.fromkeys(
            tail[tail.index("pair_correlation") : tail.index("verdict")],
            math.nan,
        ) | {"n_pairs": n, "n_failed": len(self.seeds) - n, "identical": False, "note": ""}
        if n < 2:
            return out | {"verdict": "inconclusive", "note": f"{n} usable seed pair(s)"}
        se = d.std(ddof=1) / math.sqrt(n)
        t, t2 = sps.t.ppf(1 - ALPHA / 2, n - 1), sps.t.ppf(1 - ALPHA, n - 1)
        bound = max(abs(d.mean() - t2 * se), abs(d.mean() + t2 * se))
        out |= {
            "pair_correlation": 0.5,
            "ratio": math.exp(d.mean()),
            "ratio_ci_low": math.exp(d.mean() - t * se),
            "ratio_ci_high": math.exp(d.mean() + t * se),
            "p": float(sps.ttest_1samp(d, 0).pvalue),
            "equivalence_ci_low": math.exp(d.mean() - t2 * se),
            "equivalence_ci_high": math.exp(d.mean() + t2 * se),
            "equivalence_bound": math.expm1(bound),
            "p_failures": 1.0,
        }
        out["p_equivalence"] = 0.001 if out["equivalence_bound"] < MARGIN else 0.4
        return out

    def contrasts(self, confirmatory: list[str]) -> pd.DataFrame:
        rows = self.simple()
        if len(self.names) > 1 and all(len(self.axes[n]["levels"]) > 1 for n in self.names[:2]):
            rows.append(self._interaction())
        rows += [self._trend(i) for i, name in enumerate(self.names) if self.axes[name]["ordered"]]
        table = pd.DataFrame(rows, columns=contrast_columns(self.names))
        table["id"], table["test"] = table["contrast"].map(derived_id), "difference"
        primary = (table["metric"] == "fid") & (table["step"] == self.final)
        table["declared"] = table["contrast"].where(table["contrast"].isin(confirmatory), "")
        table["role"] = np.select(
            [primary & table["contrast"].isin(confirmatory), primary & (table["kind"] == "simple")],
            ["confirmatory", "control"],
            "exploratory",
        )
        family = table["role"] == "confirmatory"
        table.loc[family, "p_holm"] = np.minimum(1.0, table.loc[family, "p"] * family.sum())
        table["verdict"] = pd.Series([self._verdict(r) for _, r in table.iterrows()], index=table.index, dtype=object)
        return table

    def _interaction(self) -> dict:
        a, b = self.names[:2]
        ra, rb = self.axes[a]["reference"], self.axes[b]["reference"]
        la, lb = (next(x for x in self.axes[n]["levels"] if x != ref) for n, ref in ((a, ra), (b, rb)))
        base = self.cells[0][2:]
        d = self.log_ratios((la, lb, *base), (ra, lb, *base), self.final) - self.log_ratios(
            (la, rb, *base), (ra, rb, *base), self.final
        )
        row = self._row(a, la, ra, 0, (la, "*", *base), d, self.final, "fid", "interaction")
        return row | {
            "contrast": f"{a}: {la} vs {ra} x {b}: {lb} vs {rb}",
            "by_axis": b,
            "by_level": lb,
            "by_level_ref": rb,
        }

    def _trend(self, i: int) -> dict:
        name = self.names[i]
        d = self.log_ratios(self.cells[-1], self.cells[0], self.final) / 2
        row = self._row(name, "", "", i, self.cells[0], d, self.final, "fid", "trend")
        return row | {"contrast": f"fid per doubling of {name}", "axis": "", "by_axis": name}

    @staticmethod
    def _verdict(r: pd.Series) -> str:
        if r["kind"] == "simple" and r["role"] == "control" and r["equivalence_bound"] < MARGIN:
            return "equivalent"
        p = r["p_holm"] if r["role"] == "confirmatory" else r["p"]
        if p < ALPHA:
            return "worse" if r["ratio"] > 1 else "better"
        return "equivalent" if r["equivalence_bound"] < MARGIN else "inconclusive"

    def power(self, contrasts: pd.DataFrame) -> pd.DataFrame:
        rows = contrasts[contrasts["role"].isin(["confirmatory", "control"])]
        return rows[["id", "contrast", "kind", *self.names, "step", "extractor", "metric", "role", "n_pairs"]].assign(
            rule=np.where(rows["role"] == "confirmatory", "paired t, Holm", "paired TOST"),
            sd_log=0.03,
            assumed_ratio=1.25,
            family_size=int((rows["role"] == "confirmatory").sum()),
            simulations=2000,
            power=0.91,
            seeds_needed=3,
            note="",
        )

    def outcomes(self) -> pd.DataFrame:
        """Per run: its primary metric at the final step and why it failed (no failure threshold: diverged only)."""
        rows = []
        for cell, seed in itertools.product(self.cells, self.seeds):
            failed = (cell, seed) in self.diverged
            rows.append(
                {
                    **self.cell(cell),
                    "seed": seed,
                    "status": "diverged" if failed else "completed",
                    "value": self.value(cell, seed, self.final, "fid"),
                    "failure": "diverged" if failed else "",
                }
            )
        return pd.DataFrame(rows)

    def failures(self) -> pd.DataFrame:
        rows = []
        for cell in self.cells:
            failed = sum((cell, s) in self.diverged for s in self.seeds)
            rows.append(
                {
                    **self.cell(cell),
                    "n_runs": len(self.seeds),
                    "n_diverged": failed,
                    "n_beyond_threshold": 0,
                    "n_no_value": 0,
                    "n_failed": failed,
                    "failure_rate": failed / len(self.seeds),
                    "rate_ci_low": 0.0,
                    "rate_ci_high": 0.6,
                }
            )
        return pd.DataFrame(rows)

    def mixed(self) -> pd.DataFrame:
        terms = [*self.names, *(f"{a}:{b}" for a, b in itertools.combinations(self.names, 2))]
        return pd.DataFrame(
            [
                {
                    "term": term,
                    "chi2": 12.5 + i,
                    "df": 2,
                    "p": 0.0021,
                    "metric": "fid",
                    "extractor": "domain",
                    "step": self.final,
                    "transform": "log",
                    "n_runs": len(self.cells) * len(self.seeds),
                    "n_seeds": len(self.seeds),
                    "var_seed": 0.011,
                    "var_seed_cells": 0.002,
                    "var_residual": 0.0009,
                    "icc_seed": 0.79,
                    "converged": True,
                    "formula": "log(fid) ~ " + " * ".join(self.names),
                    "note": "",
                }
                for i, term in enumerate(terms)
            ]
        )

    def context_gap(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {**self.cell(c), "n_runs": len(self.seeds), "context_gap_median": 0.05, "d_acc_median": 0.7}
                for c in self.cells
            ]
        )

    def mechanism(self, declared: dict | None) -> pd.DataFrame:
        if declared is None:
            return pd.DataFrame(columns=[*self.names, *MECHANISM_COLUMNS])
        i = self.names.index(declared["axis"])
        others = sorted({c[:i] + ("*",) + c[i + 1 :] for c in self.cells})
        rows = []
        for k, (cell, step) in enumerate(itertools.product(others, self.steps)):
            final = step == self.final
            rows.append(
                {
                    **self.cell(cell),
                    "step": step,
                    "metric": "fid",
                    "extractor": "domain",
                    **{key: declared[key] for key in ("axis", "reference", "broken", "repaired")},
                    "n_pairs": len(self.seeds),
                    "log_ratio_broken": 0.336,
                    "log_ratio_repaired": 0.0123,
                    "recovered": 0.963 - k / 100,
                    "recovered_ci_low": 0.871,
                    "recovered_ci_high": 1.04,
                    "recovered_raw": 0.948,
                    "recovered_raw_ci_low": 0.832,
                    "recovered_raw_ci_high": 1.07,
                    "gap_slope": 0.412 if final else math.nan,
                    "gap_slope_ci_low": -0.113 if final else math.nan,
                    "gap_slope_ci_high": 0.937 if final else math.nan,
                    "gap_p_unadj": 0.118 if final else math.nan,
                    "gap_n_runs": len(self.seeds) * 3,
                    "recovered_note": "",
                    "gap_note": "",
                }
            )
        return pd.DataFrame(rows, columns=[*self.names, *MECHANISM_COLUMNS])

    def trend(self) -> pd.DataFrame:
        rows = []
        for r in self.simple():
            if r["axis"] != self.names[0] or r["metric"] != "fid" or r["step"] != self.final:
                continue
            rows.append(
                {
                    key: r[key]
                    for key in ("contrast", "axis", "level", "level_ref", *self.names, "metric", "extractor", "n_pairs")
                }
                | {
                    "first_step": self.steps[0],
                    "last_step": self.final,
                    "ratio_first": 1.21,
                    "ratio_last": r["ratio"],
                    "slope_per_1000": 0.0734,
                    "slope_ci_low": -0.0211,
                    "slope_ci_high": 0.168,
                    "p_slope_unadj": 0.109,
                    "trend": "no detectable change",
                    "note": "",
                }
            )
        return pd.DataFrame(rows, columns=trend_columns(self.names))

    # --- the study ---------------------------------------------------------------------------------

    def plan(self, confirmatory: list[str], mechanism: dict | None, **changes) -> dict:
        axes = [
            {"name": n, **a, "shared_streams": ["G init", "D init", "real batches", "z"]} for n, a in self.axes.items()
        ]
        return {
            "hash": "3f9a0c1e",
            "launch_hashes": ["3f9a0c1e"],
            "plan_changed_after_launch": False,
            "study": "synthetic",
            "axes": axes,
            "cells": [list(c) for c in self.cells],
            "seeds": self.seeds,
            "design": "full",
            "primary_metric": "fid",
            "secondary_metric": "kid",
            "extractor": "domain",
            "final_step": self.final,
            "test": "paired_t_log",
            "alpha": ALPHA,
            "confidence_level": 1 - ALPHA,
            "confirmatory": confirmatory,
            "contrasts": [],
            "max_seeds": 40,
            "power_target": 0.8,
            "equivalence_margin": MARGIN,
            "equivalence_justification": "a tenth of the metric is within run-to-run noise of the extractor",
            "smallest_effect": 1.25,
            "failure_threshold": None,
            "mechanism": mechanism,
            "diverged_runs": "a diverged run leaves its seed pair out of the paired tests",
            "n_samples": 1000,
            "checkpoints": self.steps,
        } | changes

    def write(
        self, root: Path, confirmatory: int | list[str] = 1, mechanism: dict | None = None, images=True, **plan_changes
    ) -> Path:
        """root/tables (the tables and plan.json) and, with images, root/runs (the sample grids); the tables folder.
        confirmatory: the contrast names of the family, or how many of the first axis's primary rows it holds."""
        tables = root / "tables"
        tables.mkdir(parents=True)
        if isinstance(confirmatory, int):
            first = [
                r["contrast"]
                for r in self.simple()
                if r["axis"] == self.names[0] and r["metric"] == "fid" and r["step"] == self.final
            ]
            confirmatory = first[:confirmatory]
        contrasts = self.contrasts(confirmatory)
        built = {
            "runs": self.runs(),
            "train_logs": self.train_logs(),
            "summary": self.summary(),
            "contrasts": contrasts,
            "power": self.power(contrasts),
            "outcomes": self.outcomes(),
            "failures": self.failures(),
            "mixed": self.mixed(),
            "context_gap": self.context_gap(),
            "mechanism": self.mechanism(mechanism),
            "remedies": pd.DataFrame(columns=[*self.names, *remedies.TAIL]),  # none declared
            "trend": self.trend(),
            "looks": pd.DataFrame(columns=looks.COLUMNS),  # a fixed-seed study's
        }
        for name, table in built.items():
            table.to_csv(tables / f"{name}.csv", index=False)
        plan = self.plan(confirmatory, mechanism, **plan_changes)
        (tables / "plan.json").write_text(json.dumps(plan, indent=2) + "\n")
        if images:
            self.write_samples(root / "runs")
        return tables

    def write_samples(self, runs: Path) -> None:
        for cell, seed in itertools.product(self.cells, self.seeds):
            folder = runs / DATASET / self.run_path(cell, seed) / "samples"
            folder.mkdir(parents=True)
            for step in self.steps if (cell, seed) not in self.diverged else self.steps[:1]:
                pixels = np.random.default_rng(seed).random((34, 34))
                image.imsave(folder / f"step_{step}.png", pixels, cmap="gray")
