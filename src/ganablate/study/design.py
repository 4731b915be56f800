"""The study's design as data: its axes (each a config key and its levels), the cells they span and where each
run lives. Torch-free: the Snakefile, config validation, aggregation, the analysis and the figures read it.

An axis is one entry of `study.axes`. `feed` and `norm` take their levels from the FEEDS and NORMS registries and
set train.feed and model.d_norm; any other axis names the key it sets (`sets: train.batch_size`). A cell is one
level of every axis; a run is a cell and a seed, in results/<study>/runs/<dataset>/<axis>~<label>/.../seed<S>.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ganablate import catalog
from ganablate.errors import DesignError
from ganablate.study.looks import looks_of

# The axes whose levels are code: the config key a level sets, and the registry that names them (catalog.py).
REGISTRY_AXES = {"feed": ("train.feed", "feeds"), "norm": ("model.d_norm", "norms")}
# Keys no axis may set: where a job runs is no part of what it computes, and the plan needs one final step.
# The first four are study/identity.py's EXECUTION, spelled here because identity.py stands on config.py, which reads
# designs (a test holds them equal); the others add keys a plan needs fixed across cells.
NOT_AXES = {
    "train.device": "an execution setting",
    "train.threads": "an execution setting",
    "train.stack": "an execution setting",
    "train.runs_per_job": "an execution setting",
    "train.steps": "the plan needs one final step for every cell (compare checkpoints instead)",
    "train.checkpoints": "the plan needs one final step for every cell",
    "train.state_every": "no part of what a run computes",
    "train.log_every": "no part of what a run computes",
}
SETTABLE_SECTIONS = ("model", "train")
# Column names of the tables: an axis may not take one.
RESERVED = {
    "dataset",
    "seed",
    "status",
    "steps_done",
    "step",
    "extractor",
    "metric",
    "value",
    "kind",
    "axis",
    "level",
    "level_ref",
    "by_axis",
    "by_level",
    "by_level_ref",
    "id",
    "contrast",
    "test",
    "margin",
    "identical",
    "role",
    "verdict",
    "n",
    "note",
}
SPANNED = "*"  # a table's axis column where a contrast spans that axis's levels
# Matched in full (fullmatch): with re.match, `$` also matches before a final newline, which would split a rule's
# shell line.
NAME = re.compile(r"[a-z][a-z0-9_]*")
LABEL = re.compile(r"[a-z0-9][a-z0-9._-]*")  # a path segment and a wildcard value: no '/', '~' or upper case

# A seed fixes four random streams (seeds.stream_seed). Levels of most keys share all four, so runs of one seed
# are paired on every one; these keys change what a stream draws (a width or the batch size changes the shapes
# drawn; D's init is drawn per family of norms, a norm's `family`), so across their levels the streams named
# here are not shared: for model.d_norm only across levels of different families (Axis.breaks).
STREAMS = ("G init", "D init", "real batches", "z")
BREAKS = {
    "model.arch": ("G init", "D init"),  # other networks draw other weights
    "model.d_norm": ("D init",),  # between families only
    "model.d_width": ("D init",),
    "model.g_width": ("G init",),
    "model.z_dim": ("G init", "z"),
    "train.batch_size": ("real batches", "z"),
}


def label_of(value) -> str:
    """The label of a level given as a bare value: its YAML spelling, lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


@dataclass(frozen=True)
class Axis:
    name: str
    sets: str  # "section.key"
    labels: tuple[str, ...]
    values: tuple
    reference: str
    ordered: bool = False

    @property
    def registry(self) -> str | None:
        """The registry whose entries are this axis's levels (catalog.REGISTRIES); None: plain config values."""
        return REGISTRY_AXES[self.name][1] if self.name in REGISTRY_AXES else None

    @property
    def breaks(self) -> tuple[str, ...]:
        """The random streams that runs of one seed do not share across this axis's levels: none of D's init for
        norms of one family."""
        if self.sets == "model.d_norm" and len(self.d_init_families) == 1:
            return ()
        return BREAKS.get(self.sets, ())

    @property
    def d_init_families(self) -> dict[str, list[str]]:
        """For the norm axis: family -> its levels here, the levels whose runs of one seed share D's init."""
        if self.sets != "model.d_norm":
            return {}
        families: dict[str, list[str]] = {}
        for label, value in zip(self.labels, self.values):
            families.setdefault(catalog.d_init_family(value), []).append(label)
        return families

    def value(self, label: str):
        return self.values[self.labels.index(label)]

    def position(self, label: str) -> float:
        """An ordered level's place on the trend's x axis: log2 of its value."""
        return math.log2(float(self.value(label)))

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "sets": self.sets,
            "levels": list(self.labels),
            "values": list(self.values),
            "reference": self.reference,
            "ordered": self.ordered,
            "shared_streams": [s for s in STREAMS if s not in self.breaks],
            **({"d_init_families": self.d_init_families} if self.d_init_families else {}),
        }


