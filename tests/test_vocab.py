"""One place names each thing: the config schema's enums agree with the vocabulary and the registries, and no module
outside the registries names a feed or a norm."""

from __future__ import annotations

import re
from pathlib import Path

from ganablate import catalog
from ganablate.device import DEVICES
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
    for section in ("train", "eval"):
        assert tuple(properties[section]["properties"]["device"]["enum"]) == DEVICES
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
    package = ROOT / "src/ganablate"
    registries = {"components/feeds.py", "components/norms.py"}
    # The modules that read the config keys train.feed and model.d_norm by the axes' names ("feed", "norm"); each
    # may name those, and no level but the ones listed: config.py refuses ghost_mixed without its model.ghost_chunk.
    key_readers = {
        "study/design.py": set(),
        "study/config.py": {"ghost_mixed"},
        "training/train.py": set(),
        "training/archcheck.py": set(),
    }
    levels = [x for x in [*catalog.names("feeds"), *catalog.names("norms")] if x not in ("none", "reference")]
    quoted = re.compile(r"[\"'](feed|norm|" + "|".join(levels) + r")[\"']")
    offenders, unneeded = [], {*registries, *key_readers}  # an exemption names a module that uses it
    for path in [*package.rglob("*.py"), *(ROOT / "workflow").rglob("*.smk"), ROOT / "workflow/Snakefile"]:
        name = path.relative_to(package if path.is_relative_to(package) else ROOT).as_posix()
        for m in quoted.finditer(path.read_text()):
            if name in registries or (name in key_readers and m[1] in {"feed", "norm", *key_readers[name]}):
                unneeded.discard(name)
            else:
                offenders.append(f"{name}: {m[0]}")
    assert offenders == [] and unneeded == set()
