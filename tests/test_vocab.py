"""One place names each thing: the config schema's enums and the torch-side registries agree with vocab."""

from __future__ import annotations

from importlib.resources import files

import yaml

from ganablate import vocab
from ganablate.feed import FEEDS
from ganablate.models import NORMS


def _schema() -> dict:
    return yaml.safe_load(files("ganablate").joinpath("config.schema.yaml").read_text())["properties"]


def test_the_registries_of_feeds_and_norms_are_the_vocabularys():
    assert tuple(FEEDS) == vocab.FEEDS
    assert tuple(NORMS) == vocab.NORMS


def test_the_schema_enums_are_the_vocabularys():
    schema = _schema()
    default_axes = schema["study"]["properties"]["axes"]["default"]
    assert set(default_axes["feed"]["levels"]) <= set(vocab.FEEDS)
    assert set(default_axes["norm"]["levels"]) <= set(vocab.NORMS)
    assert tuple(schema["dataset"]["properties"]["name"]["enum"]) == vocab.DATASETS
    assert tuple(schema["eval"]["properties"]["extractors"]["items"]["enum"]) == vocab.EXTRACTORS
    plan = schema["stats"]["properties"]
    assert set(plan["primary_metric"]["enum"]) == set(plan["secondary_metric"]["enum"]) == set(vocab.COMPARED)
    assert tuple(plan["primary_extractor"]["enum"]) == vocab.EXTRACTORS
    assert tuple(plan["test"]["enum"]) == tuple(vocab.TESTS)


def test_every_metric_names_a_torch_fidelity_result_key():
    import torch_fidelity

    keys = {getattr(torch_fidelity, k) for k in dir(torch_fidelity) if k.startswith("KEY_METRIC_")}
    assert {m.fidelity_key for m in vocab.METRICS.values()} <= keys


def test_every_table_and_figure_has_a_report_caption_and_no_caption_is_orphaned():
    from pathlib import Path

    from ganablate.outputs import FIGURES, TABLES

    report = Path(__file__).parents[1] / "workflow/report"
    expected = {f"{t}.rst" for t in TABLES} | {f"fig_{f}.rst" for f in FIGURES}
    expected |= {"runs.rst", "samples.rst", "findings.rst", "workflow.rst"}
    assert {p.name for p in report.glob("*.rst")} == expected


def test_no_module_outside_the_registries_names_an_axis_or_a_level():
    """The design is data: feed and norm levels have code in feed.py and models.py (and vocab names them); the
    rest of the package and the workflow take axes and levels from the config."""
    import re
    from pathlib import Path

    root = Path(__file__).parents[1]
    # The registries' own modules, and config.py and train.py, which read train.feed and model.d_norm (config keys).
    allowed = {"feed.py", "models.py", "vocab.py", "design.py", "stack.py", "train.py", "config.py"}
    levels = [x for x in [*vocab.FEEDS, *vocab.NORMS] if x not in ("none", "reference")]  # also plain words
    quoted = re.compile(r"[\"'](feed|norm|" + "|".join(levels) + r")[\"']")
    offenders = []
    for path in [
        *(root / "src/ganablate").rglob("*.py"),
        *(root / "workflow").rglob("*.smk"),
        root / "workflow/Snakefile",
    ]:
        if path.name in allowed:
            continue
        text = path.read_text()
        offenders += [f"{path.name}: {m[0]}" for m in quoted.finditer(text)]
    assert offenders == []


def test_the_remedies_are_levels_of_the_norm_registry_other_than_batch():
    assert set(vocab.REMEDIES) <= set(vocab.NORMS) - {"batch"} and len(set(vocab.REMEDIES)) == len(vocab.REMEDIES)
