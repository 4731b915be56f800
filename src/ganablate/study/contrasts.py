"""The contrast kinds and the declared contrasts: each kind one `register_kind` call, whole on one screen.

Torch-free and pandas-free: config validation, the plan, the engine (analysis/contrasts.py) and the page read it. A
kind says everything about itself: the config keys it takes, how a declared one is checked (a DesignError naming the
key), its title (contrasts.csv's `contrast`, plan.json's names), its parts and coefficients in one cell (all the
engine needs: the per-seed contrast is L = sum coef_k part_k, each part a weighting of cells' log metric), its sides
(contrasts.csv's level and level_ref), its words on the page, and the contrasts every study gets of it
(`automatic`). Literal settings (`keys`, `two_arms`, `page`, `about`) are read torch-free by catalog.py, which
also fills the schema's `kind` enum from these calls.

A declared contrast's hypothesis (`test:`) is an entry of analysis/verdicts.py, read here through the catalog: its
name, whether it takes a margin, and its title in a contrast's name.

Declared contrasts carry an id: the key they are given under where a stats list is a mapping (`confirmatory:
{ghost-fixes-joint: {compare: ...}}`), else derived once from the title. Tables and the page join on it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from ganablate import catalog
from ganablate.errors import DesignError
from ganablate.study.design import Design, label_of

DECLARED = ("confirmatory", "controls", "contrasts")  # the stats lists that declare contrasts
COMMON = ("kind", "within", "test", "margin")  # keys every kind takes
DEFAULT_TEST = "difference"
CONTROL_TEST = "equivalence"  # what a control asks first: its paired TOST decides it (and its power)
SEP = ","  # joins the axes and levels of a simple contrast of cells that differ on several axes
ID = re.compile(r"[a-z][a-z0-9_.-]*")


@dataclass(frozen=True)
class Spec:
    """A contrast checked against the design, declared (stats lists) or automatic. axis, level, level_ref: the
    compared axis and its two levels (a simple contrast of cells that differ on several axes joins them with SEP in
    the axes' declared order: axis "feed,norm", level "joint,ghost"; `axes` and `arms` take them apart); by_*: the
    second axis of an interaction, or a trend's ordered axis (by_axis); weights: a linear contrast's (label, weight)
    in the axis's level order. test: its hypothesis; margin: an equivalence or non-inferiority margin (None for a
    difference); id: how tables and the page name it."""

    kind: str
    axis: str | None
    level: str | None
    level_ref: str | None
    within: tuple[tuple[str, str], ...]
    by_axis: str | None = None
    by_level: str | None = None
    by_level_ref: str | None = None
    weights: tuple[tuple[str, float], ...] = ()
    test: str = DEFAULT_TEST
    margin: float | None = None
    id: str = ""

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


@dataclass(frozen=True)
class Cells:
    """A contrast in one cell, as the engine computes it: parts (each a tuple of (cell labels, weight)) and coef,
    L = sum coef_k part_k; note: what the table says of it whatever the data (e.g. a level that weighs 0)."""

    parts: tuple
    coef: tuple[float, ...]
    note: str = ""


@dataclass(frozen=True)
class Kind:
    name: str
    keys: tuple[str, ...]  # its config keys beside COMMON
    parse: Callable[..., dict]  # (design, spec, where, level_of) -> Spec's fields, or a DesignError naming the key
    title: Callable[[Spec], str]  # the comparison's words, before the hypothesis and the cell held
    parts: Callable[..., Cells]  # (design, spec, cell) where cell(**levels) gives a cell's labels
    words: Callable  # (row of contrasts.csv) -> what the ratio is of, on the page
    sides: Callable[[Spec], tuple] = lambda s: (s.level, s.level_ref)  # contrasts.csv's level and level_ref
    arms: Callable | None = None  # (row) -> the two arms' names on the page, for a kind of two arms
    automatic: Callable[[Design], list[Spec]] = lambda design: []
    two_arms: bool = False  # one cell against another: failures compared (McNemar), each arm's level reported
    page: str | None = None  # findings.md's section for its rows beyond the answer and the controls
    about: str = ""  # what its ratio is, for contrasts.csv's note


KINDS: dict[str, Kind] = {}


def register_kind(name: str, **fields) -> None:
    """Add a contrast kind; `name` and the literal settings (keys, two_arms, page, about) are read by catalog.py."""
    catalog.check_new("register_kind", name, KINDS)
    KINDS[name] = Kind(name, **fields)


# --- what every kind shares ----------------------------------------------------------------------


def cell_text(labels: dict[str, str]) -> str:
    """Labels of some axes as `axis=label, axis=label`: one arm of a contrast that compares several axes."""
    return ", ".join(f"{a}={lab}" for a, lab in labels.items())


def _within(design: Design, spec: dict, level_of) -> tuple[tuple[str, str], ...]:
    """The cells a contrast is held to, in the axes' declared order, not the mapping's (see _linear's sort)."""
    within = [(name, level_of("within", name, label)) for name, label in spec.get("within", {}).items()]
    return tuple(sorted(within, key=lambda held: design.names.index(held[0])))


def _compared(design: Design, spec: dict, where: str, kind: str, level_of, several: bool = False) -> dict:
    """axis, level, level_ref and within of compare, against and within: one axis, or several=True (a simple
    contrast) several, one or more levels differing, joined with SEP in the axes' declared order. against names the
    axes compare names (default: their references); an axis on which the two cells agree is held at that level
    (within), so two cells that differ on one axis are that axis's simple contrast."""
    compare = {name: level_of("compare", name, raw) for name, raw in spec["compare"].items()}
    if len(compare) > 1 and not several:
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
    within = _within(design, spec, level_of)
    fixed = next((name for name in compare if name in dict(within)), None)
    if fixed is not None:
        named = list(compare)
        which = "the compared axis" if len(named) == 1 else f"a compared axis (compare names {', '.join(named)})"
        raise DesignError(f"{where}.within: {fixed} is {which}; allowed: the other axes")
    return {
        "axis": SEP.join(differ),
        "level": SEP.join(compare[name] for name in differ),
        "level_ref": SEP.join(against[name] for name in differ),
        "within": within + tuple((name, compare[name]) for name in order if name not in differ),
    }


def _ratio(spec: Spec, cell, **at) -> tuple:
    """The log ratio level / level_ref at `at`: one part of an interaction or of a trend of a ratio."""
    compare, against = spec.arms
    return ((cell(**at, **compare), 1.0), (cell(**at, **against), -1.0))


# --- simple: one cell against another -------------------------------------------------------------


def _simple(design: Design, spec: dict, where: str, level_of) -> dict:
    if "compare" not in spec:
        raise DesignError(f"{where}.compare: a simple contrast needs compare: {{axis: level}} (and against)")
    return _compared(design, spec, where, "simple", level_of, several=True)


def _simple_title(d: Spec) -> str:
    return " vs ".join(cell_text(arm) for arm in d.arms) if len(d.axes) > 1 else f"{d.axis}: {d.level} vs {d.level_ref}"


def _simple_parts(design: Design, d: Spec, cell) -> Cells:
    compare, against = d.arms  # the compare cell and the against cell, on every axis compare names
    return Cells((((cell(**compare), 1.0),), ((cell(**against), 1.0),)), (1.0, -1.0))


def _simple_arms(r, full: bool = False) -> tuple[str, str]:
    """A simple contrast's two arms on the page: its levels, or where it compares cells that differ on several axes
    (axis `feed,norm`, level `joint,ghost`) each cell as `feed=joint, norm=ghost`; full: always as cells."""
    axes = str(r["axis"]).split(SEP)
    if len(axes) == 1 and not full:
        return r["level"], r["level_ref"]
    arms = [cell_text(dict(zip(axes, str(r[k]).split(SEP)))) for k in ("level", "level_ref")]
    return arms[0], arms[1]


def _simple_words(r) -> str:
    level, level_ref = _simple_arms(r)
    return f"{level} {'over' if SEP in str(r['axis']) else '/'} {level_ref}"


def _each_level(design: Design) -> list[Spec]:
    """Every level against its axis's reference."""
    return [Spec("simple", a.name, lab, a.reference, ()) for a in design.axes for lab in a.labels if lab != a.reference]


register_kind(
    "simple",
    keys=("compare", "against"),
    parse=_simple,
    title=_simple_title,
    parts=_simple_parts,
    words=_simple_words,
    arms=_simple_arms,
    automatic=_each_level,
    two_arms=True,
    about="level / level_ref within a cell, or of two cells that differ on the axes in `axis`, comma-joined",
)


# --- interaction: how a ratio changes between two levels of another axis ---------------------------


def _interaction(design: Design, spec: dict, where: str, level_of) -> dict:
    if "by" not in spec or "compare" not in spec:
        raise DesignError(f"{where}: an interaction needs compare and by: {{axis: [from, to]}}")
    fields = _compared(design, spec, where, "interaction", level_of)
    ((by_axis, (frm, to)),) = spec["by"].items()
    by_level_ref, by_level = level_of("by", by_axis, frm), level_of("by", by_axis, to)
    if by_axis == fields["axis"] or by_axis in dict(fields["within"]) or by_level == by_level_ref:
        raise DesignError(f"{where}.by: needs another axis than compare's and within's, and two different levels")
    return fields | {"by_axis": by_axis, "by_level": by_level, "by_level_ref": by_level_ref}


def _interaction_parts(design: Design, d: Spec, cell) -> Cells:
    at, at_ref = {d.by_axis: d.by_level}, {d.by_axis: d.by_level_ref}
    return Cells((_ratio(d, cell, **at), _ratio(d, cell, **at_ref)), (1.0, -1.0))


def _pairs_of_axes(design: Design) -> list[Spec]:
    """Every pair of axes: the earlier-declared axis compared, by each level of the later one against its reference."""
    return [
        Spec("interaction", a.name, la, a.reference, (), b.name, lb, b.reference)
        for i, a in enumerate(design.axes)
        for b in design.axes[i + 1 :]
        for la in a.labels
        if la != a.reference
        for lb in b.labels
        if lb != b.reference
    ]


register_kind(
    "interaction",
    keys=("compare", "against", "by"),
    parse=_interaction,
    title=lambda d: f"{d.axis}: {d.level} vs {d.level_ref}, {d.by_axis}: {d.by_level} vs {d.by_level_ref}",
    parts=_interaction_parts,
    words=lambda r: (
        f"{r['axis']} {r['level']} / {r['level_ref']} at {r['by_axis']} = {r['by_level']} over at {r['by_level_ref']}"
    ),
    automatic=_pairs_of_axes,
    page="interactions",
    about="that ratio at by_level over at by_level_ref",
)


# --- trend: the slope per doubling over an ordered axis ---------------------------------------------


def _trend(design: Design, spec: dict, where: str, level_of) -> dict:
    fields = {"axis": None, "level": None, "level_ref": None, "within": _within(design, spec, level_of)}
    if "compare" in spec:
        fields = _compared(design, spec, where, "trend", level_of)
    axes = {a.name: a for a in design.axes}
    by_axis = spec.get("over")
    if by_axis not in axes or not axes[by_axis].ordered:
        ordered = [a.name for a in design.axes if a.ordered] or ["none declared ordered"]
        raise DesignError(f"{where}.over: {by_axis!r} is not an ordered axis; allowed: {', '.join(ordered)}")
    if by_axis == fields["axis"] or by_axis in dict(fields["within"]):
        raise DesignError(f"{where}.over: {by_axis} is also compared or held fixed")
    return fields | {"by_axis": by_axis}


def _trend_title(d: Spec) -> str:
    inner = f"{d.axis}: {d.level} vs {d.level_ref}" if d.axis else "log metric"
    return f"trend over {d.by_axis} of {inner}"


def _trend_parts(design: Design, d: Spec, cell) -> Cells:
    """One part per level of the ordered axis (the log metric, or the log ratio), weighted by the OLS slope's
    coefficients on log2 of the level's value."""
    import numpy as np  # the engine's arithmetic, to the bit; validation never places a contrast

    over = design.axis(d.by_axis)
    x = np.array([over.position(lab) for lab in over.labels])
    w = (x - x.mean()) / ((x - x.mean()) ** 2).sum()
    parts = tuple(
        _ratio(d, cell, **{over.name: lab}) if d.axis else ((cell(**{over.name: lab}), 1.0),) for lab in over.labels
    )
    zero = [lab for lab, v in zip(over.labels, w) if abs(v) < 1e-12]
    note = f"{', '.join(zero)} weighs 0 in the trend: it is the contrast of the other levels" if zero else ""
    return Cells(parts, tuple(float(v) for v in w), note)


def _ordered_axes(design: Design) -> list[Spec]:
    """Over every ordered axis with three or more levels, the trend of the log metric and of every other axis's
    levels against its reference."""
    specs = []
    for o in design.axes:
        if o.ordered and len(o.labels) >= 3:
            specs.append(Spec("trend", None, None, None, (), o.name))
            specs += [
                Spec("trend", a.name, lab, a.reference, (), o.name)
                for a in design.axes
                if a is not o
                for lab in a.labels
                if lab != a.reference
            ]
    return specs


register_kind(
    "trend",
    keys=("compare", "against", "over"),
    parse=_trend,
    title=_trend_title,
    parts=_trend_parts,
    words=lambda r: f"per doubling of {r['by_axis']}",
    automatic=_ordered_axes,
    page="interactions",
    about="per doubling of by_axis's value",
)


# --- linear: any weights summing to 0 over levels of one axis ---------------------------------------


def _linear(design: Design, spec: dict, where: str, level_of) -> dict:
    """weights: {axis: {level: weight, ...}}: nonzero weights on two or more levels, summing to 0."""
    if not isinstance(spec.get("weights"), dict) or len(spec["weights"]) != 1:
        raise DesignError(f"{where}.weights: a linear contrast needs weights: {{axis: {{level: weight, ...}}}}")
    ((axis, given),) = spec["weights"].items()
    if axis not in design.names:
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
    labels = design.axis(axis).labels
    weights.sort(key=lambda term: labels.index(term[0]))
    return {"axis": axis, "level": None, "level_ref": None, "within": within, "weights": tuple(weights)}


def _term(label: str, weight: float) -> str:
    return label if abs(weight) == 1 else f"{abs(weight):g}*{label}"


def linear_sides(weights: tuple[tuple[str, float], ...]) -> tuple[str, str]:
    """(the positive terms, the negative terms' magnitudes), each as `a + b`: contrasts.csv's level and level_ref
    of a linear contrast, whose ratio is the product of the one side's metrics (each to its weight) over the
    other's: with weights +-1, a ratio of ratios."""
    return tuple(" + ".join(_term(lab, w) for lab, w in weights if (w > 0) == sign) for sign in (True, False))


def linear_terms(weights: tuple[tuple[str, float], ...]) -> str:
    """A linear contrast's weights as one expression, the positive terms first (each side in the axis's level order):
    `joint + split_g_mixed - split - joint_consistent`, `2*joint - split - joint_consistent`."""
    positive, _ = linear_sides(weights)
    return " - ".join([positive, *(_term(lab, w) for lab, w in weights if w < 0)])


def _linear_parts(design: Design, d: Spec, cell) -> Cells:
    # one part per weighted level: pair_correlation is the levels' mean pairwise r
    return Cells(tuple(((cell(**{d.axis: lab}), 1.0),) for lab, _ in d.weights), tuple(w for _, w in d.weights))


register_kind(
    "linear",
    keys=("weights",),
    parse=_linear,
    title=lambda d: f"{d.axis}[{linear_terms(d.weights)}]",
    parts=_linear_parts,
    words=lambda r: f"{r['axis']} {r['level']} over {r['level_ref']}",
    sides=lambda d: linear_sides(d.weights),
    about="the weighted sum over levels of `axis`, level its positive terms and level_ref its negative ones",
)


# --- declared contrasts --------------------------------------------------------------------------


def title(d: Spec) -> str:
    """A contrast as one line: contrasts.csv's `contrast` and plan.json's names. A hypothesis with a margin follows
    the comparison, e.g. `feed: a vs b (non-inferiority, margin 10%)`; the cell it is held to ends it
    (`| norm=batch`)."""
    name = KINDS[d.kind].title(d)
    hypothesis = catalog.entries("hypotheses")[d.test]
    if hypothesis.get("margin"):
        margin = "the study's margin" if d.margin is None else f"margin {round(100 * d.margin, 6):g}%"
        name += f" ({hypothesis['title']}, {margin})"
    within = ", ".join(f"{a}={lab}" for a, lab in d.within)
    return f"{name} | {within}" if within else name


def derived_id(name: str) -> str:
    """The id of a contrast declared in a list (or automatic): its title as one lower-case token, derived once."""
    text = name.replace(" + ", " plus ").replace(" - ", " minus ").replace("*", "x").replace("%", "pct")
    return re.sub(r"[^a-z0-9_.]+", "-", text.lower()).strip("-")


def named(recorded) -> dict[str, str]:
    """id -> title of a stats list as plan.json records it: a mapping where the config names its contrasts, else a
    list of titles."""
    return dict(recorded) if isinstance(recorded, dict) else {derived_id(name): name for name in recorded}


def automatic(design: Design) -> list[Spec]:
    """The contrasts every study gets, kind by kind: each kind's `automatic`, ids derived."""
    specs = [s for kind in KINDS.values() for s in kind.automatic(design)]
    return [_with_id(s) for s in specs]


def _with_id(spec: Spec, given: str | None = None) -> Spec:
    return dataclasses.replace(spec, id=given or derived_id(title(spec)))


def declared_contrasts(design: Design, specs, where: str, margin: float | None = None) -> list[Spec]:
    """The contrasts of one stats list, checked: a list, or a mapping id -> contrast; margin: the study's equivalence
    margin, for those that test equivalence or non-inferiority without a margin of their own."""
    if isinstance(specs, dict):
        for given in specs:
            if not isinstance(given, str) or not ID.fullmatch(given):
                shown = f"{where}.{given}" if str(given).isprintable() else where
                raise DesignError(f"{shown}: {given!r} cannot name a contrast; allowed: [a-z][a-z0-9_.-]*")
        return [_with_id(_declared(design, s, f"{where}.{i}", margin), i) for i, s in specs.items()]
    return [_with_id(_declared(design, s, f"{where}.{i}", margin)) for i, s in enumerate(specs)]


def declared_all(design: Design, stats: dict) -> dict[str, list[Spec]]:
    """stats.confirmatory's, stats.controls' and stats.contrasts' contrasts, by list, with the study's margin; an id
    names one contrast, and none an automatic contrast's other comparison."""
    found = {
        name: declared_contrasts(design, stats[name], f"stats.{name}", stats["equivalence_margin"]) for name in DECLARED
    }
    seen = {s.id: (s, "an automatic contrast") for s in automatic(design)}
    for name, specs in found.items():
        keys = list(stats[name]) if isinstance(stats[name], dict) else range(len(specs))
        for key, s in zip(keys, specs):
            other, where = seen.setdefault(s.id, (s, f"stats.{name}.{key}"))
            automatic_twin = where == "an automatic contrast" and _comparison(other) == _comparison(s)
            if other != s and not automatic_twin:
                raise DesignError(
                    f"stats.{name}.{key}: id {s.id!r} also names {where}, another contrast; allowed: one id per "
                    f"contrast (a mapping id: contrast names them)"
                )
    return found


def _comparison(s: Spec) -> tuple:
    return (s.kind, s.axis, s.level, s.level_ref, s.within, s.by_axis, s.by_level, s.by_level_ref, s.weights)


def _declared(design: Design, spec: dict, where: str, default_margin: float | None = None) -> Spec:
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
    keys = KINDS[kind].keys
    extra = next((key for key in spec if key not in (*COMMON, *keys)), None)
    if extra is not None:
        raise DesignError(f"{where}.{extra}: a {kind} contrast takes {', '.join(keys)} (and within, test, margin) only")
    test, margin = _hypothesis(spec, where, default_margin)
    return Spec(kind, **KINDS[kind].parse(design, spec, where, level_of), test=test, margin=margin)


def _hypothesis(spec: dict, where: str, default_margin: float | None) -> tuple[str, float | None]:
    """(test, margin) of a declared contrast: the margin only for a hypothesis that takes one (analysis/verdicts.py)."""
    hypotheses = catalog.entries("hypotheses")
    test = spec.get("test", DEFAULT_TEST)
    if test not in hypotheses:
        raise DesignError(f"{where}.test: unknown test {test!r}; allowed: {', '.join(hypotheses)}")
    takes = [name for name, h in hypotheses.items() if h.get("margin")]
    if "margin" not in spec:
        return test, default_margin if test in takes else None
    margin = spec["margin"]
    if test not in takes:
        raise DesignError(f"{where}.margin: only with test: {' or '.join(takes)} (a {test} has no margin)")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 < margin < math.inf:
        raise DesignError(f"{where}.margin: {margin!r}; allowed: a positive number (0.10 = a ratio within 1.1)")
    return test, float(margin)
