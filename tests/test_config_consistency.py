"""Constraints between config keys fail at validation, naming the key path, before any job runs."""

import json

import pytest

from ganablate.cli import main
from ganablate.errors import ConfigError
from ganablate.study.config import validate_config


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"train": {"steps": 10, "checkpoints": [5, 20]}},
            "config: train.checkpoints: step 20 is beyond train.steps=10; allowed: steps from 1 to 10",
        ),
        (
            {"stats": {"primary_extractor": "inception-v3-compat"}},
            "config: stats.primary_extractor: inception-v3-compat is not in eval.extractors; allowed: domain",
        ),
        (
            {
                "study": {"axes": {"feed": {"levels": ["split", "joint"]}}},
                "stats": {"confirmatory": [{"compare": {"feed": "joint"}, "within": {"norm": "batch"}}]},
            },
            "config: stats.confirmatory.0.within: unknown axis 'norm'; allowed: feed",
        ),
        ({"model": {"d_norm": "weight"}}, "config: model.d_norm: unknown 'weight'; allowed: none, batch"),
        (
            {"dataset": {"name": "imagefolder"}},
            "config: dataset.root: imagefolder needs dataset.root set to a folder of class subfolders of images",
        ),
        (
            {
                "eval": {
                    "extractors": ["domain", "inception-v3-compat"],
                    "inception_weights": "/nonexistent/pt_inception.pth",
                }
            },
            "config: eval.inception_weights: /nonexistent/pt_inception.pth: no such file",
        ),
    ],
    ids=[
        "checkpoints-within-steps",
        "primary-extractor-scored",
        "family-names-the-axes",
        "registry-norm",
        "imagefolder-root",
        "inception-weights-exist",
    ],
)
def test_a_constraint_between_keys_is_one_error_naming_the_key(config, message):
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_consistent_settings_of_the_same_keys_pass(tmp_path):
    weights = tmp_path / "pt_inception.pth"
    weights.write_bytes(b"")
    validate_config(
        {
            "study": {"axes": {"feed": {"levels": ["joint", "joint_consistent"]}}},
            "stats": {
                "primary_extractor": "inception-v3-compat",
                "confirmatory": [{"compare": {"feed": "joint_consistent"}}],
            },
            "eval": {"extractors": ["inception-v3-compat"], "inception_weights": str(weights)},
            "dataset": {"name": "imagefolder", "root": str(tmp_path)},
        }
    )
    # inception_weights is read only by inception-v3-compat: a stale path is harmless without it.
    validate_config({"eval": {"inception_weights": "/nonexistent/pt_inception.pth"}})


def test_a_partial_config_is_checked_only_against_the_sections_it_holds():
    # The workflow hands each rule only its sections (--config-json); the Snakefile checked the whole config.
    stats_rule = {
        "stats": {"primary_extractor": "inception-v3-compat"},
        "study": {"axes": {"feed": {"levels": ["split", "joint"]}}},
    }
    assert validate_config(stats_rule, whole=False)["stats"]["primary_extractor"] == "inception-v3-compat"
    with pytest.raises(ConfigError, match="stats.primary_extractor"):
        validate_config(stats_rule)
    family = {"confirmatory": [{"compare": {"feed": "joint"}}]}
    partial = {"stats": family, "study": {"axes": {"feed": {"levels": ["split"]}}}, "model": {}, "train": {}}
    with pytest.raises(ConfigError, match="stats.confirmatory.0.compare.feed: unknown level 'joint'"):
        validate_config(partial, whole=False)


def test_the_cli_reports_a_constraint_between_keys_in_one_line_before_any_work(tmp_path, capsys):
    config = {"stats": {"primary_extractor": "inception-v3-compat"}}
    (tmp_path / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    code = main(["stats", "--config", str(tmp_path / "config.yaml"), "--tables", str(tmp_path / "tables")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1
    assert "stats.primary_extractor: inception-v3-compat is not in eval.extractors" in err
    assert not (tmp_path / "tables").exists()


def test_command_line_overrides_keep_a_steps_partial_config_valid(tmp_path, capsys):
    # An evaluate job gets dataset/model/train/eval only; --threads revalidates the eval section alone, not
    # against the schema's default stats section (whose primary_extractor, domain, it does not score).
    config = {"eval": {"extractors": ["inception-v3-compat"]}, "train": {"steps": 3, "checkpoints": []}}
    code = main(["evaluate", "--config-json", json.dumps(config), "--run", str(tmp_path / "no-run"), "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "--run: cannot read" in err, err


def test_a_cells_levels_together_are_checked_before_any_job():
    """A batch-size level that the ghost chunk does not divide: refused when the study is validated, naming the cell,
    not by that cell's first training step."""
    config = {
        "study": {"axes": {"batch": {"sets": "train.batch_size", "levels": [32, 24]}}},
        "model": {"d_norm": "ghost", "ghost_chunk": 16},
    }
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert str(error.value) == (
        "config: the cell {'batch': '24'}: model.ghost_chunk: 16 does not divide train.batch_size=24; "
        "allowed: a divisor of the batch size, or null for one chunk per source"
    )


def test_the_execution_keys_are_one_list_that_no_axis_plan_or_param_holds():
    from ganablate.study.design import NOT_AXES
    from ganablate.study.identity import EXECUTION
    from ganablate.study.job import params
    from ganablate.study.plan import NOT_COMPUTED

    assert {f"train.{key}" for key in EXECUTION} <= NOT_AXES.keys()
    assert NOT_COMPUTED[: len(EXECUTION)] == EXECUTION
    sections = json.loads(params(validate_config({}), "train", "eval"))
    assert not set(EXECUTION) & (sections["train"].keys() | sections["eval"].keys())
