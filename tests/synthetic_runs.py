"""Small synthetic studies: run folders laid out as `ganablate train` + evaluation leave them, and runs.csv tables
as `ganablate aggregate` writes them (no training needed). Cells are dicts axis -> label."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import image

from ganablate.files import json_with_digest, sha256, with_digest
from ganablate.study.config import validate_config
from ganablate.study.design import run_path

METRIC_NAMES = ["fid", "is", "is_std", "kid", "kid_std", "precision", "recall"]
FEED_NORM = {"feed": ["split", "joint", "joint_consistent"], "norm": ["none", "batch"]}


def fid_of(cell: dict, seed: int, step: int) -> float:
    """joint is worse than split under batch norm only; joint_consistent sits with split; FID falls with training."""
    base = 60.0 + (25.0 if (cell.get("feed") == "joint" and cell.get("norm") == "batch") else 0.0) + 3.0 * seed % 7
    return base * 500.0 / (step + 250.0)


def cells_of(axes: dict[str, list[str]]) -> list[dict[str, str]]:
    return [dict(zip(axes, labels)) for labels in itertools.product(*axes.values())]


def make_runs(
    root: Path,
    axes: dict[str, list[str]] = FEED_NORM,
    seeds=range(4),
    steps=(250, 500),
    diverged=frozenset(),
    fid=fid_of,
    dataset="fashion-mnist",
    images=True,
    plan_hash=None,
) -> Path:
    """Write root/{dataset}/<axis>~<label>/.../seed{seed}/...; `diverged` holds (labels tuple, seed) of runs that
    diverged after the first step (NaN metrics from then on, a NaN row in the log)."""
    for cell in cells_of(axes):
        for seed in seeds:
            run = root / dataset / run_path(cell, seed)
            (run / "samples").mkdir(parents=True)
            failed = (tuple(cell.values()), seed) in diverged
            reached = steps[:1] if failed else steps
            lines = ["step,extractor,metric,value,n_samples,g_mode,status"]
            for step in steps:
                f = fid(cell, seed, step) if step in reached else math.nan
                values = {
                    "fid": f,
                    "is": 1 + 100 / f,
                    "is_std": 0.1 * f / f,
                    "kid": f / 1000,
                    "kid_std": f / f / 1000,
                    "precision": 1 - f / 200,
                    "recall": 1 - f / 300,
                }  # f / f: NaN where never reached
                ok = "ok" if step in reached else "not_reached"
                lines += [f"{step},domain,{m},{values[m]!r},100,eval,{ok}" for m in METRIC_NAMES]
            (run / "metrics.csv").write_text(with_digest("\n".join(lines) + "\n"))
            gap = 0.3 if (cell.get("feed") == "joint" and cell.get("norm") == "batch") else 0.01
            log = ["step,loss_d,loss_g,d_real,d_fake,d_acc,grad_norm_g,grad_norm_d,context_gap"]
            for step in range(50, steps[-1] + 1, 50):
                if failed and step > steps[0]:
                    log.append(f"{steps[0] + 7},nan,nan,nan,nan,nan,nan,nan,nan")
                    break
                log.append(f"{step},1.2,0.8,0.6,0.4,{0.7 + seed / 100},1.0,1.0,{gap + seed / 1000}")
            (run / "train_log.csv").write_text("\n".join(log) + "\n")
            summary = {
                "status": "diverged" if failed else "completed",
                "steps_done": steps[0] + 7 if failed else steps[-1],
                "dataset": dataset,
                "seed": seed,
                "cell": cell,
                "plan_hash": plan_hash,
                "config": {"train": {"steps": steps[-1], "checkpoints": list(steps[:-1])}},
                "sha256": {"train_log.csv": sha256("\n".join(log) + "\n")},
            }
            (run / "summary.json").write_text(json_with_digest(summary))
            if images:
                for step in reached:
                    pixels = np.random.default_rng(seed).random((34, 34))
                    image.imsave(run / "samples" / f"step_{step}.png", pixels, cmap="gray")
    return root


def study_config(axes: dict | None = None, seeds=4, steps=500, **stats) -> dict:
    """A validated config of that design; axes: {name: levels} or {name: axis spec} (feed x norm by default)."""
    axes = FEED_NORM if axes is None else axes
    spec = {name: value if isinstance(value, dict) else {"levels": list(value)} for name, value in axes.items()}
    return validate_config(
        {"study": {"axes": spec, "seeds": seeds}, "train": {"steps": steps, "checkpoints": []}, "stats": stats}
    )


def runs_table(
    values: dict[tuple, list[float]],
    axes: list[str] = ("feed", "norm"),
    step: int = 500,
    metric: str = "fid",
    diverged=frozenset(),
    dataset="fashion-mnist",
) -> pd.DataFrame:
    """runs.csv for one step and metric: values[labels tuple][seed]; (labels, seed) in `diverged` gets status
    diverged and a NaN value."""
    rows = []
    for labels, xs in values.items():
        for seed, x in enumerate(xs):
            failed = (labels, seed) in diverged
            rows.append(
                {
                    "dataset": dataset,
                    **dict(zip(axes, labels)),
                    "seed": seed,
                    "status": "diverged" if failed else "completed",
                    "steps_done": 3 if failed else step,
                    "plan_hash": None,
                    "step": step,
                    "extractor": "domain",
                    "metric": metric,
                    "value": math.nan if failed else float(x),
                }
            )
    return pd.DataFrame(rows)


# Six seeds' FID per (feed, norm) cell, as runs_table takes them: joint worse than split under batch norm,
# joint_consistent close to split; and the mechanism question they pose.
SPLIT = [40.0, 42.0, 45.0, 41.0, 50.0, 43.0]
JOINT = [55.0, 60.0, 48.0, 70.0, 52.0, 58.0]
CONSISTENT = [41.0, 44.0, 43.0, 47.0, 49.0, 40.0]
NONE_SPLIT = [30.0, 33.0, 31.0, 36.0, 29.0, 32.0]
NONE_JOINT = [31.0, 32.0, 34.0, 35.0, 30.0, 33.0]
FEED_NORM_FID = {
    ("split", "batch"): SPLIT,
    ("joint", "batch"): JOINT,
    ("joint_consistent", "batch"): CONSISTENT,
    ("split", "none"): NONE_SPLIT,
    ("joint", "none"): NONE_JOINT,
    ("joint_consistent", "none"): NONE_SPLIT,
}
FEED_MECHANISM = {"axis": "feed", "reference": "split", "broken": "joint", "repaired": "joint_consistent"}


def feed_norm_study(**stats) -> dict:
    """The feed x norm study at six seeds: FEED_MECHANISM, and joint against split under batch norm declared."""
    confirmatory = [{"compare": {"feed": "joint"}, "within": {"norm": "batch"}}]
    return study_config(seeds=6, mechanism=FEED_MECHANISM, confirmatory=confirmatory, **stats)
