"""A contrast kind and a hypothesis are each one entry: docs/extending.md's examples, appended to their registry's
file in a copy of the package with no other file changed, are validated in a config and computed into contrasts.csv."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ganablate import catalog
from ganablate.analysis.verdicts import HYPOTHESES, register_hypothesis
from ganablate.study.contrasts import KINDS, register_kind
from tests.test_catalog import documented_entries, run_in_copy, with_guide_entry

# Runs in the copy: the config names the new entry, then contrasts.csv's rows of it at the primary step.
CHECK = """
import json, sys
import numpy as np
from ganablate import catalog
from ganablate.analysis import cells, contrasts
from ganablate.study import vocab
from ganablate.study.config import validate_config
from ganablate.study.plan import Plan
sys.path.insert(0, sys.argv[2])
from synthetic_runs import runs_table, study_config

spec = json.loads(sys.argv[1])
config = study_config(axes={"feed": ["split", "joint", "joint_consistent"]}, contrasts=[spec])
rng = np.random.default_rng(0)
runs = runs_table({(f,): list(60 * (1.3 if f == "joint" else 1.0) * np.exp(rng.normal(0, 0.05, 6)))
                   for f in ("split", "joint", "joint_consistent")}, axes=["feed"])
plan = Plan.from_config(config)
table = contrasts.contrasts_table(runs, plan, cells.failed_rows(runs, plan))
rows = table[table["declared"] != ""]
print(json.dumps({"rows": rows[["id", "contrast", "kind", "test", "level", "level_ref", "ratio", "verdict"]]
                  .to_dict("records"), "kinds": catalog.names("kinds"), "verdicts": list(vocab.VERDICTS)}))
"""


def _run_with(registry: str, spec: dict, tmp_path: Path) -> dict:
    """The guide's example of `registry` appended to its file in a copy of the package; CHECK's output there."""
    with_guide_entry(registry, tmp_path)
    return run_in_copy(tmp_path, CHECK, json.dumps(spec), str(Path(__file__).parent))


def test_a_new_contrast_kind_is_one_call_in_study_contrasts(tmp_path):
    name, _ = documented_entries()["kinds"]
    got = _run_with("kinds", {"kind": name, "compare": {"feed": "joint"}}, tmp_path)
    assert name in got["kinds"]
    (row,) = got["rows"]
    assert (row["kind"], row["contrast"], row["level"], row["level_ref"]) == (
        name,
        "feed: joint vs the rest",
        "joint",
        "rest",
    )
    assert row["id"] == "feed-joint-vs-the-rest"
    assert row["ratio"] == pytest.approx(1.3, rel=0.1)  # joint's FID over the others' geometric mean


def test_a_new_hypothesis_is_one_call_in_analysis_verdicts(tmp_path):
    name, code = documented_entries()["hypotheses"]
    spec = {"compare": {"feed": "joint"}, "test": name, "margin": 0.05}
    got = _run_with("hypotheses", spec, tmp_path)
    (row,) = got["rows"]
    assert row["contrast"] == f"feed: joint vs split ({name}, margin 5%)" and row["test"] == name
    assert {"superior", "not superior"} <= set(got["verdicts"])
    assert row["verdict"] == "not superior"  # joint is 30% worse: wholly beyond a superiority of 5%


def test_the_catalog_reads_the_kinds_and_hypotheses_as_importing_them_registers_them():
    for registry, live in (("kinds", KINDS), ("hypotheses", HYPOTHESES)):
        assert catalog.names(registry) == tuple(live)
        for name, entry in catalog.entries(registry).items():
            for key, value in entry.settings.items():
                assert getattr(live[name], key) == value, (name, key)


def test_a_kind_or_hypothesis_registered_twice_is_refused_in_one_line():
    with pytest.raises(ValueError, match="^register_kind: 'simple' is already registered; allowed: a new name$"):
        register_kind("simple", keys=(), parse=None, title=None, parts=None, words=None)
    with pytest.raises(ValueError, match="^register_hypothesis: 'equivalence' is already registered"):
        register_hypothesis("equivalence", words=(), verdict=None, p=None, beyond=None, bound=None)
