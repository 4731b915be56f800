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
from ganablate.study.contrasts import Spec, declared_all, title
from ganablate.study.design import Design, design_of
from ganablate.study.identity import EXECUTION
from ganablate.study.looks import KEYS as LOOK_KEYS
from ganablate.study.looks import Looks, looks_of

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


# Keys of train that decide no verdict: the execution keys, and how often a run logs and saves its state (a run's
# identity keeps these two: its train_log.csv depends on them).
NOT_COMPUTED = (*EXECUTION, "log_every", "state_every")


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
        # A sequential study's looks and how it spends its error over them (study/looks.py); a fixed one has none.
        **({"looks": looks.as_dict() | cfg["sequential"]} if (looks := looks_of(config["study"]["seeds"])) else {}),
        # Each as the config declares it: a list of titles, or where it names its contrasts, a mapping id: title.
        **{name: _record(cfg[name], specs) for name, specs in declared_all(design, cfg).items()},
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


def _record(given: list | dict, specs: list[Spec]) -> list[str] | dict[str, str]:
    if isinstance(given, dict):
        return {spec.id: title(spec) for spec in specs}
    return [title(spec) for spec in specs]


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

    def write(self, out: str | Path, boundaries: dict | None = None) -> Path:
        """plan.json at launch: the record and its hash; a sequential study's boundaries beside them (derived from the
        record by a seeded simulation, outside the hash; frozen here so that no later numpy moves them)."""
        from ganablate.files import atomic_write_text

        frozen = {"boundaries": boundaries} if boundaries else {}
        atomic_write_text(Path(out), json.dumps({"hash": self.hash, **self.record, **frozen}, indent=2) + "\n")
        return Path(out)

    @property
    def final_step(self) -> int:
        return self.record["final_step"]

    @property
    def alpha(self) -> float:
        return alpha_of(self.stats)

    @property
    def confidence(self) -> float:
        """The confidence level of every interval."""
        return self.stats["confidence_level"]

    # The stats section's settings, each by its name, where the analysis reads them (the raw section stays in
    # `stats`, for plan.json and the page).
    @property
    def metric(self) -> str:
        return self.stats["primary_metric"]

    @property
    def test(self) -> str:
        """The test of every contrast over seeds (stats.test; vocab.TESTS)."""
        return self.stats["test"]

    @property
    def margin(self) -> float:
        """The study's equivalence margin: a ratio within 1 + margin."""
        return self.stats["equivalence_margin"]

    @property
    def smallest_effect(self) -> float:
        return self.stats["smallest_effect"]

    @property
    def failure_threshold(self) -> float | None:
        return self.stats["failure_threshold"]

    @property
    def seed(self) -> int:
        """Of the bootstrap and the power simulations."""
        return self.stats["seed"]

    @property
    def resamples(self) -> int:
        return self.stats["bootstrap_resamples"]

    @property
    def simulations(self) -> int:
        return self.stats["power_simulations"]

    @property
    def max_seeds(self) -> int:
        return self.stats["max_seeds"]

    @property
    def mechanism(self) -> dict | None:
        return self.stats["mechanism"]

    @property
    def remedies(self) -> dict | None:
        return self.stats["remedies"]

    @property
    def primary(self) -> tuple[str, str, int]:
        """(metric, extractor, step) where every verdict is read: the primary metric and extractor, the final step."""
        return self.stats["primary_metric"], self.stats["primary_extractor"], self.final_step

    @property
    def looks(self) -> Looks | None:
        """A sequential study's looks (study.seeds as {first, block, cap}), None for a fixed one."""
        given = self.record.get("looks")
        return Looks(*(given[key] for key in LOOK_KEYS)) if given else None

    @functools.cached_property
    def declared(self) -> dict[str, list[Spec]]:
        """The contrasts the config declares: stats.confirmatory's, stats.controls' and stats.contrasts', by list
        (study/contrasts.DECLARED), each with its id."""
        return declared_all(self.design, self.stats)


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
