"""The study's figures, drawn from the tables and plan.json (and the sample grids in the run folders); each as PNG
and PDF. A figure is its drawing and one register_figure call beside it, naming the figure, its report category and
the tables it is drawn from (literals: catalog.py reads them for the workflow, without matplotlib).

Generic over the axes: the first declared axis is the compared one (on x, or as colour); the next axis makes the
rows of a grid of panels and the one after it the columns, further axes joining the column's label.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from ganablate.catalog import check_new, entries
from ganablate.errors import UsageError
from ganablate.files import atomic_write_bytes
from ganablate.report.view import StudyView

FAILED = {"color": "crimson", "marker": "X", "s": 70, "linewidths": 0.8, "edgecolors": "white", "zorder": 5}
VERDICTS = {  # each of vocab.VERDICTS: (colour, marker); red is worse whichever way the metric points
    "worse": ("crimson", "v"),
    "better": ("royalblue", "^"),
    "equivalent": ("seagreen", "D"),
    "not equivalent": ("darkorange", "d"),
    "non-inferior": ("seagreen", "P"),
    "inferior": ("crimson", "X"),
    "no material difference": ("seagreen", "h"),
    "identical": ("grey", "s"),
    "inconclusive": ("black", "o"),
}
# The contrast kinds of one cell against another (study/contrasts.py): a heatmap cell is a level against a reference.
TWO_ARMS = [name for name, kind in entries("kinds").items() if kind.get("two_arms")]
STEPS = "training step (G updates)"
JITTER_SEED = 0  # the per-seed points' jitter: the same tables, the same figure
RATIO_TICKS = (0.1, 0.25, 0.5, 0.67, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2, 4, 10)


@dataclass(frozen=True)
class Plot:
    category: str  # the report's category: figures, diagnostics or samples
    draw: Callable[..., plt.Figure]  # draw(study, *tables), the tables as read from the tables folder
    tables: tuple[str, ...]  # the tables it is drawn from, by name (runs: runs.csv)


FIGURES: dict[str, Plot] = {}


def register_figure(name: str, *, category: str, draw, tables: tuple[str, ...]) -> Plot:
    """Add a figure under `name`; a name already taken is an error, not a replacement."""
    check_new("register_figure", name, FIGURES)
    if not callable(draw):
        raise TypeError(f"register_figure: {name!r}: draw must be a callable (StudyView, *tables) -> Figure")
    FIGURES[name] = Plot(category=category, draw=draw, tables=tuple(tables))
    return FIGURES[name]


class Facets:
    """The compared axis and the grid of panels the other axes make: one panel per combination of their labels
    that a cell of the design holds, rows by the second axis, columns by the rest."""

    def __init__(self, study: StudyView):
        self.study = study
        self.compared = study.axes[0]
        self.levels = list(self.compared.labels)
        self.row_axes, self.col_axes = study.names[1:2], study.names[2:]
        self.rows, self.cols = self._combos(self.row_axes), self._combos(self.col_axes)
        colours = sns.color_palette("colorblind", len(self.levels))
        # Levels that coincide (the same math) still show apart by marker and dash.
        self.style = {
            level: {"color": colours[i], "marker": "os^Dv"[i % 5], "ls": ["-", "--", ":", "-."][i % 4]}
            for i, level in enumerate(self.levels)
        }

    def _combos(self, names: list[str]) -> list[tuple[str, ...]]:
        index = [self.study.names.index(n) for n in names]
        found = {tuple(cell[i] for i in index) for cell in self.study.design.cells}
        order = [self.study.design.axis(n).labels for n in names]
        return sorted(found, key=lambda combo: [levels.index(x) for levels, x in zip(order, combo)])

    def held(self, row: tuple, col: tuple) -> bool:
        """Whether a cell of the design lies in this panel (an OFAT design leaves some panels empty)."""
        where = dict(zip(self.row_axes + self.col_axes, row + col))
        return any(all(self.study.design.cell(c)[n] == x for n, x in where.items()) for c in self.study.design.cells)

    def select(self, frame: pd.DataFrame, row: tuple, col: tuple) -> pd.DataFrame:
        keep = pd.Series(True, index=frame.index)
        for name, label in zip(self.row_axes + self.col_axes, row + col):
            keep &= frame[name] == label
        return frame[keep]

    def title(self, row: tuple, col: tuple) -> str:
        return ", ".join(f"{n} = {x}" for n, x in zip(self.row_axes + self.col_axes, row + col))

    def grid(self, width: float, height: float):
        """The figure and its panels as ((row, col), ax) pairs, titled; panels without a cell say so."""
        fig, axes = plt.subplots(
            len(self.rows),
            len(self.cols),
            squeeze=False,
            layout="constrained",
            figsize=(width * len(self.cols) + 1.8, height * len(self.rows) + 0.8),
        )
        panels = []
        for (i, row), (j, col) in itertools.product(enumerate(self.rows), enumerate(self.cols)):
            ax = axes[i, j]
            ax.set_title(self.title(row, col), fontsize=9)
            if self.held(row, col):
                panels.append(((row, col), ax))
            else:
                ax.text(0.5, 0.5, "no cell of the design", ha="center", va="center", transform=ax.transAxes)
                ax.set_axis_off()
        return fig, panels

    def legend(self, fig, extra: list | None = None) -> None:
        handles = [Line2D([], [], lw=2, label=level, **self.style[level]) for level in self.levels]
        fig.legend(
            handles=handles + (extra or []),
            title=self.compared.name,
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            frameon=False,
        )


def metric_label(study: StudyView) -> str:
    units = entries("metrics")[study.metric]["units"]
    return f"{study.metric_name} ({units}, {study.extractor} features)\n{study.better} is better"


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    """The figure as PNG and PDF, each rendered in memory and written atomically (files.atomic_write_bytes): a
    failed write (a full disk) leaves the old figure whole, never half a file for the report to show."""
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    options = [{"dpi": 150}, {"metadata": {"CreationDate": None}}]  # no creation date: the PDF's bytes reproducible
    try:
        for path, extra in zip(paths, options):
            rendered = io.BytesIO()
            fig.savefig(rendered, format=path.suffix[1:], bbox_inches="tight", **extra)
            atomic_write_bytes(path, rendered.getvalue())
    finally:  # a failed write too: pyplot would otherwise keep the figure open
        plt.close(fig)
    return paths


def _message(text: str) -> plt.Figure:
    """A figure that says why there is nothing to draw: the report keeps every figure's slot."""
    fig, ax = plt.subplots(figsize=(7, 2.5), layout="constrained")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, wrap=True)
    ax.set_axis_off()
    return fig


