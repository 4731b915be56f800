"""report/figures.py: every figure of outputs.FIGURES is written, as PNG and PDF, non-empty, for designs of one to
four axes (tables from tests/synthetic_tables.py, not from the statistics); the panels follow the axes of
plan.json."""

from __future__ import annotations

import errno
import itertools
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib import image

from ganablate.errors import UsageError
from ganablate.report import figures
from ganablate.report.figures import Facets, write_figures
from ganablate.report.view import StudyView
from ganablate.study import outputs
from tests.synthetic_tables import DATASET, Synthetic, axis

FEED = axis(["split", "joint", "joint_consistent"])
BATCH = axis(["16", "64"], reference="64", values=[16, 64], ordered=True)
NORM = axis(["none", "batch"])
FOUR = {"feed": FEED, "batch": BATCH, "norm": NORM, "width": axis(["32", "64"])}
MECHANISM = {"axis": "feed", "reference": "split", "broken": "joint", "repaired": "joint_consistent"}


def _assert_figures(paths, out_dir):
    assert sorted(p.name for p in paths) == sorted(f"{n}.{e}" for n in outputs.FIGURES for e in ("png", "pdf"))
    for name in outputs.FIGURES:
        png, pdf = out_dir / f"{name}.png", out_dir / f"{name}.pdf"
        assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 1000, name
        pixels = image.imread(png)
        assert pixels.shape[0] > 150 and pixels.shape[1] > 150, name
        assert pixels[..., :3].std() > 0.01, f"{name}.png is blank"


def _ofat(axes: dict) -> list[tuple]:
    """One axis at a time around the references: most panels of a grid hold no cell."""
    reference = tuple(a["reference"] for a in axes.values())
    return [reference] + [
        reference[:i] + (x,) + reference[i + 1 :]
        for i, a in enumerate(axes.values())
        for x in a["levels"]
        if x != a["reference"]
    ]


DESIGNS = {
    "one axis, one seed": (Synthetic({"alpha": axis(["a1", "a2"])}, seeds=range(1)), {}),
    "two axes, every run of a cell diverged": (
        Synthetic({"feed": FEED, "batch": BATCH}, seeds=range(3), diverged={(("joint", "16"), s) for s in range(3)}),
        {"mechanism": MECHANISM},
    ),
    "three axes": (
        Synthetic({"feed": FEED, "batch": BATCH, "norm": NORM}, seeds=range(3)),
        {"mechanism": MECHANISM, "confirmatory": 2},
    ),
    "four axes, OFAT": (Synthetic(FOUR, seeds=range(2), cells=_ofat(FOUR)), {}),
}


@pytest.mark.parametrize("design", DESIGNS)
def test_every_figure_is_written_as_png_and_pdf(tmp_path, design):
    study, options = DESIGNS[design]
    tables = study.write(tmp_path, **options)
    paths = write_figures(tables, tmp_path / "runs", tmp_path / "figures")
    _assert_figures(paths, tmp_path / "figures")


def test_figures_are_drawn_when_no_contrast_exists(tmp_path):
    """One level of the compared axis and one seed: contrasts.csv is empty of confirmatory and control rows."""
    tables = Synthetic({"feed": axis(["split"]), "alpha": axis(["a1"])}, seeds=range(1)).write(tmp_path)
    _assert_figures(write_figures(tables, tmp_path / "runs", tmp_path / "figures"), tmp_path / "figures")


def test_the_panels_follow_the_declared_axes(tmp_path):
    tables = Synthetic(FOUR, seeds=range(1)).write(tmp_path, images=False)
    facets = Facets(StudyView(tables))
    assert facets.compared.name == "feed" and facets.levels == ["split", "joint", "joint_consistent"]
    assert facets.rows == [("16",), ("64",)]
    assert facets.cols == list(itertools.product(["none", "batch"], ["32", "64"]))
    assert facets.title(("16",), ("batch", "32")) == "batch = 16, norm = batch, width = 32"


def test_an_ofat_design_leaves_the_panels_without_a_cell_empty(tmp_path):
    axes = {"feed": FEED, "batch": BATCH, "norm": NORM}
    tables = Synthetic(axes, seeds=range(1), cells=_ofat(axes)).write(tmp_path, images=False)
    facets = Facets(StudyView(tables))
    held = {(r, c) for r, c in itertools.product(facets.rows, facets.cols) if facets.held(r, c)}
    assert held == {(("64",), ("none",)), (("16",), ("none",)), (("64",), ("batch",))}


def test_the_sample_grid_shows_each_cells_first_seed_from_its_run_path(tmp_path, monkeypatch):
    study = Synthetic({"feed": FEED, "batch": BATCH}, seeds=[3, 5], diverged={(("joint", "16"), 3)})
    tables = study.write(tmp_path)
    read = []
    imread = figures.plt.imread
    monkeypatch.setattr(figures.plt, "imread", lambda path: read.append(path) or imread(path))
    write_figures(tables, tmp_path / "runs", tmp_path / "figures")
    root = tmp_path / "runs" / DATASET
    # The diverged run has no final sample: its panel says so rather than show another seed's.
    expected = {
        root / study.run_path(cell, 3) / "samples" / "step_500.png" for cell in study.cells if cell != ("joint", "16")
    }
    assert set(read) == expected


