"""Study axes as data: every bad axis input is one line naming its key, before any job; designs schedule the
cells they promise; a cell's config is the study's with each axis's key set."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ganablate.errors import ConfigError
from ganablate.study.config import load_config, validate_config
from ganablate.study.contrasts import declared_all
from ganablate.study.design import design_of, run_config
from ganablate.study.plan import Plan, plan_hash, plan_of

REPO = Path(__file__).resolve().parents[1]

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
    applied = run_config(config, cell, design)
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
        ["G init", "D init", "real batches", "z"],  # batch and layer: one family of D inits
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
        # issue 27: what the runs compute, how G is sampled, the remedies' roles
        ("train", "lr_g", 1e-3),
        ("model", "d_width", 48),
        ("eval", "g_mode", "train"),
        ("stats", "remedies", {"axis": "feed", "reference": "split", "feed_axis": "feed", "working": "split"}),
    ):
        changed = {**config, section: {**config[section], key: value}}
        assert plan_hash(plan_of(changed)) != base, key
    for section, key, value in (("train", "threads", 2), ("eval", "device", "auto"), ("train", "runs_per_job", 5)):
        changed = validate_config({**config, section: {**config[section], key: value}})
        assert plan_hash(plan_of(changed)) == base, key


@pytest.mark.parametrize(("section", "key", "other"), [("model", "arch", "resnet"), ("train", "loss", "hinge")])
def test_keys_added_later_enter_the_plan_and_a_runs_identity_only_off_their_defaults(section, key, other, monkeypatch):
    """Committed studies keep their plan hashes, and their runs their config_hash, after model.arch and train.loss
    came: at its default a later key is no part of either; at another value it is."""
    from ganablate.components import architectures
    from ganablate.study.identity import run_hash

    monkeypatch.setattr(architectures, "names", lambda: ["dcgan", "resnet"])
    config = _config({"feed": {"levels": ["split", "joint"]}})
    before = {**config, section: {k: v for k, v in config[section].items() if k != key}}  # as configs were
    assert key in config[section] and plan_of(config) == plan_of(before)
    assert run_hash(config, 0) == run_hash(before, 0)
    changed = validate_config({**config, section: {**config[section], key: other}})
    assert plan_of(changed)[section][key] == other and plan_hash(plan_of(changed)) != plan_hash(plan_of(config))
    assert run_hash(changed, 0) != run_hash(config, 0)


def test_the_plan_hash_covers_the_package_version_and_the_inception_weights_bytes(tmp_path, monkeypatch):
    """The verdict rules live in code (issue 27): another release is another plan. The weights' path says nothing of
    what the file holds: the same path with other bytes is another plan."""
    import ganablate.study.plan as plan

    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"one")
    config = _config({"feed": {"levels": ["split", "joint"]}})
    config["eval"] |= {"extractors": ["domain", "inception-v3-compat"], "inception_weights": str(weights)}
    base = plan_hash(plan_of(config))
    weights.write_bytes(b"two")
    assert plan_hash(plan_of(config)) != base
    weights.write_bytes(b"one")
    assert plan_hash(plan_of(config)) == base
    monkeypatch.setattr(plan, "__version__", "99.0")
    assert plan_hash(plan_of(config)) != base


FOUR = {
    "feed": {"levels": ["split", "joint", "joint_consistent", "split_g_mixed"]},
    "norm": {"levels": ["none", "batch"]},
}
MISMATCH = {"joint": 1, "split_g_mixed": 1, "split": -1, "joint_consistent": -1}


def _linear(weights, **more):
    return {"confirmatory": [{"kind": "linear", "weights": weights, **more}]}


@pytest.mark.parametrize(
    ("stats", "expected"),
    [
        (_linear({"feed": {"joint": 1, "split": -0.5}}), "stats.confirmatory.0.weights.feed: the weights sum to 0.5; "),
        (_linear({"feed": {"joint": 1, "mixed": -1}}), "stats.confirmatory.0.weights.feed: unknown level 'mixed'"),
        (
            _linear({"depth": {"a": 1, "b": -1}}),
            "stats.confirmatory.0.weights: unknown axis 'depth'; allowed: feed, norm",
        ),
        (
            _linear({"feed": {"joint": 0, "split": 0}}),
            "stats.confirmatory.0.weights.feed.joint: weight 0; allowed: a nonzero",
        ),
        (_linear({"feed": {"joint": 1}}), "stats.confirmatory.0.weights.feed: 1 level; allowed: two or more levels"),
        (
            _linear({"feed": {"joint": "one", "split": -1}}),
            "stats.confirmatory.0.weights.feed.joint: 'one' is not of type",
        ),
        (
            _linear({"feed": {"joint": True, "split": -1}}),
            "stats.confirmatory.0.weights.feed.joint: True is not of type",
        ),
        ({"confirmatory": [{"kind": "linear"}]}, "stats.confirmatory.0.weights: a linear contrast needs weights"),
        (
            _linear({"feed": MISMATCH}, compare={"feed": "joint"}),
            "stats.confirmatory.0.compare: a linear contrast takes weights (and within, test, margin) only",
        ),
        (
            _linear({"feed": MISMATCH}, within={"feed": "joint"}),
            "stats.confirmatory.0.within: feed is the weighted axis; allowed: the other axes",
        ),
        (
            {"contrasts": [{"compare": {"feed": "joint"}, "weights": {"feed": MISMATCH}}]},
            "stats.contrasts.0.weights: a simple contrast takes compare, against (and within, test, margin) only",
        ),
        (
            {"confirmatory": [{"compare": {"feed": "joint"}, "margin": 0.05}]},
            "stats.confirmatory.0.margin: only with test: equivalence or noninferiority",
        ),
        (
            {"confirmatory": [{"compare": {"feed": "joint"}, "test": "superiority"}]},
            "stats.confirmatory.0.test: 'superiority' is not one of ['difference', 'equivalence', 'noninferiority']",
        ),
        (
            {"confirmatory": [{"compare": {"feed": "joint"}, "test": "equivalence", "margin": 0}]},
            "stats.confirmatory.0.margin: 0 is less than or equal to the minimum of 0",
        ),
    ],
)
def test_a_bad_linear_contrast_or_declared_test_is_one_line_naming_its_key(stats, expected):
    with pytest.raises(ConfigError) as error:
        _config(FOUR, **stats)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_a_declared_test_and_margin_are_part_of_the_contrasts_name_and_so_of_the_plan():
    config = _config(
        FOUR, confirmatory=[{"kind": "linear", "weights": {"feed": MISMATCH}, "within": {"norm": "batch"}}]
    )
    assert plan_of(config)["confirmatory"] == ["feed[joint + split_g_mixed - split - joint_consistent] | norm=batch"]
    names, hashes = [], set()
    for extra in ({}, {"test": "difference"}, {"test": "noninferiority"}, {"test": "equivalence"}, {"margin": 0.05}):
        extra = extra if "margin" not in extra else {"test": "equivalence", **extra}
        plan = plan_of(_config(FOUR, confirmatory=[{"compare": {"feed": "joint"}, **extra}]))
        names += plan["confirmatory"]
        hashes.add(plan_hash(plan))
    assert names == [
        "feed: joint vs split",  # the default, named (and hashed) as before
        "feed: joint vs split",
        "feed: joint vs split (non-inferiority, margin 10%)",
        "feed: joint vs split (equivalence, margin 10%)",
        "feed: joint vs split (equivalence, margin 5%)",
    ]
    assert len(hashes) == 4


def test_the_mechanism_study_validates_with_a_family_of_seven_on_fresh_seeds(tmp_path):
    config = load_config(REPO / "config/mechanism.yaml")
    design = design_of(config)
    assert config["study"]["name"] == "mechanism" and config["model"]["d_norm"] == "batch"
    assert design.names == ["feed"] and len(design.cells) == 5 and design.axis("feed").reference == "split"
    assert design.seeds == tuple(range(100, 112))  # fresh: every committed study used seeds below 10
    family = declared_all(design, config["stats"])["confirmatory"]
    assert [d.kind for d in family] == ["linear", *["simple"] * 6]
    assert [d.test for d in family] == ["difference"] * 7
    assert dict(family[0].weights) == {"joint": 1, "split_g_mixed": 1, "split": -1, "joint_consistent": -1}
    assert plan_of(config)["confirmatory"] == [
        "feed[joint + split_g_mixed - split - joint_consistent]",
        "feed: split_g_mixed vs split",
        "feed: joint_cached_stats vs joint",
        "feed: joint_cached_stats vs joint_consistent",
        "feed: joint vs split",
        "feed: joint_consistent vs split",
        "feed: joint_consistent vs joint",
    ]
    assert plan_of(config)["contrasts"] == ["feed: joint_cached_stats vs joint_consistent (equivalence, margin 10%)"]
    default = load_config(REPO / "config/config.yaml")
    for section, keys in (("train", ["steps", "checkpoints", "lr_g", "lr_d", "batch_size"]), ("eval", ["n_samples"])):
        assert {k: config[section][k] for k in keys} == {k: default[section][k] for k in keys}
    for key in ("equivalence_margin", "smallest_effect", "test", "confidence_level"):
        assert config["stats"][key] == default["stats"][key]
    assert Plan.from_config(config).write(tmp_path / "plan.json").is_file()


# --- a simple contrast of two cells that differ on several axes ---------------------------------------------------

TWO_AXES = {"compare": {"feed": "joint", "norm": "batch"}, "against": {"feed": "split", "norm": "none"}}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            TWO_AXES | {"against": {"norm": "none"}},
            "stats.confirmatory.0.against: names norm; allowed: the axes compare names: feed, norm",
        ),
        (
            {"compare": {"feed": "joint"}, "against": {"feed": "split", "norm": "none"}},
            "stats.confirmatory.0.against: names feed, norm; allowed: the axes compare names: feed",
        ),
        (
            TWO_AXES | {"against": {"feed": "split", "batch": 64}},
            "stats.confirmatory.0.against: names feed, batch; allowed: the axes compare names: feed, norm",
        ),
        (
            TWO_AXES | {"against": {"norm": "batch", "feed": "joint"}},
            "stats.confirmatory.0: compares the cell feed=joint, norm=batch with itself; allowed: cells that differ",
        ),
        (
            TWO_AXES | {"within": {"norm": "batch"}},
            "stats.confirmatory.0.within: norm is a compared axis (compare names feed, norm); allowed: the other axes",
        ),
        (
            TWO_AXES | {"against": {"feed": "split", "norm": "group"}},
            "stats.confirmatory.0.against.norm: unknown level 'group'; allowed: none, batch",
        ),
        (
            {"kind": "interaction", "compare": TWO_AXES["compare"], "by": {"norm": ["none", "batch"]}},
            "stats.confirmatory.0.compare: names feed, norm; allowed: one axis for kind interaction",
        ),
        (
            {"compare": {"feed": "joint"}, "within": {"feed": "joint"}},  # one axis: the message of before
            "stats.confirmatory.0.within: feed is the compared axis; allowed: the other axes",
        ),
    ],
)
def test_a_bad_contrast_of_several_axes_is_one_line_naming_its_key(spec, expected):
    with pytest.raises(ConfigError) as error:
        _config(FOUR, confirmatory=[spec])
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_a_simple_contrast_may_compare_two_cells_that_differ_on_several_axes():
    reordered = {"compare": {"norm": "batch", "feed": "joint"}, "against": {"norm": "none", "feed": "split"}}
    specs = [
        TWO_AXES | {"test": "noninferiority"},
        reordered,  # the axes' declared order, whatever the order given
        {"compare": TWO_AXES["compare"]},  # against: each axis's reference (split, none)
        {"compare": {"feed": "joint", "norm": "batch"}, "against": {"feed": "split", "norm": "batch"}},
    ]
    config = _config(FOUR, confirmatory=specs)
    noninferior, two, default, one = declared_all(design_of(config), config["stats"])["confirmatory"]
    assert (noninferior.axis, noninferior.level, noninferior.level_ref) == ("feed,norm", "joint,batch", "split,none")
    assert noninferior.axes == ("feed", "norm")
    assert noninferior.arms == ({"feed": "joint", "norm": "batch"}, {"feed": "split", "norm": "none"})
    assert (noninferior.kind, noninferior.within, noninferior.test, noninferior.margin) == (
        "simple",
        (),
        "noninferiority",
        0.10,
    )
    assert two == default == dataclasses.replace(noninferior, test="difference", margin=None, id=two.id)
    # two cells that agree on an axis: the other axis's simple contrast, held at that level
    assert (one.axis, one.level, one.level_ref, one.within) == ("feed", "joint", "split", (("norm", "batch"),))
    assert plan_of(config)["confirmatory"] == [
        "feed=joint, norm=batch vs feed=split, norm=none (non-inferiority, margin 10%)",
        "feed=joint, norm=batch vs feed=split, norm=none",
        "feed=joint, norm=batch vs feed=split, norm=none",
        "feed: joint vs split | norm=batch",
    ]


def test_the_remedies_study_validates_with_noninferiority_contrasts_across_both_axes(tmp_path):
    config = load_config(REPO / "config/remedies.yaml")
    family = declared_all(design_of(config), config["stats"])["confirmatory"]
    assert len(family) == 10 and [d.axes for d in family] == [("feed", "norm")] * 5 + [("norm",)] * 5
    assert {d.level_ref for d in family[:5]} == {"split,batch"} and {d.test for d in family[:5]} == {"noninferiority"}
    plan = plan_of(config)
    assert plan["confirmatory"][0] == "feed=joint, norm=ghost vs feed=split, norm=batch (non-inferiority, margin 10%)"
    assert plan["confirmatory"][5] == "norm: ghost vs batch | feed=joint"
    assert Plan.from_config(config).write(tmp_path / "plan.json").is_file()


# The plans of the committed studies under this release (0.2.0). Release 0.2.0's plan covers the package version and
# what the runs compute (issue 27), so it renamed the plans of the studies launched before it (20c5cbd2, 696a3983,
# 4f2fb72d, a3678654: studies/*.md): their runs say "plan changed after launch" when re-analysed by this release.
COMMITTED_PLANS = [
    ("config/config.yaml", "bfacb5b7"),  # sequential, on seeds 500 on, since issue 35 (9c01b98b before)
    ("config/batch-size.yaml", "9a9c87ad"),
    ("config/mechanism.yaml", "ab598cd2"),
    ("config/remedies.yaml", "e96cd0fa"),
    ("config/remedies-v2.yaml", "e59ca23e"),
]


@pytest.mark.parametrize(("path", "expected"), COMMITTED_PLANS)
def test_the_committed_studies_keep_their_plan_hashes(path, expected):
    """Their runs were launched under these hashes (studies/*.md): a new kind of contrast must not rename the old ones
    within a release."""
    assert plan_hash(plan_of(load_config(REPO / path))) == expected


def _keys_reversed(value):
    if isinstance(value, dict):
        return {key: _keys_reversed(value[key]) for key in reversed(list(value))}
    return [_keys_reversed(v) for v in value] if isinstance(value, list) else value


@pytest.mark.parametrize(("path", "expected"), COMMITTED_PLANS)
def test_the_plan_hash_does_not_depend_on_the_order_of_a_contrasts_keys(path, expected):
    """The workflow hands its jobs the config with sorted keys (common.smk's canonical): a declared contrast must
    name itself the same whichever order its mappings were written in."""
    config = load_config(REPO / path)
    config["stats"] = _keys_reversed(config["stats"])
    assert plan_hash(plan_of(config)) == expected


def test_contrasts_named_in_a_mapping_keep_their_ids_and_listed_ones_get_one_derived_from_their_title():
    named = {
        "joint-breaks": {"compare": {"feed": "joint"}},
        "ni": {"compare": {"feed": "joint"}, "test": "equivalence"},
    }
    config = _config(FOUR, confirmatory=named, contrasts=[{"compare": {"feed": "joint"}, "within": {"norm": "batch"}}])
    declared = declared_all(design_of(config), config["stats"])
    assert [s.id for s in declared["confirmatory"]] == ["joint-breaks", "ni"]
    assert [s.id for s in declared["contrasts"]] == ["feed-joint-vs-split-norm-batch"]
    plan = plan_of(config)  # recorded as the config gives them: a mapping by id, a list of titles
    assert plan["confirmatory"] == {
        "joint-breaks": "feed: joint vs split",
        "ni": "feed: joint vs split (equivalence, margin 10%)",
    }
    assert plan["contrasts"] == ["feed: joint vs split | norm=batch"]


@pytest.mark.parametrize(
    ("stats", "expected"),
    [
        (
            {"confirmatory": {"Bad Id": {"compare": {"feed": "joint"}}}},
            "stats.confirmatory.Bad Id: 'Bad Id' cannot name",
        ),
        (
            {"confirmatory": {"x": {"compare": {"feed": "joint"}}}, "controls": {"x": {"compare": {"norm": "batch"}}}},
            "stats.controls.x: id 'x' also names stats.confirmatory.x, another contrast",
        ),
        (
            {"confirmatory": {"norm-batch-vs-none": {"compare": {"feed": "joint"}}}},
            "stats.confirmatory.norm-batch-vs-none: id 'norm-batch-vs-none' also names an automatic contrast",
        ),
        ({"confirmatory": {"x": {"compare": {"feed": "nope"}}}}, "stats.confirmatory.x.compare.feed: unknown level"),
    ],
)
def test_a_bad_or_shared_contrast_id_is_one_line_naming_its_key(stats, expected):
    with pytest.raises(ConfigError) as error:
        _config(FOUR, **stats)
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_the_default_studys_fixed_comparison_differs_from_it_only_in_its_name_and_seeds():
    """config/default-fixed.yaml, given after config/config.yaml (as `study_file=[...]` merges them): the fixed design
    the default study's sequential run is measured against (README), on the sequential run's first 8 seeds."""
    from snakemake.utils import update_config

    from ganablate.study.config import read_config_file

    default = read_config_file(REPO / "config/config.yaml")
    merged = read_config_file(REPO / "config/config.yaml")
    update_config(merged, read_config_file(REPO / "config/default-fixed.yaml"))
    fixed, sequential = validate_config(merged), validate_config(default)
    assert fixed["study"]["seeds"] == list(sequential["study"]["seeds"]["start"] + k for k in range(8))
    for config in (fixed, sequential):
        del config["study"]["seeds"], config["study"]["name"]
    assert fixed == sequential
