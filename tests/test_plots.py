"""Every figure is written, as PNG and PDF, non-empty, also for the edge cases of the study."""

from __future__ import annotations

import pytest
from matplotlib import image

from ganablate import cli, stats
from ganablate.config import UsageError
from ganablate.plots import write_figures
from tests.synthetic_runs import make_runs, study_config

NAMES = ["primary_per_seed", "primary_over_steps", "interaction", "effects_heatmap", "mechanism", "samples_final"]


def _study(root, config, **runs):
    make_runs(root / "runs", **runs)
    stats.write_aggregate([root / "runs"], root / "tables")
    stats.write_stats(config, root / "tables")
    return root


def _assert_figures(out_dir):
    for name in NAMES:
        png, pdf = out_dir / f"{name}.png", out_dir / f"{name}.pdf"
        assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 1000, name
        pixels = image.imread(png)
        assert pixels.shape[0] > 200 and pixels.shape[1] > 200, name
        assert pixels[..., :3].std() > 0.01, f"{name}.png is blank"


def test_every_figure_is_written_as_png_and_pdf_also_when_all_runs_of_a_variant_failed(tmp_path):
    config = study_config(seeds=3, failure_threshold=55.0)
    root = _study(tmp_path, config, seeds=range(3), diverged={("joint", "batch", s) for s in range(3)})
    paths = write_figures(config, root / "tables", root / "runs", root / "figures")
    assert sorted(p.name for p in paths) == sorted(f"{n}.{e}" for n in NAMES for e in ("png", "pdf"))
    _assert_figures(root / "figures")


@pytest.mark.parametrize("case", ["single_seed", "one_feed_only"])
def test_figures_are_drawn_for_the_edge_cases(tmp_path, case):
    runs = {"single_seed": {"seeds": range(1)},
            "one_feed_only": {"seeds": range(2), "feeds": ("split",)}}[case]
    config = study_config(seeds=len(runs["seeds"]), feeds=runs.get("feeds", ("split", "joint", "joint_consistent")))
    root = _study(tmp_path, config, steps=(100,), **runs)
    write_figures(config, root / "tables", root / "runs", root / "figures")
    _assert_figures(root / "figures")


def test_cli_figures_needs_the_stats_tables(tmp_path, capsys):
    make_runs(tmp_path / "runs", seeds=range(1), images=False)
    stats.write_aggregate([tmp_path / "runs"], tmp_path / "tables")
    args = ["figures", "--config-json", "{}", "--tables", str(tmp_path / "tables"), "--runs-root", str(tmp_path / "runs"),
            "--out-dir", str(tmp_path / "figures")]
    assert cli.main(args) == 2
    assert "summary.csv" in capsys.readouterr().err


def test_figures_reject_a_missing_runs_root(tmp_path):
    with pytest.raises(UsageError, match="--runs-root"):
        write_figures(study_config(), tmp_path, tmp_path / "nowhere", tmp_path / "figures")