# --- primary metric per seed ---------------------------------------------------------------------


@contextlib.contextmanager
def _seeded_numpy(seed: int):
    """numpy's global generator seeded, and given back as it was: seaborn draws a strip plot's jitter from it and
    takes no seed, so that without this the same tables would draw other figures each time."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _seed_panel(ax, facets: Facets, outcomes: pd.DataFrame) -> None:
    """Box and points of the usable runs per compared level; failed runs marked where their value is, or counted
    on the 'worse' edge when they have none."""
    values = outcomes[(outcomes["status"] == "completed") & np.isfinite(outcomes["value"].astype(float))]
    palette = {level: facets.style[level]["color"] for level in facets.levels}
    name = facets.compared.name
    if not values.empty:
        common = {
            "data": values,
            "x": name,
            "y": "value",
            "hue": name,
            "order": facets.levels,
            "hue_order": facets.levels,
            "palette": palette,
            "ax": ax,
            "legend": False,
        }
        sns.boxplot(**common, showfliers=False, boxprops={"alpha": 0.35})
        with _seeded_numpy(JITTER_SEED):
            sns.stripplot(**common, jitter=0.08, size=5, edgecolor="black", linewidth=0.5)
    ax.set_xlim(-0.5, len(facets.levels) - 0.5)
    ax.set_xticks(range(len(facets.levels)), facets.levels)
    x = outcomes[name].map(facets.levels.index)
    beyond = outcomes["failure"] == "beyond threshold"
    ax.scatter(x[beyond], outcomes.loc[beyond, "value"], **FAILED)
    edge = 0.96 if facets.study.better == "lower" else 0.04
    transform = blended_transform_factory(ax.transData, ax.transAxes)
    lost = outcomes[outcomes["failure"].isin(["diverged", "no value"])]
    for level, group in lost.groupby(name):
        at = facets.levels.index(level)
        ax.scatter(at, edge, transform=transform, **(FAILED | {"marker": "v"}))
        ax.text(at, edge, f"  {len(group)}", transform=transform, va="center", color=FAILED["color"], fontweight="bold")
    threshold = facets.study.plan["failure_threshold"]
    if threshold is not None:
        ax.axhline(threshold, color=FAILED["color"], ls="--", lw=1)
    ax.set(xlabel=name, ylabel="")


def primary_per_seed(study: StudyView, outcomes: pd.DataFrame) -> plt.Figure:
    """Each run's primary metric at the final step, and the runs that failed, as outcomes.csv holds them."""
    facets = Facets(study)
    fig, panels = facets.grid(0.9 * len(facets.levels) + 1.6, 3.4)
    for (row, col), ax in panels:
        _seed_panel(ax, facets, facets.select(outcomes, row, col))
    fig.supylabel(metric_label(study))
    per_cell = outcomes.groupby(study.names).size()
    low, high = per_cell.min(), per_cell.max()
    seeds = f"{low}" if low == high else f"{low}-{high}"
    fig.suptitle(f"{study.metric_name} at step {study.step}, one point per seed ({seeds} seeds per cell)")
    red = FAILED["color"]
    extra = [
        Line2D([], [], ls="", marker="X", color=red, label="failed (beyond threshold)"),
        Line2D([], [], ls="", marker="v", color=red, label="diverged / no value\n(count, at the edge)"),
    ]
    if study.plan["failure_threshold"] is not None:
        extra.append(Line2D([], [], color=red, ls="--", label="failure threshold"))
    facets.legend(fig, extra)
    return fig


