"""The analysis plan: everything that decides a verdict, declared in config and frozen when the study launches.

The workflow writes plan.json before any training job (`ganablate plan`); every run records its hash in
summary.json; `ganablate stats` builds the Plan from the config it is given, says "plan changed after launch" when
the runs were trained under another one, and hands the Plan, not the config, to every builder of the analysis.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path

from ganablate import __version__
from ganablate.errors import UsageError
from ganablate.study.config import checkpoint_steps, config_hash, recorded
from ganablate.study.design import Declared, Design, declared_contrasts, design_of

DIVERGED_RULE = (
    "a run that diverged or has no value leaves its seed out of every contrast that involves its cell "
    "(n_failed counts them); no contrast with a failed run is called equivalent; failures are compared "
    "paired by seed (exact McNemar)"
)


POWER_TARGET = 0.8  # the power that power.csv's seeds_needed aims at


def alpha_of(stats_cfg: dict) -> float:
    return round(1 - stats_cfg["confidence_level"], 10)


def extractor_identity(config: dict) -> dict:
    """What fixes the features a metric is computed on: the extractor names and what builds them, and the sha256 of
    the Inception weights' file where one is given (its path says nothing of what it holds)."""
    ev = config["eval"]
    weights = ev["inception_weights"]
    return {
        "extractors": ev["extractors"],
        "primary": config["stats"]["primary_extractor"],
        "domain_epochs": ev["extractor_epochs"],
        "inception_weights": weights,
        **({"inception_weights_sha256": _sha256(weights)} if weights and Path(weights).is_file() else {}),
        "dataset": config["dataset"]["name"],
    }


def _sha256(path: str) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# Keys of model and train that say where and how often a run reports, not what it computes.
NOT_COMPUTED = ("device", "threads", "stack", "runs_per_job", "log_every", "state_every")


def contrast_name(d: Declared) -> str:
    """A declared contrast as one line: the name findings.md and contrasts.csv's `contrast` column use. A declared
    hypothesis other than a difference follows the comparison, e.g. `feed: a vs b (non-inferiority, margin 10%)`;
    two cells that differ on several axes are named by those axes' levels: `feed=joint, norm=ghost vs feed=split,
    norm=batch`."""
    if d.kind == "trend":
        inner = f"{d.axis}: {d.level} vs {d.level_ref}" if d.axis else "log metric"
        name = f"trend over {d.by_axis} of {inner}"
    elif d.kind == "linear":
        name = f"{d.axis}[{linear_terms(d.weights)}]"
    elif len(d.axes) > 1:
        name = " vs ".join(cell_text(arm) for arm in d.arms)
    else:
        name = f"{d.axis}: {d.level} vs {d.level_ref}"
        if d.kind == "interaction":
            name += f", {d.by_axis}: {d.by_level} vs {d.by_level_ref}"
    if d.test != "difference":
        margin = "the study's margin" if d.margin is None else f"margin {round(100 * d.margin, 6):g}%"
        name += f" ({HYPOTHESIS_NAMES[d.test]}, {margin})"
    within = ", ".join(f"{a}={lab}" for a, lab in d.within)
    return f"{name} | {within}" if within else name


HYPOTHESIS_NAMES = {"equivalence": "equivalence", "noninferiority": "non-inferiority"}


def cell_text(labels: dict[str, str]) -> str:
    """Labels of some axes as `axis=label, axis=label`: one arm of a contrast that compares several axes."""
    return ", ".join(f"{a}={lab}" for a, lab in labels.items())


def _term(label: str, weight: float) -> str:
    return label if abs(weight) == 1 else f"{abs(weight):g}*{label}"


def linear_terms(weights: tuple[tuple[str, float], ...]) -> str:
    """A linear contrast's weights as one expression, the positive terms first (each side in the axis's level order):
    `joint + split_g_mixed - split - joint_consistent`, `2*joint - split - joint_consistent`."""
    positive, negative = linear_sides(weights)
    return " - ".join([positive, *(_term(lab, w) for lab, w in weights if w < 0)])


