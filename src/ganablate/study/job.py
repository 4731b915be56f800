"""A job's config, assembled once: the config a command is given, the command line's values added, validated once, a
cell's levels applied once; and a job's params, the sections of it that the workflow hands each rule. Torch-free: the
Snakefile and every subcommand read it.

A feed level's way to the training step: the workflow's process validates the study once (check_config: the design,
its levels' registry names, every cell applied and checked) and hands each run job its cell's sections (params);
the job's process adds the command line's execution values to them, validates them once (job_config) and sets the
cell's registry levels, which the sections hold already. docs/pipeline.md counts it."""

from __future__ import annotations

import json
from pathlib import Path

from ganablate.errors import ConfigError, DesignError, UsageError
from ganablate.study.config import Checked, check_config, read_config_file, recorded, schema
from ganablate.study.design import REGISTRY_AXES, parse_cell, run_config
from ganablate.study.identity import EXECUTION, RunTag
from ganablate.study.layout import ACQUISITION
from ganablate.study.plan import read_plan


def given(path: str | None, text: str | None) -> tuple[dict, str, bool]:
    """The config a command is given, as read and not yet validated: (its mapping, the source its errors name,
    whether it is a whole study). text: --config-json, a rule's own sections (the Snakefile has checked the whole
    config already); else the YAML file at path."""
    if text:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--config-json: not valid JSON ({exc.msg})") from None
        return raw, "--config-json", False
    return read_config_file(path) or {}, str(path), True


def checked(raw, source: str, whole: bool, overrides: dict[str, dict] | None = None) -> Checked:
    """raw with the command line's values (section -> key -> value; None: not given) added, validated once."""
    given = {s: {k: v for k, v in values.items() if v is not None} for s, values in (overrides or {}).items()}
    if isinstance(raw, dict):
        raw = dict(raw)
        for section, values in given.items():
            if values and isinstance(raw.get(section, {}), dict):
                raw[section] = {**raw.get(section, {}), **values}
        if "steps" in given.get("train", {}) and isinstance(raw.get("train"), dict):
            raw["train"] = _fewer_steps(raw["train"])
    return check_config(raw, source=source, whole=whole)


def _fewer_steps(train: dict) -> dict:
    """Fewer steps asked for on the command line: the checkpoints beyond them go too."""
    checkpoints = train.get("checkpoints", schema()["properties"]["train"]["properties"]["checkpoints"]["default"])
    if not isinstance(checkpoints, list) or not isinstance(train["steps"], int):
        return train  # the schema names what is wrong
    return {**train, "checkpoints": [s for s in checkpoints if not isinstance(s, int) or s <= train["steps"]]}


def job_config(raw, source: str, whole: bool, cell: dict[str, str] | None = None, overrides=None) -> dict:
    """The config a job runs with: raw with the command line's values added, validated once, and the cell's levels
    applied once. whole: the study's config, whose cell is one of the checked cells (or, a cell outside its design,
    applied and validated as its own config); else a job's own sections, in which the cell's registry levels (a feed,
    a norm: the label is the value) are set before the one validation and its other labels only recorded."""
    if not whole:
        if cell and isinstance(raw, dict):
            touched = {REGISTRY_AXES[name][0].split(".")[0] for name in cell if name in REGISTRY_AXES}
            if all(isinstance(raw.get(section, {}), dict) for section in touched):
                raw = run_config({**{section: {} for section in touched}, **raw}, cell, whole=False)
        return checked(raw, source, whole, overrides).config
    study = checked(raw, source, whole, overrides)
    if not cell:
        return study.config
    labels = tuple(cell.get(name) for name in study.design.names)
    if labels in study.cells and len(cell) == len(labels):
        return study.cells[labels]
    try:
        config = run_config(study.config, cell, study.design)
    except DesignError as exc:
        raise UsageError(str(exc)) from None
    return check_config(config, source="--cell").config


def cell_of(text: str | None) -> dict[str, str]:
    """--cell's axis=label,... as a mapping, in the order given."""
    try:
        return parse_cell(text or "")
    except DesignError as exc:
        raise UsageError(str(exc)) from None


def run_tag(cell: dict[str, str], plan: str | Path | None) -> RunTag:
    """What a run records of its study: its cell, and the hash of the plan.json given (--plan)."""
    return RunTag(cell, None if plan is None else read_plan(plan, "--plan")["hash"])


def params(config: dict, *names: str, eval_keys: list[str] | None = None) -> str:
    """The named sections of a job's config as compact JSON: a rule's params, so only they trigger its rerun.
    Where and how the job executes (EXECUTION: resources, threads and environment variables) and how the data is
    found (layout.ACQUISITION: the data job's --download) are no part of them, so moving a finished study to a GPU
    node reruns nothing; LATER_KEYS at their defaults neither (config.recorded). eval_keys narrows the eval section
    to the keys a rule reads (the rest take schema defaults)."""
    dropped = {"train": EXECUTION, "eval": EXECUTION, "dataset": ACQUISITION}
    chosen = {
        name: recorded(name, {k: v for k, v in config[name].items() if k not in dropped.get(name, ())})
        for name in names
    }
    if eval_keys is not None:
        chosen["eval"] = {key: config["eval"][key] for key in eval_keys}
    return json.dumps(canonical(chosen), separators=(",", ":"))


def canonical(value, ordered: bool = False):
    """value with every mapping's keys sorted, so that params do not change with the config file's key order;
    except study.axes and an axis's levels given as a mapping, whose order is the design's (run paths, facets, the
    plan frozen at launch) and is kept."""
    if isinstance(value, dict):
        items = value.items() if ordered else sorted(value.items())
        return {key: canonical(v, ordered=key in ("axes", "levels")) for key, v in items}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value