register_figure("primary_per_seed", category="figures", draw=primary_per_seed, tables=("outcomes",))


# --- primary metric over training ----------------------------------------------------------------


def primary_over_steps(study: StudyView, summary: pd.DataFrame) -> plt.Figure:
    facets = Facets(study)
    data = study.primary(summary, final=False)
    fig, panels = facets.grid(3.6, 3.0)
    for (row, col), ax in panels:
        panel = facets.select(data, row, col)
        for level in facets.levels:
            line = panel[panel[facets.compared.name] == level].sort_values("step")
            style = facets.style[level]
            ax.plot(line["step"], line["mean"], lw=2, **style)
            ax.fill_between(
                line["step"], line["mean_ci_low"], line["mean_ci_high"], color=style["color"], alpha=0.2, lw=0
            )
        ax.set(xlabel=STEPS)
    fig.supylabel(metric_label(study))
    fig.suptitle(
        f"{study.metric_name} over training: mean over seeds, {study.level} CI band (summary.csv; "
        f"diverged runs left out)"
    )
    facets.legend(fig)
    return fig


register_figure("primary_over_steps", category="figures", draw=primary_over_steps, tables=("summary",))


# --- contrasts -----------------------------------------------------------------------------------


def contrasts(study: StudyView, table: pd.DataFrame) -> plt.Figure:
    """Forest plot of the confirmatory and control rows: ratio with its CI on a log axis, coloured by verdict;
    the equivalence margin shaded around 1, and for controls the TOST's interval as a wide pale bar."""
    rows = study.primary(table)
    rows = pd.concat([rows[rows["role"] == "confirmatory"], rows[rows["role"] == "control"]], ignore_index=True)
    if rows.empty:
        return _message("No confirmatory or control contrast at the final step (contrasts.csv).")
    margin = study.plan["equivalence_margin"]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.8), layout="constrained")
    # The TOST bounds the log ratio by ±log(1 + margin): on the ratio scale [1/(1+m), 1+m].
    ax.axvspan(1 / (1 + margin), 1 + margin, color="seagreen", alpha=0.12, lw=0)
    ax.axvline(1, color="black", lw=1)
    y = np.arange(len(rows))[::-1]
    for yi, (_, r) in zip(y, rows.iterrows()):
        colour, marker = VERDICTS.get(r["verdict"], ("black", "o"))
        if not np.isfinite(r["ratio"]):
            ax.text(1, yi, f"  no ratio: {r['verdict']}  ", va="center", ha="left", fontsize=8, color=colour)
            continue
        if r["role"] == "control":
            ax.plot(
                [r["equivalence_ci_low"], r["equivalence_ci_high"]],
                [yi, yi],
                color=colour,
                lw=7,
                alpha=0.25,
                solid_capstyle="butt",
            )
        ax.plot([r["ratio_ci_low"], r["ratio_ci_high"]], [yi, yi], color=colour, lw=1.5)
        ax.plot([r["ratio"]], [yi], marker=marker, color=colour, ms=7, ls="")
    ax.set_xscale("log")
    low, high = ax.get_xlim()
    # Ratios as plain numbers (0.8, not 8×10⁻¹), at steps a reader knows, within the range drawn.
    ax.set_xticks(_spaced_ticks(low, high), minor=False)
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    # Long contrast names (two cells that differ on several axes) wrapped, so that the axis keeps its width.
    labels = [textwrap.fill(f"{r['contrast']} ({r['role']})", 70) for _, r in rows.iterrows()]
    ax.set_yticks(y, labels, fontsize=8)
    ax.set(
        xlabel=f"ratio of {study.metric_name} (geometric mean over seeds), log scale; {study.better} is better",
        title=f"{study.metric_name} at step {study.step}: ratio with {study.level} CI and the verdict of contrasts.csv",
    )
    shown = set(rows["verdict"])
    handles = [Line2D([], [], color=c, marker=m, ls="", label=v) for v, (c, m) in VERDICTS.items() if v in shown]
    handles += [
        Patch(color="seagreen", alpha=0.12, label=f"equivalence margin ±{margin:.0%}"),
        Line2D([], [], color="grey", lw=7, alpha=0.25, label="TOST interval (controls)"),
    ]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title="verdict")
    return fig


