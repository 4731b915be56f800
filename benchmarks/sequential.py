"""Operating characteristics of the sequential seeds plan, by simulation (not a test; issue 35).

    python benchmarks/sequential.py [--paths N] [--out results/benchmarks]
    python benchmarks/sequential.py --smoke --out DIR       # the same code at the smallest sizes (tests run it)

For every role (a difference as a member of a Holm family of three, at its first level alpha / 3: the power of a
member whose siblings are not rejected; a control's TOST; non-inferiority), every per-seed SD this project has
measured and every true FID ratio (1.0 the null, 1.1 the margin), the probability of each verdict and the seeds
used (mean, 90th percentile) under three designs: sequential (looks at 4, 8, ..., 32, Hwang-Shih-DeCani spending,
gamma = -2), fixed 13 seeds and fixed 32 (the cap), each judged by the same rule at alpha = 0.05 and margin 10%.
Also the share of Gaussian per-seed contrasts that shape_flag() flags, per n. Writes
sequential-<time>.csv (one row per design, role, ratio and SD) and prints markdown summaries.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ganablate.analysis import sequential as seq
from ganablate.files import atomic_write_text

ALPHA, MARGIN, FAMILY = 0.05, 0.1, 3
FIRST, BLOCK, CAP, GAMMA = 4, 4, 32, -2.0
SDS = (0.02, 0.05, 0.10, 0.12, 0.17)
RATIOS = (1.0, 1.1, 1.2, 1.5, 1.67, 3.6)
SMOKE = {"paths": 2000, "calibration": 20_000, "sds": (0.05,), "ratios": (1.0, 1.1, 1.5)}
ROLES = ("difference", "equivalence", "noninferiority")
VERDICTS = ("better", "worse", seq.NO_MATERIAL_DIFFERENCE, "equivalent", "not equivalent")
VERDICTS += ("non-inferior", "inferior", "inconclusive")
# The verdict a role should reach at a true ratio (the margin, 1.1, has none: any claim there is the error's rate).
RIGHT = {"difference": ("worse", seq.NO_MATERIAL_DIFFERENCE), "equivalence": ("not equivalent", "equivalent")}
RIGHT["noninferiority"] = ("inferior", "non-inferior")
# The rows docs/analysis.md summarizes: (role, ratio, SD).
SUMMARY = [("difference", r, sd) for r, sd in ((3.6, 0.05), (1.67, 0.05), (1.5, 0.17), (1.2, 0.17), (1.0, 0.05))]
SUMMARY += [("equivalence", 1.0, sd) for sd in (0.02, 0.05, 0.17)] + [
    ("noninferiority", 1.0, sd) for sd in (0.05, 0.17)
]


def column(word: str) -> str:
    return "p_" + word.replace(" ", "_").replace("-", "_")


def designs(calibration: int | None) -> dict[str, dict[str, tuple[list[int], np.ndarray]]]:
    """Per design and role, the looks and the boundaries: a difference two-sided at alpha / FAMILY (per side
    alpha / (2 FAMILY)), a control and non-inferiority one-sided at alpha (their 1 - 2 alpha interval).
    calibration: the paths that calibrate the sequential boundaries (None: the module's default)."""
    looks = list(range(FIRST, CAP + 1, BLOCK))
    levels = {"difference": ALPHA / (2 * FAMILY), "equivalence": ALPHA, "noninferiority": ALPHA}
    table = {f"sequential {FIRST}+{BLOCK}..{CAP}": {}, "fixed 13": {}, f"fixed {CAP}": {}}
    for role, level in levels.items():
        c = seq.boundaries(looks, CAP, level, "hsd", GAMMA, paths=calibration)
        table[f"sequential {FIRST}+{BLOCK}..{CAP}"][role] = looks, c
        for n in (13, CAP):
            table[f"fixed {n}"][role] = [n], np.array([stats.t.isf(level, n - 1)])
    return table


def characteristics(paths: int, calibration: int | None, sds, ratios) -> pd.DataFrame:
    rows = []
    for design, roles in designs(calibration).items():
        for role, (looks, c) in roles.items():
            for sd in sds:
                for ratio in ratios:
                    oc = seq.simulate(role, math.log(ratio), sd, looks, c, margin=MARGIN, paths=paths, seed=101)
                    row = {"design": design, "role": role, "ratio": ratio, "sd": sd, "paths": paths}
                    row |= {column(w): oc.get(w, 0.0) for w in VERDICTS}
                    row |= {"p_conclusive": 1 - oc["inconclusive"], "mean_seeds": oc["mean_seeds"]}
                    rows.append(row | {"p90_seeds": oc["p90_seeds"]})
    return pd.DataFrame(rows)


def judged(frame: pd.DataFrame) -> pd.Series:
    """Per row, P(the right verdict); NaN for a control or non-inferiority at the margin, where every claim is an
    error (false_claims)."""
    out = pd.Series(np.nan, index=frame.index)
    for role, (effect, null) in RIGHT.items():
        rows, at_null = frame["role"] == role, frame["ratio"] == 1.0
        undecidable = rows & (frame["ratio"] == 1 + MARGIN) & (role != "difference")  # a 10% effect is an effect
        out[rows & at_null] = frame[column(null)]
        out[rows & ~at_null & ~undecidable] = frame[column(effect)]
    return out


def false_claims(frame: pd.DataFrame) -> pd.Series:
    """P(a false claim): better or worse at ratio 1.0, equivalent or non-inferior at the margin; NaN elsewhere."""
    null = (frame["role"] == "difference") & (frame["ratio"] == 1.0)
    margin = (frame["role"] != "difference") & (frame["ratio"] == 1 + MARGIN)
    claim = frame[column("equivalent")].where(frame["role"] == "equivalence", frame[column("non-inferior")])
    return (frame[column("better")] + frame[column("worse")]).where(null, claim.where(margin))


def side_by_side(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per role, ratio and SD: the sequential design's P(right verdict) and seeds, the fixed designs' P."""
    frame = frame.assign(p=judged(frame))
    sequential = frame["design"].str.startswith("sequential")
    keys = ["role", "ratio", "sd"]
    table = frame[sequential].set_index(keys)[["p", "mean_seeds", "p90_seeds"]]
    table.columns = ["sequential: P(right)", "E[seeds]", "P90 seeds"]
    for design in frame.loc[~sequential, "design"].unique():
        table[f"{design}: P(right)"] = frame[frame["design"] == design].set_index(keys)["p"]
    return table.reset_index().round({"E[seeds]": 1}).round(3)


def summaries(frame: pd.DataFrame) -> str:
    type_i = frame.assign(p_false=false_claims(frame)).dropna(subset="p_false")
    type_i = type_i.pivot_table(index=["role", "sd"], columns="design", values="p_false").round(4).reset_index()
    table = side_by_side(frame)
    chosen = pd.MultiIndex.from_frame(table[["role", "ratio", "sd"]]).isin(SUMMARY)
    return "\n\n".join(
        [
            "Type-I error: P(better or worse) at ratio 1.0 for a difference at alpha/3 = 0.0167 (a member of a "
            "family of three), P(equivalent) and P(non-inferior) at the margin 1.1 at 0.05",
            type_i.to_markdown(index=False),
            "The summary in docs/analysis.md: P(the right verdict) (worse, or no material difference at 1.0; "
            "equivalent and non-inferior at 1.0, not equivalent and inferior above the margin) and seeds used",
            table[chosen].to_markdown(index=False),
            "Every row",
            table.to_markdown(index=False),
        ]
    )


def flag_rates(samples: int) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    return pd.DataFrame(
        [
            {"n": n, "flagged": np.mean([seq.shape_flag(rng.standard_normal(n)) is not None for _ in range(samples)])}
            for n in (4, 8, 16, 32)
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--paths", type=int, default=100_000, help="simulated studies per row")
    parser.add_argument("--out", default="results/benchmarks")
    parser.add_argument("--smoke", action="store_true", help="the smallest sizes: exercises the code, measures nothing")
    args = parser.parse_args()
    paths, calibration, sds, ratios = args.paths, None, SDS, RATIOS
    if args.smoke:
        paths, calibration, sds, ratios = SMOKE["paths"], SMOKE["calibration"], SMOKE["sds"], SMOKE["ratios"]
    start = time.perf_counter()
    frame = characteristics(paths, calibration, sds, ratios)
    print(summaries(frame))
    print("\nShare of Gaussian per-seed contrasts that shape_flag() flags\n")
    print(flag_rates(200 if args.smoke else 5000).to_markdown(index=False))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"sequential-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    atomic_write_text(path, frame.to_csv(index=False))
    print(f"\n{len(frame)} rows in {time.perf_counter() - start:.0f} s; written: {path}")


if __name__ == "__main__":
    main()