@dataclass(frozen=True)
class Design:
    axes: tuple[Axis, ...]
    cells: tuple[tuple[str, ...], ...]  # labels in the axes' declared order
    seeds: tuple[int, ...]

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.axes]

    def axis(self, name: str) -> Axis:
        return next(a for a in self.axes if a.name == name)

    def cell(self, labels) -> dict[str, str]:
        return dict(zip(self.names, labels))

    def reference_cell(self) -> tuple[str, ...]:
        return tuple(a.reference for a in self.axes)

    def run_path(self, cell: dict[str, str], seed: int) -> str:
        return run_path({name: cell[name] for name in self.names}, seed)

    def as_dict(self) -> dict:
        return {
            "axes": [a.as_dict() for a in self.axes],
            "cells": [list(c) for c in self.cells],
            "seeds": list(self.seeds),
        }

    @classmethod
    def from_dict(cls, record: dict) -> Design:
        """The design as_dict recorded (plan.json holds it): the report reads the design the statistics used."""
        axes = tuple(
            Axis(a["name"], a["sets"], tuple(a["levels"]), tuple(a["values"]), a["reference"], a["ordered"])
            for a in record["axes"]
        )
        return cls(axes, tuple(tuple(c) for c in record["cells"]), tuple(record["seeds"]))


def run_config(config: dict, cell: dict[str, str], design: Design | None = None, whole: bool = True) -> dict:
    """The config a cell's runs train with: each of the cell's axes' key set to its level. The one place a cell is
    applied: for the workflow's jobs (their params), `ganablate train` and `run --cell`, and the checks of every cell.

    A registry axis's label is its value, so a feed or norm level always sets train.feed or model.d_norm (its name
    is checked with the rest of the config). Another axis's label is known only from study.axes: `design` (the
    config's, computed when not given) for a whole config; whole=False, a job's sections only (the workflow's
    --config-json, the cell applied already by the Snakefile), whose other labels are only recorded."""
    axes = {a.name: a for a in (design or design_of(config)).axes} if whole else {}
    config = copy.deepcopy(config)
    for name, label in cell.items():
        if name in REGISTRY_AXES:
            sets, value = REGISTRY_AXES[name][0], label
        elif name in axes and label in axes[name].labels:
            sets, value = axes[name].sets, axes[name].value(label)
        elif whole:
            allowed = ", ".join(f"{a.name}={'|'.join(a.labels)}" for a in axes.values())
            raise DesignError(f"--cell: {name}={label} is not a level of study.axes; allowed: {allowed}")
        else:
            continue
        section, key = sets.split(".")
        config[section][key] = copy.deepcopy(value)
    return config


def run_path(cell: dict[str, str], seed: int) -> str:
    """A run's folder below runs/<dataset>/: <axis>~<label>/... in the cell's (the axes' declared) order, then
    seed<S>. Only a name: aggregation reads the cell from summary.json."""
    return "/".join([*(f"{name}~{label}" for name, label in cell.items()), f"seed{seed}"])


def run_dir(out_root: Path, config: dict, cell: dict[str, str], seed: int) -> Path:
    """A run's folder under a root of runs, as the workflow lays them out."""
    return Path(out_root) / config["dataset"]["name"] / run_path(cell, seed)


def parse_cell(text: str, flag: str = "--cell") -> dict[str, str]:
    """axis=label,axis=label (the command line's form of a cell), in the order given."""
    cell = {}
    for part in filter(None, text.split(",")):
        name, sep, label = part.partition("=")
        if not sep or not NAME.fullmatch(name) or not LABEL.fullmatch(label) or name in cell:
            raise DesignError(
                f"{flag}: {part!r} is not axis=label (axis [a-z][a-z0-9_]*, label [a-z0-9._-]), "
                f"each axis once, e.g. feed=joint,norm=batch"
            )
        cell[name] = label
    return cell


def seeds_of(study: dict) -> list[int]:
    """Every seed the study may run: a sequential one's up to its cap (study/looks.py), in order."""
    seeds = study["seeds"]
    if looks := looks_of(seeds):
        return list(looks.seeds)
    return list(range(seeds)) if isinstance(seeds, int) else list(seeds)


def design_of(config: dict, schema_check=None) -> Design:
    """The design declared in config['study'], checked; DesignError names the key of the first problem.
    schema_check(section, values) -> message or None tells whether a level's value is one the schema allows."""
    study = config["study"]
    axes, owners = [], {}
    for name, spec in study["axes"].items():
        axis = _axis(name, spec, config, schema_check)
        if axis.sets in owners:
            raise DesignError(
                f"study.axes.{name}.sets: {axis.sets} is already set by axis {owners[axis.sets]}; "
                f"allowed: one axis per key"
            )
        owners[axis.sets] = name
        axes.append(axis)
    cells = _cells(axes, study["design"])
    return Design(tuple(axes), cells, tuple(seeds_of(study)))