register_figure("contrasts", category="figures", draw=contrasts, tables=("contrasts",))


def looks(study: StudyView, table: pd.DataFrame) -> plt.Figure:
    """A sequential study's declared rows, one panel each: the repeated confidence interval at every look it was
    read (looks.csv), narrowing as seeds come in, the margin shaded around 1, and the look that decided it marked
    with its verdict."""
    if table.empty:
        return _message("A fixed-seed study: no looks (study.seeds as looks makes a study sequential).")
    margin = study.plan["equivalence_margin"]
    rows = list(dict.fromkeys(table["contrast"]))
    columns = min(3, len(rows))
    fig, axes = plt.subplots(
        math.ceil(len(rows) / columns),
        columns,
        figsize=(4.2 * columns, 2.6 * math.ceil(len(rows) / columns) + 0.6),
        squeeze=False,
        sharex=True,
        layout="constrained",
    )
    for ax, name in zip(axes.flat, rows):
        rows_of = table[table["contrast"] == name]
        ax.axhspan(1 / (1 + margin), 1 + margin, color="seagreen", alpha=0.12, lw=0)
        ax.axhline(1, color="black", lw=0.8)
        ax.vlines(rows_of["seeds"], rows_of["rci_low"], rows_of["rci_high"], color="grey", lw=2)
        ax.plot(rows_of["seeds"], rows_of["ratio"], "o", color="grey", ms=4)
        decided = rows_of[rows_of["decision"] != "open"]
        for _, r in decided.iterrows():
            colour, marker = VERDICTS.get(r["decision"], ("black", "o"))
            ax.vlines([r["seeds"]], [r["rci_low"]], [r["rci_high"]], color=colour, lw=2.5)
            ax.plot([r["seeds"]], [r["ratio"]], marker=marker, color=colour, ms=8, ls="")
            ax.annotate(
                r["decision"],
                (r["seeds"], r["rci_high"]),
                xytext=(0, 4),
                textcoords="offset points",
                ha="center",
                fontsize=7,
                color=colour,
            )
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_title(textwrap.fill(f"{name} ({rows_of['role'].iloc[0]})", 45), fontsize=8)
        ax.set_xticks(sorted(table["seeds"].unique()))
    for ax in axes.flat[len(rows) :]:
        ax.set_visible(False)
    fig.supxlabel("seeds per cell at the look")
    fig.supylabel(f"ratio of {study.metric_name}, repeated CI (log scale)")
    fig.suptitle(f"{study.metric_name} at step {study.step}: each declared contrast at its looks; margin ±{margin:.0%}")
    return fig


