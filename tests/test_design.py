"""Study axes as data: every bad axis input is one line naming its key, before any job; designs schedule the
cells they promise; a cell's config is the study's with each axis's key set."""

from __future__ import annotations

import pytest

from ganablate.analysis.plan import plan_hash, plan_of
from ganablate.config import ConfigError, validate_config
from ganablate.design import design_of

BATCH = {"sets": "train.batch_size", "levels": [16, 64, 256], "reference": 64, "ordered": True}


def _config(axes, design="full", **stats):
    return validate_config({"study": {"axes": axes, "design": design}, "stats": stats})


@pytest.mark.parametrize(
    ("axes", "stats", "expected"),
    [
        (
            {"lr": {"sets": "train.learning_rate", "levels": [1]}},
            {},
            "study.axes.lr.sets: unknown key 'train.learning_rate'",
        ),
        (
            {"batch": {"sets": "train.batch_size", "levels": [0, 64]}},
            {},
            "study.axes.batch.levels.0: train.batch_size: 0 is less than the minimum of 1",
        ),
        (
            {"lr": {"sets": "train.lr_d", "levels": {"a": 1e-4, "a ": 2e-4}}},
            {},
            "study.axes.lr.levels: label 'a ' is not safe",
        ),
        ({"lr": {"sets": "train.lr_d", "levels": {"Fast": 1e-3}}}, {}, "label 'Fast' is not safe in a path"),
        ({"w": {"sets": "model.d_width", "levels": [8, 8]}}, {}, "study.axes.w.levels: label '8' appears twice"),
        (
            {"w": {"sets": "model.d_width", "levels": [8, 16], "reference": 32}},
            {},
            "study.axes.w.reference: '32' is not a level; allowed: 8, 16",
        ),
        ({"feed": {"levels": ["split", "mixed"]}}, {}, "study.axes.feed.levels: unknown feed 'mixed'; allowed: split"),
        (
            {"a": {"sets": "model.d_width", "levels": [8]}, "b": {"sets": "model.d_width", "levels": [16]}},
            {},
            "study.axes.b.sets: model.d_width is already set by axis a",
        ),
        ({"w": {"levels": [8, 16]}}, {}, "study.axes.w.sets: required"),
        (
            {"t": {"sets": "train.threads", "levels": [1, 2]}},
            {},
            "train.threads cannot be an axis (an execution setting)",
        ),
        (
            {"w": {"sets": "model.d_width", "levels": [8, 16]}},
            {"confirmatory": [{"compare": {"w": 32}}]},
            "stats.confirmatory.0.compare.w: unknown level '32'; allowed: 8, 16",
        ),
        (
            {"w": {"sets": "model.d_width", "levels": [8, 16]}},
            {"confirmatory": [{"compare": {"depth": 2}}]},
            "stats.confirmatory.0.compare: unknown axis 'depth'",
        ),
        (
            {"w": {"sets": "model.d_width", "levels": [8, 16]}},
            {"confirmatory": [{"kind": "trend", "over": "w", "compare": {"w": 16}}]},
            "stats.confirmatory.0.over: 'w' is not an ordered axis",
        ),
        ({"seed": {"sets": "model.d_width", "levels": [8]}}, {}, "study.axes.seed: 'seed' cannot name an axis"),
    ],
)
def test_a_bad_axis_is_one_line_naming_its_key(axes, stats, expected):
    with pytest.raises(ConfigError) as error:
        _config(axes, **stats)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_design_cells_that_name_unknown_levels_are_refused():
    with pytest.raises(ConfigError, match=r"study.design.1.batch: unknown level 32; allowed: 16, 64, 256"):
        _config({"feed": {"levels": ["split", "joint"]}, "batch": BATCH}, design=[{"batch": 16}, {"batch": 32}])


def test_full_crosses_the_axes_and_ofat_varies_one_axis_at_a_time_around_the_references():
    axes = {
        "feed": {"levels": ["split", "joint"]},
        "batch": BATCH,
        "lr": {"sets": "train.lr_d", "levels": {"slow": 1e-4, "base": 2e-4}, "reference": "base"},
    }
    assert len(design_of(_config(axes)).cells) == 2 * 3 * 2
    assert design_of(_config(axes, design="ofat")).cells == (
        ("split", "64", "base"),
        ("joint", "64", "base"),
        ("split", "16", "base"),
        ("split", "256", "base"),
        ("split", "64", "slow"),
    )
    listed = design_of(_config(axes, design=[{"feed": "joint", "batch": 256}, {"lr": "slow"}])).cells
    assert listed == (("joint", "256", "base"), ("split", "64", "slow"))


def test_a_cells_config_sets_each_axis_key_and_its_run_path_names_every_axis_in_declared_order():
    config = _config({"batch": BATCH, "feed": {"levels": ["split", "joint"]}, "norm": {"levels": ["batch", "layer"]}})
    design = design_of(config)
    cell = design.cell(("256", "joint", "layer"))
    applied = design.apply(config, cell)
    assert (applied["train"]["batch_size"], applied["train"]["feed"], applied["model"]["d_norm"]) == (
        256,
        "joint",
        "layer",
    )
    assert config["train"]["batch_size"] == 64  # the study's config is untouched
    assert design.run_path(cell, 3) == "batch~256/feed~joint/norm~layer/seed3"
    assert [a.as_dict()["shared_streams"] for a in design.axes] == [
        ["G init", "D init"],
        ["G init", "D init", "real batches", "z"],
        ["G init", "real batches", "z"],
    ]


def test_the_plan_hash_covers_what_decides_a_verdict_but_not_how_a_job_runs():
    config = _config({"feed": {"levels": ["split", "joint"]}})
    base = plan_hash(plan_of(config))
    for section, key, value in (
        ("eval", "n_samples", 500),
        ("train", "checkpoints", [10]),
        ("stats", "failure_threshold", 300.0),
        ("eval", "extractor_epochs", 5),
        ("stats", "equivalence_margin", 0.05),
    ):
        changed = validate_config({**config, section: {**config[section], key: value}})
        assert plan_hash(plan_of(changed)) != base, key
    for section, key, value in (("train", "threads", 2), ("eval", "device", "auto"), ("train", "lr_g", 1e-3)):
        changed = validate_config({**config, section: {**config[section], key: value}})
        assert plan_hash(plan_of(changed)) == base, key