def _axis(name: str, spec: dict, config: dict, schema_check) -> Axis:
    where = f"study.axes.{name}" if str(name).isprintable() else "study.axes"  # one line: a name may hold a newline
    if not isinstance(name, str) or not NAME.fullmatch(name) or name in RESERVED:
        raise DesignError(
            f"{where}: {name!r} cannot name an axis; allowed: [a-z][a-z0-9_]*, not one of {', '.join(sorted(RESERVED))}"
        )
    levels = spec["levels"]
    if name in REGISTRY_AXES:
        sets, known = REGISTRY_AXES[name][0], catalog.names(REGISTRY_AXES[name][1])
        if "sets" in spec and spec["sets"] != sets:
            raise DesignError(f"{where}.sets: a {name} level is a registry name and sets {sets}; drop `sets`")
        if not isinstance(levels, list):
            raise DesignError(f"{where}.levels: {name} levels are a list of registry names: {', '.join(known)}")
        for level in levels:
            if level not in known:
                raise DesignError(f"{where}.levels: unknown {name} {level!r}; allowed: {', '.join(known)}")
    else:
        if "sets" not in spec:
            raise DesignError(
                f"{where}.sets: required for an axis other than {' and '.join(REGISTRY_AXES)}; "
                f"e.g. sets: train.batch_size"
            )
        sets = spec["sets"]
        section, _, key = sets.partition(".")
        if section not in SETTABLE_SECTIONS or not key or key not in config[section]:
            raise DesignError(
                f"{where}.sets: unknown key {sets!r}; allowed: a key of "
                f"{' or '.join(SETTABLE_SECTIONS)}, e.g. train.lr_d"
            )
        if sets in NOT_AXES:
            raise DesignError(f"{where}.sets: {sets} cannot be an axis ({NOT_AXES[sets]})")
        if sets in (s for s, _ in REGISTRY_AXES.values()):
            raise DesignError(
                f"{where}.sets: {sets} is the {next(n for n, (s, _) in REGISTRY_AXES.items() if s == sets)} "
                f"axis's key; name that axis instead"
            )
    pairs = list(levels.items()) if isinstance(levels, dict) else [(label_of(v), v) for v in levels]
    labels = [str(label) for label, _ in pairs]
    for label in labels:
        if not LABEL.fullmatch(label):
            raise DesignError(
                f"{where}.levels: label {label!r} is not safe in a path; allowed: [a-z0-9._-], "
                f"starting with a letter or digit (give levels as a mapping label: value)"
            )
    duplicate = next((x for x in labels if labels.count(x) > 1), None)
    if duplicate is not None:
        raise DesignError(f"{where}.levels: label {duplicate!r} appears twice; allowed: distinct labels")
    if schema_check is not None and name not in REGISTRY_AXES:
        section, key = sets.split(".")
        for label, value in pairs:
            problem = schema_check(section, config[section] | {key: value})
            if problem:
                raise DesignError(f"{where}.levels.{label}: {sets}: {problem}")
    reference = label_of(spec["reference"]) if "reference" in spec else labels[0]
    if reference not in labels:
        raise DesignError(f"{where}.reference: {reference!r} is not a level; allowed: {', '.join(labels)}")
    ordered = spec.get("ordered", False)
    if ordered:
        bad = [lab for lab, v in pairs if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0]
        if name in REGISTRY_AXES or bad:
            raise DesignError(
                f"{where}.ordered: a trend needs positive numbers as levels (log2 of the value is its "
                f"x); {'a registry axis' if name in REGISTRY_AXES else repr(bad[0])} has none"
            )
    return Axis(name, sets, tuple(labels), tuple(v for _, v in pairs), reference, ordered)


def _cells(axes: list[Axis], design) -> tuple[tuple[str, ...], ...]:
    if design == "full":
        return tuple(itertools.product(*(a.labels for a in axes)))
    reference = tuple(a.reference for a in axes)
    if design == "ofat":  # one axis at a time around the references
        cells = [reference]
        for i, axis in enumerate(axes):
            cells += [reference[:i] + (label,) + reference[i + 1 :] for label in axis.labels if label != axis.reference]
        return tuple(cells)
    cells = []
    by_name = {a.name: a for a in axes}
    for i, given in enumerate(design):
        for name, label in given.items():
            if name not in by_name:
                raise DesignError(f"study.design.{i}: unknown axis {name!r}; allowed: {', '.join(by_name)}")
            if label_of(label) not in by_name[name].labels:
                raise DesignError(
                    f"study.design.{i}.{name}: unknown level {label!r}; allowed: {', '.join(by_name[name].labels)}"
                )
        cell = tuple(label_of(given[a.name]) if a.name in given else a.reference for a in axes)
        if cell in cells:
            raise DesignError(f"study.design.{i}: the cell {dict(zip(by_name, cell))} is listed twice")
        cells.append(cell)
    return tuple(cells)
