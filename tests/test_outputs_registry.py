"""The study's outputs are registries: catalog.py reads the tables' and figures' register calls as importing them
registers them, and the promise they exist for holds: a new table is one module of analysis/ (with its caption), a
new figure one call in report/figures.py, and `ganablate stats` and `ganablate figures` write them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from ganablate import catalog
from ganablate.analysis import aggregate, tables
from ganablate.report import figures
from ganablate.study import outputs
from tests.synthetic_runs import make_runs, study_config
from tests.test_catalog import appended, package_copy, run_in_copy


def test_the_catalog_reads_every_table_and_figure_as_importing_them_registers_them():
    registered = tables.registered()
    assert catalog.names("tables") == tuple(registered)
    assert outputs.TABLES == {name: table.category for name, table in registered.items()}
    assert catalog.names("figures") == tuple(figures.FIGURES)
    for name, entry in catalog.entries("figures").items():
        plot = figures.FIGURES[name]
        assert (entry["category"], entry["tables"]) == (plot.category, plot.tables), name
        assert outputs.FIGURES[name] == plot.category


def test_the_figures_read_each_runs_failures_from_a_table_the_statistics_write():
    """The report formats: which run failed, and why, is outcomes.csv's (analysis/cells.py's rule), not redrawn."""
    assert figures.FIGURES["primary_per_seed"].tables == ("outcomes",)
    assert "outcomes" in outputs.TABLES and not hasattr(figures, "run_outcomes")


def test_a_register_call_refuses_a_name_taken_and_what_is_not_code():
    from ganablate.analysis.evidence import register_table

    with pytest.raises(ValueError, match="^register_table: 'summary' is already registered"):
        register_table("summary", category="tables", build=len, note=str)
    with pytest.raises(TypeError, match="^register_table: 'mine': build and note must be callables"):
        register_table("mine", category="tables", build="summary_table", note=str)
    with pytest.raises(ValueError, match="^register_figure: 'contrasts' is already registered"):
        figures.register_figure("contrasts", category="figures", draw=len, tables=())


# docs/extending.md's example of a new table (a new module of analysis/) and of a new figure (appended to
# report/figures.py), written into a copy of the package; with no other file changed, `ganablate stats` writes the
# table and `ganablate figures` draws the figure.
EXTENDING = Path(__file__).parents[1] / "docs/extending.md"


def documented() -> dict[str, tuple[str, str, str]]:
    """tables/figures -> (the file of the package, the new output's name, its code) in docs/extending.md."""
    found = {}
    pattern = r"```python\n# src/ganablate/(\S+) \((a new module|appended)\)\n(.*?)```"
    for path, _, code in re.findall(pattern, EXTENDING.read_text(), flags=re.S):
        kind = "tables" if "register_table(" in code else "figures"
        found[kind] = (path, re.search(r'register_\w+\(\s*"(\w+)"', code).group(1), code)
    return found


def test_the_guide_shows_a_new_table_and_a_new_figure():
    assert set(documented()) == {"tables", "figures"}
    rows = EXTENDING.read_text()
    assert "| a table | **2** |" in rows and "| a figure | **2** |" in rows


CHECK = """
import json, sys
from ganablate import catalog
from ganablate.study import outputs
kind, name, config, tables, runs, out = json.loads(sys.argv[1])
if kind == "tables":
    from ganablate.analysis.tables import write_stats
    written = write_stats(config, tables)
else:
    from ganablate.report.figures import write_figures
    written = write_figures(tables, runs, out)
category = getattr(outputs, kind.upper())[name]
print(json.dumps({"category": category, "written": sorted(p.name for p in written if p.stem == name)}))
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A tiny study's runs, aggregated and (for the figure) its tables written by today's package."""
    root = tmp_path_factory.mktemp("study")
    axes = {"feed": ["split", "joint"]}
    config = study_config(axes, seeds=3, bootstrap_resamples=1000, power_simulations=200)
    make_runs(root / "runs", axes=axes, seeds=range(3), diverged={(("joint",), 0)})
    aggregate.write_aggregate([root / "runs"], root / "tables")
    tables.write_stats(config, root / "tables")
    return config, root


@pytest.mark.parametrize("kind", ["tables", "figures"])
def test_a_new_table_is_one_module_and_a_new_figure_one_call(kind, study, tmp_path):
    config, root = study
    path, name, code = documented()[kind]
    target = package_copy(tmp_path) / path
    assert target.exists() == (kind == "figures")  # the table's module is new; the figure joins figures.py
    appended(target, code)
    shutil.copytree(root / "tables", tmp_path / "tables")
    args = [kind, name, config, str(tmp_path / "tables"), str(root / "runs"), str(tmp_path / "figures")]
    got = run_in_copy(tmp_path, CHECK, json.dumps(args), env={"MPLCONFIGDIR": str(tmp_path / "mpl")})
    category = re.search(r'category="(\w+)"', code).group(1)
    extensions = ("csv", "md", "tex") if kind == "tables" else ("pdf", "png")
    assert got == {"category": category, "written": sorted(f"{name}.{e}" for e in extensions)}
    if kind == "tables":
        note = (tmp_path / "tables" / f"{name}.md").read_text().splitlines()[0]
        assert note.startswith("Per cell: the median over its runs of the steps each trained (of 500).")
        written = (tmp_path / "tables" / f"{name}.csv").read_text().splitlines()
        assert written[0] == "feed,steps_done" and sorted(written[1:]) == ["joint,500.0", "split,500.0"]