def test_figures_need_the_stats_tables_and_the_runs_root(tmp_path):
    tables = Synthetic({"alpha": axis(["a1", "a2"])}, seeds=range(1)).write(tmp_path, images=False)
    with pytest.raises(UsageError, match="--runs-root"):
        write_figures(tables, tmp_path / "nowhere", tmp_path / "figures")
    (tables / "summary.csv").unlink()
    with pytest.raises(UsageError, match="summary.csv not found"):
        write_figures(tables, tmp_path, tmp_path / "figures")


def test_every_table_and_figure_has_a_caption_and_every_caption_an_output():
    report = Path(__file__).parents[1] / "workflow/report"
    expected = {
        *(f"{t}.rst" for t in outputs.TABLES),
        *(f"fig_{f}.rst" for f in outputs.FIGURES),
        "runs.rst",
        "samples.rst",
        "findings.rst",
        "workflow.rst",
    }
    assert {p.name for p in report.glob("*.rst")} == expected


def test_a_comparison_declared_under_two_tests_is_drawn_once_in_the_heatmap(tmp_path):
    """e.g. config/mechanism.yaml's joint_cached_stats vs joint_consistent, a difference and an equivalence test."""
    tables = Synthetic({"feed": FEED}, seeds=range(3)).write(tmp_path, images=False)
    table = pd.read_csv(tables / "contrasts.csv", keep_default_na=False)
    joint = table[(table["kind"] == "simple") & (table["level"] == "joint") & (table["level_ref"] == "split")]
    twice = joint.assign(contrast=joint["contrast"] + " (equivalence, margin 10%)", verdict="not equivalent")
    pd.concat([table, twice]).to_csv(tables / "contrasts.csv", index=False)
    figure = figures.effects_heatmap(StudyView(tables), pd.concat([table, twice]))
    labels = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert len([label for label in labels if "[" in label]) == 2  # one cell each: joint and joint_consistent vs split
    assert not any(label.endswith("not equivalent") for label in labels)  # the first, difference, row


def test_every_verdict_has_its_own_marker_in_the_forest_plot_and_its_legend_names_those_drawn(tmp_path):
    from ganablate.study import vocab

    assert set(figures.VERDICTS) == set(vocab.VERDICTS)
    assert len({marker for _, marker in figures.VERDICTS.values()}) == len(figures.VERDICTS)
    tables = Synthetic({"feed": FEED}, seeds=range(3)).write(tmp_path, images=False, confirmatory=2)
    table = pd.read_csv(tables / "contrasts.csv", keep_default_na=False)
    table.loc[table["role"] == "confirmatory", "verdict"] = ["inferior", "non-inferior"]
    figure = figures.contrasts(StudyView(tables), table)
    legend = {t.get_text() for t in figure.legends[0].texts}
    assert {"inferior", "non-inferior"} <= legend and not legend & {"inconclusive", "worse", "better"}
    markers = {line.get_marker() for line in figure.axes[0].lines if line.get_linestyle() == "None"}
    assert markers == {"X", "P"}


def test_the_forest_plots_ratio_ticks_do_not_crowd_an_axis_that_reaches_far():
    assert figures._spaced_ticks(0.85, 4.2) == [1, 1.25, 2, 4]
    assert figures._spaced_ticks(0.3, 1.2) == [0.5, 0.67, 0.8, 1]  # 1.1 within an eighth of the log range of 1
    assert figures._spaced_ticks(0.95, 1.05) == [1]


def test_the_same_tables_draw_byte_identical_figures(tmp_path):
    """The per-seed strip plot's jitter and the files' metadata (a PDF's creation date) included."""
    tables = Synthetic({"feed": FEED, "batch": BATCH}, seeds=range(4)).write(tmp_path)
    first = write_figures(tables, tmp_path / "runs", tmp_path / "first")
    second = write_figures(tables, tmp_path / "runs", tmp_path / "second")
    differ = [a.name for a, b in zip(first, second) if a.read_bytes() != b.read_bytes()]
    assert differ == []


def _full_disk_write_bytes(self, data):
    """Path.write_bytes on a disk that fills after ten bytes (as tests/test_files.py fills one for text)."""
    with open(self, "wb") as f:
        f.write(data[:10])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_figure_written_on_a_full_disk_leaves_the_old_figure_whole_and_no_temporary_file(tmp_path, monkeypatch):
    figures._save(figures._message("the old figure"), tmp_path, "contrasts")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setattr(Path, "write_bytes", _full_disk_write_bytes)
    new = figures._message("the new figure")
    with pytest.raises(UsageError) as error:
        figures._save(new, tmp_path, "contrasts")
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'contrasts.png'}:") and "\n" not in message, message
    assert "No space left on device" in message and "free space" in message, message
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert not plt.fignum_exists(new.number)  # closed all the same
