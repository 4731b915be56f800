"""A run's identity, torch-free: what it computes from (its config without the execution settings), the hash of
that and its seed, and the tag that ties it to its study (its cell and the plan frozen at launch)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ganablate.study.config import config_hash, recorded

# The train keys that say where and how a run executes, not what it computes.
EXECUTION = ("device", "threads", "stack", "runs_per_job")


@dataclass(frozen=True)
class RunTag:
    """What a run records about the study it belongs to: its cell (axis -> level label) and the hash of the plan
    that was frozen when the study launched."""

    cell: dict[str, str] = field(default_factory=dict)
    plan_hash: str | None = None


NO_TAG = RunTag()


def computed_config(config: dict) -> dict:
    """What a run computes from: the dataset, model and train sections with a cell's levels applied, without the
    execution settings (where and on how many threads it runs)."""
    train = {k: v for k, v in config["train"].items() if k not in EXECUTION}
    return {
        "dataset": config["dataset"],
        "model": recorded("model", config["model"]),
        "train": recorded("train", train),
    }


def run_hash(config: dict, seed: int, stack: list[int] | None = None) -> str:
    """A run's identity: what it computes. Where and on how many threads it executes is none of it: a run killed
    on a GPU node resumes on a CPU one, or with fewer cores, instead of starting over; neither is train.stack as
    such. But a stack's runs differ from solo runs by float rounding: the seeds of a stack are part of each of
    its runs' identity."""
    key = {**computed_config(config), "seed": seed}
    if stack is not None and len(stack) > 1:
        key["stack"] = list(stack)
    return config_hash(key)