register_figure("looks", category="figures", draw=looks, tables=("looks",))


def _spaced_ticks(low: float, high: float) -> list[float]:
    """RATIO_TICKS within [low, high], 1 always, the others only where they keep an eighth of the axis's log range
    from the ticks kept: 0.9, 1, 1.1 and 1.25 crowd on an axis that reaches 4."""
    within = [t for t in RATIO_TICKS if low <= t <= high]
    gap = math.log(high / low) / 8
    kept = [1.0] if low <= 1 <= high else []
    for t in sorted(within, key=lambda t: abs(math.log(t))):
        if all(abs(math.log(t / k)) >= gap for k in kept):
            kept.append(t)
    return sorted(kept)


def _heatmap_panel(ax, study: StudyView, rows: pd.DataFrame, bound: float, cmap: str) -> None:
    """One axis's simple contrasts against its reference: a row per cell of the other axes, a column per level."""
    rows = rows.assign(pair=rows["level"] + " vs " + rows["level_ref"])
    cells, pairs = list(dict.fromkeys(rows["cell"])), list(dict.fromkeys(rows["pair"]))
    indexed = rows.set_index(["cell", "pair"])
    grid = np.log2(indexed["ratio"].astype(float)).unstack("pair").reindex(index=cells, columns=pairs)

    def text(cell: str, pair: str) -> str:
        if (cell, pair) not in indexed.index:
            return ""
        c = indexed.loc[(cell, pair)]
        if not np.isfinite(c["ratio"]):
            return f"no ratio\n{c['verdict']}"
        return f"{c['ratio']:.3g}\n[{c['ratio_ci_low']:.3g}, {c['ratio_ci_high']:.3g}]\n{c['verdict']}"

    annot = np.array([[text(c, p) for p in pairs] for c in cells])
    sns.heatmap(
        grid,
        annot=annot,
        fmt="",
        vmin=-bound,
        vmax=bound,
        center=0,
        cmap=cmap,
        linewidths=1,
        ax=ax,
        annot_kws={"fontsize": 8},
        cbar_kws={"label": f"log2 ratio of {study.metric_name}"},
    )
    ax.grid(False)
    for i, j in zip(*np.nonzero(grid.isna().to_numpy())):  # seaborn leaves the cells without a colour unlabelled
        ax.text(j + 0.5, i + 0.5, annot[i, j], ha="center", va="center", fontsize=8)
    ax.set(xlabel=f"{rows['axis'].iloc[0]}: level vs reference", ylabel="")
    ax.tick_params(axis="y", rotation=0)


