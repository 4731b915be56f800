"""The study's figures, drawn from the tables (and the sample grids in the run folders); each as PNG and PDF."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory
from scipy import stats as sps

from ganablate import stats
from ganablate.config import UsageError

# FID and KID are (squared) distances in feature space, IS a ratio, precision and recall fractions: all unitless.
UNITS = {"fid": "unitless", "kid": "unitless", "is": "unitless", "precision": "fraction", "recall": "fraction"}
FAILED = {"color": "crimson", "marker": "X", "s": 70, "linewidths": 0.8, "edgecolors": "white", "zorder": 5}
SEABORN_DASHES = {"-": "", "--": (4, 2), ":": (1, 2), "-.": (4, 1.5, 1, 1.5)}


class Study:
    """What every figure needs: the config's choices and the order and colour of feeds and norms."""

    def __init__(self, config: dict, runs: pd.DataFrame):
        self.cfg = config["stats"]
        self.metric, self.extractor = self.cfg["primary_metric"], self.cfg["primary_extractor"]
        self.step = stats.final_step(runs, self.cfg)
        each = stats.ordered(runs[["feed", "norm"]].drop_duplicates(), config, ["feed", "norm"])
        self.feeds = list(dict.fromkeys(each["feed"]))
        self.norms = list(dict.fromkeys(stats.ordered(each, config, ["norm"])["norm"]))
        self.palette = dict(zip(self.feeds, sns.color_palette("colorblind", len(self.feeds))))
        # Feeds that coincide (a per-sample D makes them the same math) still show apart by marker and dash.
        self.style = {f: {"marker": "os^Dv"[i % 5], "ls": ["-", "--", ":", "-."][i % 4]}
                      for i, f in enumerate(self.feeds)}
        self.level = f"{self.cfg['confidence_level']:.0%}"
        # Normal-approximation bands for the many points of the training logs, where a bootstrap each is slow.
        self.z = float(sps.norm.ppf(0.5 + self.cfg["confidence_level"] / 2))

    @property
    def label(self) -> str:
        better = stats.BETTER[self.metric]
        return f"{stats.NAMES[self.metric]} ({UNITS[self.metric]}, {self.extractor} features)\n{better} is better"

    def primary(self, table: pd.DataFrame) -> pd.DataFrame:
        return table[(table["metric"] == self.metric) & (table["extractor"] == self.extractor)]

    def legend(self, fig, extra: list | None = None) -> None:
        handles = [Line2D([], [], color=self.palette[f], lw=2, label=f, **self.style[f]) for f in self.feeds]
        fig.legend(handles=handles + (extra or []), title="feed", loc="center left", bbox_to_anchor=(1.0, 0.5),
                   frameon=False)

    def dodge(self, feed: str, width: float = 0.8) -> float:
        """x offset of a feed within a norm's slot, as seaborn dodges hues."""
        k = len(self.feeds)
        return -width / 2 + width / k * (self.feeds.index(feed) + 0.5)


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight", metadata={"CreationDate": None})
    plt.close(fig)
    return paths


def _grid(n: int, width: float = 3.6, height: float = 3.0, ncols: int = 3):
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat[:n]


def primary_per_seed(study: Study, runs: pd.DataFrame, config: dict) -> plt.Figure:
    outcomes = stats.run_outcomes(runs, config)
    values = outcomes[(outcomes["status"] == "completed") & np.isfinite(outcomes["value"].astype(float))]
    width = 1.4 * len(study.norms) * max(1, len(study.feeds) / 2) + 2
    fig, ax = plt.subplots(figsize=(width, 4.5), layout="constrained")
    if not values.empty:
        common = dict(data=values, x="norm", y="value", hue="feed", order=study.norms, hue_order=study.feeds,
                      palette=study.palette, ax=ax, legend=False)
        sns.boxplot(**common, showfliers=False, boxprops={"alpha": 0.35})
        sns.stripplot(**common, dodge=True, jitter=0.08, size=5, edgecolor="black", linewidth=0.5)
    ax.set_xlim(-0.5, len(study.norms) - 0.5)
    x = outcomes["norm"].map(study.norms.index) + outcomes["feed"].map(study.dodge)
    extra = []
    beyond = outcomes["failure"] == "beyond threshold"
    if beyond.any():
        ax.scatter(x[beyond], outcomes.loc[beyond, "value"], **FAILED)
        extra.append(Line2D([], [], ls="", marker="X", color=FAILED["color"], label="failed (beyond threshold)"))
    if study.cfg["failure_threshold"] is not None:
        ax.axhline(study.cfg["failure_threshold"], color=FAILED["color"], ls="--", lw=1)
        extra.append(Line2D([], [], color=FAILED["color"], ls="--", label="failure threshold"))
    lost = outcomes[outcomes["failure"].isin(["diverged", "no value"])].assign(x=x)
    if not lost.empty:
        # No value to place: one marker per variant on the 'worse' edge of the axis, with the count of runs.
        edge = 0.96 if stats.BETTER[study.metric] == "lower" else 0.04
        transform = blended_transform_factory(ax.transData, ax.transAxes)
        for (feed, norm), group in lost.groupby(["feed", "norm"]):
            ax.scatter(group["x"].iloc[0], edge, transform=transform, **(FAILED | {"marker": "v"}))
            ax.text(group["x"].iloc[0], edge, f"  {len(group)}", transform=transform, va="center",
                    color=FAILED["color"], fontweight="bold")
        extra.append(Line2D([], [], ls="", marker="v", color=FAILED["color"],
                            label="diverged / no value\n(count, at the edge)"))
    per_variant = outcomes.groupby(["feed", "norm"]).size()
    low, high = per_variant.min(), per_variant.max()
    seeds = f"{low}" if low == high else f"{low}-{high}"
    ax.set(xlabel="discriminator normalization", ylabel=study.label,
           title=f"{stats.NAMES[study.metric]} at step {study.step}, one point per seed ({seeds} seeds per variant)")
    study.legend(fig, extra)
    return fig


