"""One place names each thing: the config schema's enums agree with the vocabulary and the registries, and no module
outside the registries names a feed or a norm."""

from __future__ import annotations

import re
from pathlib import Path

from ganablate import catalog
from ganablate.study import vocab
from ganablate.study.config import schema

ROOT = Path(__file__).parents[1]


def test_the_schema_enums_are_the_vocabularys_and_the_metric_registrys():
    properties = schema()["properties"]
    default_axes = properties["study"]["properties"]["axes"]["default"]
    assert set(default_axes["feed"]["levels"]) <= set(catalog.names("feeds"))
    assert set(default_axes["norm"]["levels"]) <= set(catalog.names("norms"))
    assert properties["dataset"]["properties"]["name"]["enum"] == list(catalog.names("datasets"))
    assert tuple(properties["eval"]["properties"]["extractors"]["items"]["enum"]) == vocab.EXTRACTORS
    plan = properties["stats"]["properties"]
    compared = list(catalog.compared_metrics())
    assert plan["primary_metric"]["enum"] == plan["secondary_metric"]["enum"] == compared
    assert properties["eval"]["properties"]["final_only"]["items"]["enum"] == compared
    assert tuple(plan["primary_extractor"]["enum"]) == vocab.EXTRACTORS
    assert tuple(plan["test"]["enum"]) == tuple(vocab.TESTS)


def test_every_table_and_figure_has_a_report_caption_and_no_caption_is_orphaned():
    from ganablate.study.outputs import FIGURES, TABLES

    report = ROOT / "workflow/report"
    expected = {f"{t}.rst" for t in TABLES} | {f"fig_{f}.rst" for f in FIGURES}
    expected |= {"runs.rst", "samples.rst", "findings.rst", "workflow.rst"}
    assert {p.name for p in report.glob("*.rst")} == expected


def test_no_module_outside_the_registries_names_an_axis_or_a_level():
    """The design is data: feed and norm levels have code in their registries (components/feeds.py, norms.py); the
    rest of the package and the workflow take axes and levels from the config."""
    # The registries' own modules; design.py, config.py, stack.py and train.py, which read train.feed and
    # model.d_norm (config keys); archcheck.py, which trains an architecture under split and joint.
    allowed = {"feeds.py", "norms.py", "design.py", "stack.py", "train.py", "config.py", "archcheck.py"}
    levels = [x for x in [*catalog.names("feeds"), *catalog.names("norms")] if x not in ("none", "reference")]
    quoted = re.compile(r"[\"'](feed|norm|" + "|".join(levels) + r")[\"']")
    offenders = []
    for path in [
        *(ROOT / "src/ganablate").rglob("*.py"),
        *(ROOT / "workflow").rglob("*.smk"),
        ROOT / "workflow/Snakefile",
    ]:
        if path.name in allowed:
            continue
        offenders += [f"{path.name}: {m[0]}" for m in quoted.finditer(path.read_text())]
    assert offenders == []