def effects_heatmap(study: StudyView, table: pd.DataFrame) -> plt.Figure:
    """Every axis against its reference level, in every cell of the other axes: the paired ratio (colour), its CI
    and the verdict, as contrasts.csv holds them."""
    rows = study.primary(table)
    rows = rows[
        rows["kind"].isin(TWO_ARMS) & (rows["level_ref"] == rows["axis"].map({a.name: a.reference for a in study.axes}))
    ]
    # A comparison declared under two tests (a difference and an equivalence, say) has one ratio and CI: its first
    # row, the confirmatory one where there is one, gives the verdict shown.
    rows = rows.drop_duplicates([*study.names, "axis", "level", "level_ref"])
    panels = [study.ordered(rows[rows["axis"] == a.name]) for a in study.axes]
    # A row of a panel is a cell of the other axes: the axis compared there is spanned ("*"), so cell_text skips it.
    panels = [r.assign(cell=[study.cell_text(x) or "all" for _, x in r.iterrows()]) for r in panels if not r.empty]
    if not panels:
        return _message(
            "No contrast of a level against its axis's reference (contrasts.csv): every axis has one level."
        )
    logs = np.log2(rows["ratio"].astype(float).to_numpy())
    bound = max(1.0, float(np.nanmax(np.abs(logs)))) if np.isfinite(logs).any() else 1.0
    cmap = "RdBu_r" if study.better == "lower" else "RdBu"  # red = worse, whatever the direction
    heights = [r["cell"].nunique() for r in panels]
    width = max(r["level"].nunique() for r in panels)
    fig, axes = plt.subplots(
        len(panels),
        1,
        squeeze=False,
        layout="constrained",
        height_ratios=heights,
        figsize=(2.4 * width + 4.5, 0.75 * sum(heights) + 1.4 * len(panels) + 0.6),
    )
    for ax, r in zip(axes[:, 0], panels):
        _heatmap_panel(ax, study, r, bound, cmap)
    fig.suptitle(
        f"{study.metric_name} at step {study.step}: each level against its axis's reference, paired "
        f"ratio (geometric mean over seeds) [{study.level} CI] and verdict (contrasts.csv)"
    )
    return fig


register_figure("effects_heatmap", category="figures", draw=effects_heatmap, tables=("contrasts",))


# --- mechanism -----------------------------------------------------------------------------------


def mechanism(study: StudyView, table: pd.DataFrame) -> plt.Figure:
    """The share of the broken level's gap to the reference that the repaired level recovers, over training, on
    the log and raw scales, and the association of the context gap with the metric at the final step."""
    rows = study.primary(table, final=False)
    if rows.empty:
        return _message("No mechanism was declared (stats.mechanism is null): mechanism.csv is empty.")
    first = rows.iloc[0]
    others = [n for n in study.names if n != first["axis"]]
    rows = study.ordered(rows)
    rows = rows.assign(cell=[study.cell_text(r, others) or "all" for _, r in rows.iterrows()])
    cells = list(dict.fromkeys(rows["cell"]))
    colours = dict(zip(cells, sns.color_palette("colorblind", len(cells))))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), layout="constrained")
    for ax, column, scale in zip(axes[:2], ["recovered", "recovered_raw"], ["log scale", "raw scale"]):
        for cell, line in rows.groupby("cell", sort=False):
            line = line.sort_values("step")
            ax.plot(line["step"], line[column], color=colours[cell], marker="o", lw=2, label=cell)
            ax.fill_between(
                line["step"], line[f"{column}_ci_low"], line[f"{column}_ci_high"], color=colours[cell], alpha=0.2, lw=0
            )
        for at, said in ((0, "none recovered"), (1, "all recovered")):
            ax.axhline(at, color="grey", lw=1, ls="--")
            ax.annotate(said, (0, at), xycoords=("axes fraction", "data"), fontsize=7, color="grey", va="bottom")
        ax.set(
            xlabel=STEPS,
            ylabel=f"share of the gap recovered ({scale})",
            title=f"{first['repaired']} recovers {first['broken']}'s gap to {first['reference']}\n({scale}, "
            f"{study.level} CI)",
        )
    _gap_panel(axes[2], study, rows[rows["step"] == study.step], colours)
    fig.suptitle(f"Mechanism on {first['axis']} (mechanism.csv)")
    fig.legend(
        handles=[Line2D([], [], color=c, lw=2, label=cell) for cell, c in colours.items()],
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        frameon=False,
        title="cell",
    )
    return fig