def primary_over_steps(study: Study, summary: pd.DataFrame) -> plt.Figure:
    data = study.primary(summary)
    fig, axes = _grid(len(study.norms))
    for ax, norm in zip(axes, study.norms):
        for feed in study.feeds:
            line = data[(data["norm"] == norm) & (data["feed"] == feed)].sort_values("step")
            color = study.palette[feed]
            ax.plot(line["step"], line["mean"], color=color, lw=2, **study.style[feed])
            ax.fill_between(line["step"], line["mean_ci_low"], line["mean_ci_high"], color=color, alpha=0.2, lw=0)
        ax.set(title=f"norm = {norm}", xlabel="training step (G updates)", ylabel=study.label)
    fig.suptitle(f"{stats.NAMES[study.metric]} over training: mean over seeds, {study.level} Student-t CI band "
                 f"(diverged runs left out)")
    study.legend(fig)
    return fig


def interaction(study: Study, summary: pd.DataFrame, anova: pd.DataFrame) -> plt.Figure:
    data = study.primary(summary)
    data = data[data["step"] == study.step]
    fig, ax = plt.subplots(figsize=(1.3 * len(study.norms) + 3, 4.5), layout="constrained")
    for feed in study.feeds:
        line = data[data["feed"] == feed].set_index("norm").reindex(study.norms)
        x = np.arange(len(study.norms)) + study.dodge(feed, width=0.3)
        err = np.vstack([line["mean"] - line["mean_ci_low"], line["mean_ci_high"] - line["mean"]])
        ax.errorbar(x, line["mean"], yerr=np.nan_to_num(err), color=study.palette[feed], capsize=3, lw=2,
                    **study.style[feed])
    ax.set_xticks(range(len(study.norms)), study.norms)
    term = anova[anova["term"] == "feed:norm"]
    title = f"{stats.NAMES[study.metric]} at step {study.step}: mean ± {study.level} CI per variant"
    if term.empty:
        title += f"\nfeed × norm ANOVA not estimated: {anova['note'].iloc[0]}"
    else:
        t = term.iloc[0]
        title += (f"\nfeed × norm on {t['transform']} scale: F = {t['F']:.2f}, p = {t['p']:.3g}, "
                  f"partial η² = {t['partial_eta_sq']:.2f}")
        if t["transform"] == "log":
            ax.set_yscale("log")  # the ANOVA's scale: parallel lines here mean no interaction
    ax.set(xlabel="discriminator normalization", ylabel=study.label, title=title)
    study.legend(fig)
    return fig


def effects_heatmap(study: Study, effects: pd.DataFrame) -> plt.Figure:
    """Every primary comparison: the paired ratio with its CI and the verdict of feed_effects, as stats wrote them."""
    data = effects[stats.primary_family(effects, study.cfg, study.step)] if not effects.empty else effects
    fig, ax = plt.subplots(figsize=(2.6 * max(1, data[["feed_ref", "feed"]].drop_duplicates().shape[0]) + 2.5,
                                    0.8 * len(study.norms) + 2), layout="constrained")
    if data.empty:
        ax.text(0.5, 0.5, "no comparison: the runs hold one feed only", ha="center", va="center", fontsize=12)
        ax.set_axis_off()
        return fig
    data = data.assign(pair=data["feed"] + " vs " + data["feed_ref"])
    pairs = list(dict.fromkeys(data["pair"]))
    cell = data.set_index(["norm", "pair"])
    grid = np.log2(cell["ratio"].astype(float)).unstack("pair").reindex(index=study.norms, columns=pairs)

    def text(norm: str, pair: str) -> str:
        if (norm, pair) not in cell.index:
            return ""
        c = cell.loc[(norm, pair)]
        if not np.isfinite(c["ratio"]):
            return c["verdict"]
        return f"{c['ratio']:.3g}\n[{c['ratio_ci_low']:.3g}, {c['ratio_ci_high']:.3g}]\n{c['verdict']}"

    annot = np.array([[text(n, p) for p in pairs] for n in study.norms])
    bound = max(1.0, float(np.nanmax(np.abs(grid.to_numpy())))) if np.isfinite(grid.to_numpy()).any() else 1.0
    cmap = "RdBu_r" if stats.BETTER[study.metric] == "lower" else "RdBu"  # red = worse, whatever the direction
    sns.heatmap(grid, annot=annot, fmt="", vmin=-bound, vmax=bound, center=0, cmap=cmap, linewidths=1,
                ax=ax, annot_kws={"fontsize": 8}, cbar_kws={"label": f"log2 ratio of {stats.NAMES[study.metric]}"})
    ax.set(xlabel="comparison", ylabel="discriminator normalization",
           title=f"{stats.NAMES[study.metric]} at step {study.step}: paired ratio (geometric mean over seeds) "
                 f"[{study.level} CI]\nand the verdict of the analysis plan (feed_effects.csv)")
    ax.tick_params(axis="y", rotation=0)
    return fig


