"""One place names each thing: the config schema's enums and the torch-side registries agree with vocab."""

from __future__ import annotations

import yaml
from importlib.resources import files

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
    assert tuple(schema["study"]["properties"]["feeds"]["items"]["enum"]) == vocab.FEEDS
    assert tuple(schema["study"]["properties"]["norms"]["items"]["enum"]) == vocab.NORMS
    assert tuple(schema["dataset"]["properties"]["name"]["enum"]) == vocab.DATASETS
    assert tuple(schema["eval"]["properties"]["extractors"]["items"]["enum"]) == vocab.EXTRACTORS
    plan = schema["stats"]["properties"]
    assert set(plan["primary_metric"]["enum"]) == set(plan["secondary_metric"]["enum"]) == set(vocab.COMPARED)
    assert tuple(plan["primary_extractor"]["enum"]) == vocab.EXTRACTORS
    assert tuple(plan["reference_feed"]["enum"]) == vocab.FEEDS
    assert tuple(plan["test"]["enum"]) == tuple(vocab.TESTS)
    family = plan["confirmatory"]["items"]["properties"]
    assert tuple(family["norm"]["enum"]) == vocab.NORMS
    assert tuple(family["feed"]["enum"]) == tuple(family["feed_ref"]["enum"]) == vocab.FEEDS


def test_every_metric_names_a_torch_fidelity_result_key():
    import torch_fidelity

    keys = {getattr(torch_fidelity, k) for k in dir(torch_fidelity) if k.startswith("KEY_METRIC_")}
    assert {m.fidelity_key for m in vocab.METRICS.values()} <= keys


def test_every_stats_table_has_a_report_caption():
    from pathlib import Path

    from ganablate.stats import TABLES

    report = Path(__file__).parents[1] / "workflow/report"
    assert [t for t in TABLES if not (report / f"{t}.rst").is_file()] == []