def linear_sides(weights: tuple[tuple[str, float], ...]) -> tuple[str, str]:
    """(the positive terms, the negative terms' magnitudes), each as `a + b`: contrasts.csv's level and level_ref
    of a linear contrast, whose ratio is the product of the one side's metrics (each to its weight) over the
    other's: with weights +-1, a ratio of ratios."""
    return tuple(" + ".join(_term(lab, w) for lab, w in weights if (w > 0) == sign) for sign in (True, False))


def plan_of(config: dict, design: Design | None = None) -> dict:
    """The plan as data (JSON-ready, key order fixed): what stats will decide with, known before any run. design:
    the config's, computed when not given."""
    cfg, design = config["stats"], design or design_of(config)
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
        "confirmatory": [contrast_name(d) for d in declared(design, cfg, "confirmatory")],
        "controls": [contrast_name(d) for d in declared(design, cfg, "controls")],
        "contrasts": [contrast_name(d) for d in declared(design, cfg, "contrasts")],
        "mechanism": cfg["mechanism"],
        "remedies": cfg["remedies"],
        # What the runs compute and how they are scored: a verdict means nothing apart from them.
        "model": recorded("model", config["model"]),
        "train": recorded("train", {k: v for k, v in config["train"].items() if k not in NOT_COMPUTED}),
        "g_mode": config["eval"]["g_mode"],
        # The verdict rules live in code, and have changed between releases.
        "ganablate": __version__,
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


def declared(design: Design, stats: dict, name: str) -> list[Declared]:
    """stats.<name>'s contrasts (stats: the config's stats section); those testing equivalence or non-inferiority
    carry their margin (their own, else stats.equivalence_margin)."""
    return declared_contrasts(design, stats[name], f"stats.{name}", stats["equivalence_margin"])


@dataclass(frozen=True)
class Plan:
    """The plan as the analysis decides with it, built once from a study's config: its design, its stats section as
    declared, and `record`, what plan.json holds (plan_of), whose hash the runs carry. Every builder
    of analysis/ takes the runs and a Plan, never the raw config: the final step, the primary metric and extractor,
    alpha and the declared contrasts are read here, parsed once."""

    design: Design
    stats: dict
    record: dict

    @classmethod
    def from_config(cls, config: dict) -> Plan:
        design = design_of(config)
        return cls(design, copy.deepcopy(config["stats"]), plan_of(config, design))

    @property
    def hash(self) -> str:
        return plan_hash(self.record)

    def write(self, out: str | Path) -> Path:
        """plan.json at launch: the record and its hash."""
        from ganablate.files import atomic_write_text

        atomic_write_text(Path(out), json.dumps({"hash": self.hash, **self.record}, indent=2) + "\n")
        return Path(out)

    @property
    def final_step(self) -> int:
        return self.record["final_step"]

    @property
    def alpha(self) -> float:
        return alpha_of(self.stats)

    @property
    def level(self) -> float:
        """The confidence level of every interval."""
        return self.stats["confidence_level"]

    @property
    def primary(self) -> tuple[str, str, int]:
        """(metric, extractor, step) where every verdict is read: the primary metric and extractor, the final step."""
        return self.stats["primary_metric"], self.stats["primary_extractor"], self.final_step

    @functools.cached_property
    def declared(self) -> dict[str, list[Declared]]:
        """stats.confirmatory's, stats.controls' and stats.contrasts' contrasts, by key."""
        return {name: declared(self.design, self.stats, name) for name in ("confirmatory", "controls", "contrasts")}


def plan_hash(plan: dict) -> str:
    return config_hash(plan)[:8]


def read_plan(path: str | Path, flag: str) -> dict:
    """A plan.json as `ganablate plan` (or `stats`, with its launch check) wrote it: a mapping with its hash. One that
    cannot be read, or is not one, is a UsageError of one line naming `flag`."""
    try:
        record = json.loads(Path(path).read_text())
        if not (isinstance(record, dict) and isinstance(record.get("hash"), str)):
            raise ValueError("no hash")
    except (OSError, ValueError) as exc:
        raise UsageError(f"{flag}: {path}: not a plan.json of ganablate's ({type(exc).__name__}: {exc})") from None
    return record