def mechanism(study: Study, logs: pd.DataFrame) -> plt.Figure:
    quantities = {"context_gap": "context gap (logits)\n|D(fakes alone) − D(in batch)|",
                  "d_acc": "D accuracy (fraction)"}
    n = len(study.norms)
    fig, axes = plt.subplots(2, n, figsize=(3.4 * n + 1, 6), squeeze=False, sharex=True, layout="constrained")
    for j, norm in enumerate(study.norms):
        data = logs[logs["norm"] == norm]
        for i, (column, label) in enumerate(quantities.items()):
            ax = axes[i, j]
            points = data[np.isfinite(data[column].astype(float))]
            if not points.empty:
                sns.lineplot(points, x="step", y=column, hue="feed", hue_order=study.feeds, palette=study.palette,
                             style="feed", style_order=study.feeds,
                             markers=[study.style[f]["marker"] for f in study.feeds],
                             dashes=[SEABORN_DASHES[study.style[f]["ls"]] for f in study.feeds],
                             errorbar=("se", study.z), ax=ax, legend=False)
            ax.set(xlabel="training step (G updates)" if i else "", ylabel=label if j == 0 else "",
                   title=f"norm = {norm}" if i == 0 else "")
    fig.suptitle(f"Mechanism: mean over runs (diverged runs up to divergence), band ± {study.z:.2f} SE "
                 f"(≈{study.level} CI)")
    study.legend(fig)
    return fig


def samples_final(study: Study, runs: pd.DataFrame, runs_root: Path) -> plt.Figure:
    dataset = runs["dataset"].iloc[0]
    each = runs[stats.RUN_KEYS + ["steps_done"]].drop_duplicates(stats.RUN_KEYS)
    fig, axes = plt.subplots(len(study.norms), len(study.feeds), squeeze=False, layout="constrained",
                             figsize=(2.4 * len(study.feeds) + 0.5, 2.5 * len(study.norms) + 0.6))
    for i, norm in enumerate(study.norms):
        for j, feed in enumerate(study.feeds):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            variant = each[(each["feed"] == feed) & (each["norm"] == norm)].sort_values("seed")
            if i == 0:
                ax.set_title(feed)
            if j == 0:
                ax.set_ylabel(f"norm = {norm}")
            if variant.empty:
                ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
                continue
            run = variant[variant["seed"] == 0].iloc[0] if (variant["seed"] == 0).any() else variant.iloc[0]
            path = runs_root / dataset / feed / norm / f"seed{run['seed']}" / "samples" / f"step_{study.step}.png"
            if path.is_file():
                ax.imshow(plt.imread(path), cmap="gray", interpolation="nearest")
                if run["seed"] != 0:
                    ax.set_xlabel(f"seed {run['seed']} (no seed 0)")
            else:
                why = f"diverged at step {run['steps_done']}" if run["steps_done"] < study.step else "file missing"
                ax.text(0.5, 0.5, f"no sample\n({why})", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(f"{dataset}: 64 samples per variant at step {study.step} (seed 0)")
    return fig


def write_figures(config: dict, tables: str | Path, runs_root: str | Path, out_dir: str | Path) -> list[Path]:
    runs_root, out_dir = Path(runs_root), Path(out_dir)
    if not runs_root.is_dir():
        raise UsageError(f"--runs-root: {runs_root} is not a directory")
    runs = stats.load_runs(tables)
    summary, effects = stats.read_table(tables, "summary"), stats.read_table(tables, "feed_effects")
    anova = stats.read_table(tables, "interaction")
    logs = stats.read_table(tables, "train_logs", hint="run `ganablate aggregate` first")
    study = Study(config, runs)
    plt.switch_backend("Agg")  # files only, also where a display exists
    out_dir.mkdir(parents=True, exist_ok=True)
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.9):
        figures = {
            "primary_per_seed": primary_per_seed(study, runs, config),
            "primary_over_steps": primary_over_steps(study, summary),
            "interaction": interaction(study, summary, anova),
            "effects_heatmap": effects_heatmap(study, effects),
            "mechanism": mechanism(study, logs),
            "samples_final": samples_final(study, runs, runs_root),
        }
        return [p for name, fig in figures.items() for p in _save(fig, out_dir, name)]