def _gap_panel(ax, study: StudyView, rows: pd.DataFrame, colours: dict) -> None:
    rows = rows.reset_index(drop=True)
    y = np.arange(len(rows))[::-1]
    for yi, (_, r) in zip(y, rows.iterrows()):
        ax.plot([r["gap_slope_ci_low"], r["gap_slope_ci_high"]], [yi, yi], color=colours[r["cell"]], lw=1.5)
        ax.plot([r["gap_slope"]], [yi], "o", color=colours[r["cell"]])
    ax.axvline(0, color="black", lw=1)
    ax.set_yticks(y, rows["cell"], fontsize=8)
    ax.set(
        xlabel=f"change of log {study.metric_name} per logit of context gap",
        title=f"context gap and {study.metric_name} at step {study.step}\n({study.level} CI, exploratory)",
    )


register_figure("mechanism", category="diagnostics", draw=mechanism, tables=("mechanism",))


# --- samples -------------------------------------------------------------------------------------


def samples_final(study: StudyView, runs: pd.DataFrame) -> plt.Figure:
    """The final sample grid of each cell's first seed: a column per compared level, a row per cell of the rest."""
    facets = Facets(study)
    dataset = runs["dataset"].iloc[0]
    rest = [c for c in itertools.product(facets.rows, facets.cols) if facets.held(*c)]
    each = runs[[*study.names, "seed", "steps_done"]].drop_duplicates([*study.names, "seed"])
    fig, axes = plt.subplots(
        len(rest),
        len(facets.levels),
        squeeze=False,
        layout="constrained",
        figsize=(2.4 * len(facets.levels) + 0.8, 2.5 * len(rest) + 0.6),
    )
    for (i, (row, col)), (j, level) in itertools.product(enumerate(rest), enumerate(facets.levels)):
        ax = axes[i, j]
        ax.set_xticks([])
        ax.set_yticks([])
        if i == 0:
            ax.set_title(f"{facets.compared.name} = {level}")
        if j == 0:
            ax.set_ylabel(facets.title(row, col))
        cell = facets.select(each, row, col)
        _sample(ax, study, cell[cell[facets.compared.name] == level], study.runs_root / dataset)
    fig.suptitle(f"{dataset}: samples of each cell at step {study.step} (its first seed)")
    return fig


def _sample(ax, study: StudyView, runs: pd.DataFrame, root: Path) -> None:
    if runs.empty:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
        return
    run = runs.sort_values("seed").iloc[0]
    path = root / study.design.run_path(run, int(run["seed"])) / "samples" / f"step_{study.step}.png"
    if path.is_file():
        ax.imshow(plt.imread(path), cmap="gray", interpolation="nearest")
        ax.set_xlabel(f"seed {run['seed']}", fontsize=8)
    else:
        why = f"diverged at step {run['steps_done']}" if run["steps_done"] < study.step else "file missing"
        ax.text(0.5, 0.5, f"no sample\n({why})", ha="center", va="center", transform=ax.transAxes)


register_figure("samples_final", category="samples", draw=samples_final, tables=("runs",))


# --- all of them ---------------------------------------------------------------------------------


def write_figures(tables: str | Path, runs_root: str | Path, out_dir: str | Path) -> list[Path]:
    """Every registered figure into out_dir. The axes, levels and final step are plan.json's (the tables'), so the
    figures show what the statistics computed. Every table a figure is drawn from is read before the first is drawn."""
    runs_root, out_dir = Path(runs_root), Path(out_dir)
    if not runs_root.is_dir():
        raise UsageError(f"--runs-root: {runs_root} is not a directory")
    study = StudyView(tables, runs_root)
    read = {name: study.table(name) for name in dict.fromkeys(t for plot in FIGURES.values() for t in plot.tables)}
    plt.switch_backend("Agg")  # files only, also where a display exists
    out_dir.mkdir(parents=True, exist_ok=True)
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.9):
        return [
            path
            for name, plot in FIGURES.items()
            for path in _save(plot.draw(study, *(read[t] for t in plot.tables)), out_dir, name)
        ]
