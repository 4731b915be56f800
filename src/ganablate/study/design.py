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

from ganablate import catalog
from ganablate.errors import DesignError

# The axes whose levels are code: the config key a level sets, and the registry that names them (catalog.py).
REGISTRY_AXES = {"feed": ("train.feed", "feeds"), "norm": ("model.d_norm", "norms")}
# Keys no axis may set: where a job runs is no part of what it computes, and the plan needs one final step.
NOT_AXES = {
    "train.device": "an execution setting",
    "train.threads": "an execution setting",
    "train.stack": "an execution setting",
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
    "contrast",
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

# A seed fixes four random streams (train.stream_seed). Levels of most keys share all four, so runs of one seed
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
    seeds = study["seeds"]
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


# A declared contrast's hypothesis (its `test:`): a difference (the default), or equivalence or non-inferiority within
# a margin on the ratio (stats.equivalence_margin unless the contrast gives its own `margin:`).
HYPOTHESES = ("difference", "equivalence", "noninferiority")
KINDS = ("simple", "interaction", "trend", "linear")
SEP = ","  # joins the axes and levels of a simple contrast of cells that differ on several axes


@dataclass(frozen=True)
class Declared:
    """A contrast as stats.confirmatory or stats.contrasts declares it, checked against the design.
    simple: `level` against `level_ref` on `axis`; interaction: that ratio at by_level over at by_level_ref of
    by_axis; trend: the slope over the ordered by_axis of the log metric (axis None) or of the log ratio; linear:
    sum of weight * log metric over levels of `axis` (weights: (label, weight) in the axis's level order, summing
    to 0).
    A simple contrast of two cells that differ on several axes joins them with SEP in the axes' declared order:
    axis "feed,norm", level "joint,ghost", level_ref "split,batch" (`axes` and `arms` take them apart).
    test: its hypothesis (HYPOTHESES); margin: the equivalence or non-inferiority margin (None for a difference, and
    where the study's applies but was not given to declared_contrasts)."""

    kind: str
    axis: str | None
    level: str | None
    level_ref: str | None
    within: tuple[tuple[str, str], ...]
    by_axis: str | None = None
    by_level: str | None = None
    by_level_ref: str | None = None
    weights: tuple[tuple[str, float], ...] = ()
    test: str = "difference"
    margin: float | None = None

    @property
    def axes(self) -> tuple[str, ...]:
        """The axes compared (several for a simple contrast of cells that differ on several) or weighed; () for a
        trend of the log metric."""
        return tuple(self.axis.split(SEP)) if self.axis else ()

    @property
    def arms(self) -> tuple[dict[str, str], dict[str, str]]:
        """(compare, against): axis -> label of the two arms of a simple contrast (of an interaction's or a trend's
        ratio); empty for a linear contrast and a trend of the log metric."""
        if self.level is None:
            return {}, {}
        return dict(zip(self.axes, self.level.split(SEP))), dict(zip(self.axes, self.level_ref.split(SEP)))


def declared_contrasts(design: Design, specs: list[dict], where: str, margin: float | None = None) -> list[Declared]:
    """The declared contrasts, checked; margin: the study's equivalence margin, for those that test equivalence or
    non-inferiority without a margin of their own."""
    return [_declared(design, spec, f"{where}.{i}", margin) for i, spec in enumerate(specs)]


def _declared(design: Design, spec: dict, where: str, default_margin: float | None = None) -> Declared:
    axes = {a.name: a for a in design.axes}

    def level_of(key: str, name: str, label) -> str:
        if name not in axes:
            raise DesignError(f"{where}.{key}: unknown axis {name!r}; allowed: {', '.join(axes)}")
        label = label_of(label)
        if label not in axes[name].labels:
            raise DesignError(f"{where}.{key}.{name}: unknown level {label!r}; allowed: {', '.join(axes[name].labels)}")
        return label

    kind = spec.get("kind", "simple")
    if kind not in KINDS:
        raise DesignError(f"{where}.kind: unknown kind {kind!r}; allowed: {', '.join(KINDS)}")
    test, margin = _hypothesis(spec, where, default_margin)
    if kind == "linear":
        return _linear(design, spec, where, level_of, test, margin)
    if "weights" in spec:
        raise DesignError(f"{where}.weights: only a linear contrast takes weights (kind: linear)")
    axis = level = level_ref = None
    held: tuple[tuple[str, str], ...] = ()
    if "compare" in spec:
        axis, level, level_ref, held = _compared(design, spec, where, kind, level_of)
    within = _within(design, spec, level_of)
    named = list(spec.get("compare", {}))
    fixed = next((name for name in named if name in dict(within)), None)
    if fixed is not None:
        which = "the compared axis" if len(named) == 1 else f"a compared axis (compare names {', '.join(named)})"
        raise DesignError(f"{where}.within: {fixed} is {which}; allowed: the other axes")
    within += held
    by_axis = by_level = by_level_ref = None
    if kind == "interaction":
        if "by" not in spec or axis is None:
            raise DesignError(f"{where}: an interaction needs compare and by: {{axis: [from, to]}}")
        ((by_axis, (frm, to)),) = spec["by"].items()
        by_level_ref, by_level = level_of("by", by_axis, frm), level_of("by", by_axis, to)
        if by_axis == axis or by_axis in dict(within) or by_level == by_level_ref:
            raise DesignError(f"{where}.by: needs another axis than compare's and within's, and two different levels")
    elif kind == "trend":
        by_axis = spec.get("over")
        if by_axis not in axes or not axes[by_axis].ordered:
            ordered = [a.name for a in design.axes if a.ordered] or ["none declared ordered"]
            raise DesignError(f"{where}.over: {by_axis!r} is not an ordered axis; allowed: {', '.join(ordered)}")
        if by_axis == axis or by_axis in dict(within):
            raise DesignError(f"{where}.over: {by_axis} is also compared or held fixed")
    elif "by" in spec or "over" in spec or axis is None:
        raise DesignError(f"{where}: a simple contrast takes compare (and against, within, test, margin) only")
    return Declared(kind, axis, level, level_ref, within, by_axis, by_level, by_level_ref, (), test, margin)


def _compared(design: Design, spec: dict, where: str, kind: str, level_of) -> tuple[str, str, str, tuple]:
    """(axis, level, level_ref, held) of compare and against: one axis, or for a simple contrast several (one or
    more levels differing), joined with SEP in the axes' declared order. against names the axes compare names
    (default: their references); an axis on which the two cells agree is held at that level (`held`, (axis, label)
    pairs for `within`), so two cells that differ on one axis are that axis's simple contrast."""
    compare = {name: level_of("compare", name, raw) for name, raw in spec["compare"].items()}
    if len(compare) > 1 and kind != "simple":
        raise DesignError(
            f"{where}.compare: names {', '.join(compare)}; allowed: one axis for kind {kind} (several: kind simple)"
        )
    if "against" in spec:
        given = list(spec["against"])
        if set(given) != set(compare):
            if len(compare) == 1 and len(given) == 1:
                (axis,) = compare
                raise DesignError(f"{where}.against: compares {axis} with {given[0]}; allowed: a level of {axis}")
            raise DesignError(
                f"{where}.against: names {', '.join(given)}; allowed: the axes compare names: {', '.join(compare)}"
            )
        against = {name: level_of("against", name, raw) for name, raw in spec["against"].items()}
    else:
        against = {name: design.axis(name).reference for name in compare}
    order = [name for name in design.names if name in compare]
    differ = [name for name in order if compare[name] != against[name]]
    if not differ:
        if len(compare) == 1:
            ((axis, level),) = compare.items()
            raise DesignError(f"{where}: compares {axis} {level} with itself; allowed: two different levels")
        cell = ", ".join(f"{name}={compare[name]}" for name in order)
        raise DesignError(f"{where}: compares the cell {cell} with itself; allowed: cells that differ on an axis")
    held = tuple((name, compare[name]) for name in order if name not in differ)
    return (
        SEP.join(differ),
        SEP.join(compare[name] for name in differ),
        SEP.join(against[name] for name in differ),
        held,
    )


def _hypothesis(spec: dict, where: str, default_margin: float | None) -> tuple[str, float | None]:
    """(test, margin) of a declared contrast: the margin only for equivalence and non-inferiority."""
    test = spec.get("test", "difference")
    if test not in HYPOTHESES:
        raise DesignError(f"{where}.test: unknown test {test!r}; allowed: {', '.join(HYPOTHESES)}")
    if "margin" not in spec:
        return test, None if test == "difference" else default_margin
    margin = spec["margin"]
    if test == "difference":
        raise DesignError(f"{where}.margin: only with test: equivalence or noninferiority (a difference has no margin)")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 < margin < math.inf:
        raise DesignError(f"{where}.margin: {margin!r}; allowed: a positive number (0.10 = a ratio within 1.1)")
    return test, float(margin)


def _within(design: Design, spec: dict, level_of) -> tuple[tuple[str, str], ...]:
    """The cells a contrast is held to, in the axes' declared order, not the mapping's (see _linear's sort)."""
    within = [(name, level_of("within", name, label)) for name, label in spec.get("within", {}).items()]
    return tuple(sorted(within, key=lambda held: design.names.index(held[0])))


def _linear(design: Design, spec: dict, where: str, level_of, test: str, margin: float | None) -> Declared:
    """kind: linear, weights: {axis: {level: weight, ...}}: nonzero weights on two or more levels, summing to 0."""
    extra = [k for k in ("compare", "against", "by", "over") if k in spec]
    if extra:
        raise DesignError(f"{where}.{extra[0]}: a linear contrast takes weights (and within, test, margin) only")
    if not isinstance(spec.get("weights"), dict) or len(spec["weights"]) != 1:
        raise DesignError(f"{where}.weights: a linear contrast needs weights: {{axis: {{level: weight, ...}}}}")
    ((axis, given),) = spec["weights"].items()
    if axis not in {a.name for a in design.axes}:
        raise DesignError(f"{where}.weights: unknown axis {axis!r}; allowed: {', '.join(design.names)}")
    key = f"{where}.weights.{axis}"
    if not isinstance(given, dict):
        raise DesignError(f"{key}: a mapping level: weight, e.g. {{joint: 1, split: -1}}")
    weights = []
    for raw, w in given.items():
        label = level_of("weights", axis, raw)
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w == 0:
            raise DesignError(
                f"{key}.{label}: weight {w!r}; allowed: a nonzero number (leave out a level not compared)"
            )
        if label in dict(weights):
            raise DesignError(f"{key}: level {label!r} appears twice; allowed: each level once")
        weights.append((label, float(w)))
    if len(weights) < 2:
        raise DesignError(f"{key}: {len(weights)} level; allowed: two or more levels with weights summing to 0")
    total = math.fsum(w for _, w in weights)
    if abs(total) > 1e-9 * max(abs(w) for _, w in weights):
        raise DesignError(f"{key}: the weights sum to {total:g}; allowed: weights summing to 0 (a contrast of levels)")
    within = _within(design, spec, level_of)
    if axis in dict(within):
        raise DesignError(f"{where}.within: {axis} is the weighted axis; allowed: the other axes")
    # In the axis's level order, not the mapping's: the name (so the plan's hash) must not depend on how a YAML
    # writer or a workflow manager orders a mapping's keys (snakemake hands the jobs its config with sorted keys).
    labels = next(a.labels for a in design.axes if a.name == axis)
    weights.sort(key=lambda term: labels.index(term[0]))
    return Declared("linear", axis, None, None, within, weights=tuple(weights), test=test, margin=margin)
