"""The analysis plan: everything that decides a verdict, declared in config and frozen when the study launches.

The workflow writes plan.json before any training job (`ganablate plan`); every run records its hash in
summary.json; `ganablate stats` recomputes the plan from the config it is given and says "plan changed after
launch" when the runs were trained under another one.
"""

from __future__ import annotations

import json
from pathlib import Path

from ganablate.config import checkpoint_steps, config_hash
from ganablate.design import Declared, Design, declared_contrasts, design_of

DIVERGED_RULE = (
    "a run that diverged or has no value leaves its seed out of every contrast that involves its cell "
    "(n_failed counts them); no contrast with a failed run is called equivalent; failures are compared "
    "paired by seed (exact McNemar)"
)


POWER_TARGET = 0.8  # the power that power.csv's seeds_needed aims at


def alpha_of(stats_cfg: dict) -> float:
    return round(1 - stats_cfg["confidence_level"], 10)


def extractor_identity(config: dict) -> dict:
    """What fixes the features a metric is computed on: the extractor names and what builds them."""
    ev = config["eval"]
    return {
        "extractors": ev["extractors"],
        "primary": config["stats"]["primary_extractor"],
        "domain_epochs": ev["extractor_epochs"],
        "inception_weights": ev["inception_weights"],
        "dataset": config["dataset"]["name"],
    }


def contrast_name(d: Declared) -> str:
    """A declared contrast as one line: the name findings.md and contrasts.csv's `contrast` column use."""
    if d.kind == "trend":
        inner = f"{d.axis}: {d.level} vs {d.level_ref}" if d.axis else "log metric"
        name = f"trend over {d.by_axis} of {inner}"
    else:
        name = f"{d.axis}: {d.level} vs {d.level_ref}"
        if d.kind == "interaction":
            name += f", {d.by_axis}: {d.by_level} vs {d.by_level_ref}"
    within = ", ".join(f"{a}={lab}" for a, lab in d.within)
    return f"{name} | {within}" if within else name


def plan_of(config: dict) -> dict:
    """The plan as data (JSON-ready, key order fixed): what stats will decide with, known before any run."""
    cfg, design = config["stats"], design_of(config)
    return {
        "study": config["study"]["name"],
        **design.as_dict(),
        "design": config["study"]["design"] if isinstance(config["study"]["design"], str) else "cells",
        "primary_metric": cfg["primary_metric"],
        "secondary_metric": cfg["secondary_metric"],
        "extractor": cfg["primary_extractor"],
        "extractor_identity": extractor_identity(config),
        "final_step": config["train"]["steps"],
        "checkpoints": checkpoint_steps(config["train"]),
        "n_samples": config["eval"]["n_samples"],
        "test": cfg["test"],
        "confirmatory": [contrast_name(d) for d in declared(design, config, "confirmatory")],
        "contrasts": [contrast_name(d) for d in declared(design, config, "contrasts")],
        "mechanism": cfg["mechanism"],
        "equivalence_margin": cfg["equivalence_margin"],
        "equivalence_justification": cfg["equivalence_justification"],
        "smallest_effect": cfg["smallest_effect"],
        "power_target": POWER_TARGET,
        "alpha": alpha_of(cfg),
        "confidence_level": cfg["confidence_level"],
        "failure_threshold": cfg["failure_threshold"],
        "diverged_runs": DIVERGED_RULE,
        "seed": cfg["seed"],
        "bootstrap_resamples": cfg["bootstrap_resamples"],
        "power_simulations": cfg["power_simulations"],
        "max_seeds": cfg["max_seeds"],
        # The scoring plan, when it skips a metric anywhere (a plan that scores everything keeps its hash).
        **({"final_only": config["eval"]["final_only"]} if config["eval"]["final_only"] else {}),
    }


def declared(design: Design, config: dict, name: str) -> list[Declared]:
    return declared_contrasts(design, config["stats"][name], f"stats.{name}")


def plan_hash(plan: dict) -> str:
    return config_hash(plan)[:8]


def write_plan(config: dict, out: str | Path) -> Path:
    """plan.json at launch: the plan and its hash."""
    from ganablate.files import atomic_write_text

    plan = plan_of(config)
    atomic_write_text(Path(out), json.dumps({"hash": plan_hash(plan), **plan}, indent=2) + "\n")
    return Path(out)
