import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _ganablate(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "ganablate.cli", *args], cwd=cwd, capture_output=True, text=True)


def _one_line_error(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


TRAIN = ["train", "--seed", "0"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--cell", "feed=mixed"], "train.feed: unknown 'mixed'; allowed: split, joint, joint_consistent"),
        (["--cell", "norm=weight"], "model.d_norm: unknown 'weight'; allowed: none, batch, instance, layer, group"),
        (["--cell", "feed"], "--cell: 'feed' is not axis=label"),
        (
            ["--cell", "lr=0.1"],
            "--cell: lr=0.1 is not a level of study.axes; allowed: feed=split|joint|joint_consistent",
        ),
        (["--steps", "0"], "train.steps: 0 is less than the minimum of 1"),
    ],
)
def test_bad_training_arguments_exit_2_naming_the_field(tmp_path, args, expected):
    result = _ganablate(*TRAIN, *args, "--out", str(tmp_path / "run"))
    assert expected in _one_line_error(result)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"study": "no hash"}'])
def test_a_plan_that_is_not_ganablates_is_one_line_naming_the_flag(tmp_path, content):
    (tmp_path / "plan.json").write_text(content)
    result = _ganablate(*TRAIN, "--plan", str(tmp_path / "plan.json"), "--out", str(tmp_path / "run"))
    assert _one_line_error(result).endswith(
        f"--plan: {tmp_path / 'plan.json'}: not a plan.json of ganablate's "
        + (
            "(JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
            if content.startswith("{not")
            else "(ValueError: no hash)"
        )
    )
    assert not (tmp_path / "run").exists()
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "plan.json").write_text(content)
    result = _ganablate(
        "figures", "--tables", str(tmp_path / "tables"), "--runs-root", str(tmp_path), "--out-dir", str(tmp_path / "f")
    )
    assert "--tables: " in _one_line_error(result) and "not a plan.json of ganablate's" in _one_line_error(result)


def test_unknown_dataset_in_the_config_file_is_named(tmp_path):
    (tmp_path / "c.yaml").write_text("dataset: {name: svhn}\n")
    result = _ganablate(*TRAIN, "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"))
    assert "dataset.name: 'svhn' is not one of ['fashion-mnist', 'mnist', 'cifar10', 'imagefolder']" in _one_line_error(
        result
    )
    assert not (tmp_path / "run").exists()


def test_checkpoint_beyond_steps_is_rejected(tmp_path):
    config = {"train": {"steps": 10, "checkpoints": [20]}}
    result = _ganablate(*TRAIN, "--config-json", json.dumps(config), "--out", str(tmp_path / "run"))
    assert "train.checkpoints: step 20 is beyond train.steps=10" in _one_line_error(result)


def test_unwritable_output_directory_is_named(tmp_path, synthetic_fashion_mnist):
    (tmp_path / "file").write_text("not a folder")
    config = {
        "dataset": {"root": str(synthetic_fashion_mnist)},
        "model": {"z_dim": 8, "g_width": 8, "d_width": 8},
        "train": {"steps": 2, "checkpoints": []},
    }
    result = _ganablate(*TRAIN, "--config-json", json.dumps(config), "--out", str(tmp_path / "file" / "run"))
    assert _one_line_error(result).startswith(
        f"ganablate train: error: --out: cannot write to {tmp_path / 'file' / 'run'}"
    )


def test_missing_config_file_is_named(tmp_path):
    result = _ganablate(*TRAIN, "--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "run"))
    assert "nope.yaml: cannot read the config file" in _one_line_error(result)


def test_yaml_that_would_run_code_is_refused(tmp_path):
    (tmp_path / "evil.yaml").write_text("train: !!python/object/apply:os.system ['touch pwned']\n")
    result = _ganablate(*TRAIN, "--config", str(tmp_path / "evil.yaml"), "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert "not valid YAML" in _one_line_error(result)
    assert not (tmp_path / "pwned").exists()


def test_train_command_completes_a_tiny_run(tmp_path, synthetic_fashion_mnist):
    config = {
        "dataset": {"root": str(synthetic_fashion_mnist)},
        "model": {"z_dim": 8, "g_width": 8, "d_width": 8},
        "train": {"steps": 4, "checkpoints": [], "log_every": 2},
    }
    result = _ganablate(*TRAIN, "--config-json", json.dumps(config), "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"dataset fashion-mnist: from dataset.root {synthetic_fashion_mnist}\n")
    assert json.loads((tmp_path / "run/summary.json").read_text())["status"] == "completed"


def test_no_data_anywhere_is_one_error_naming_the_three_ways(tmp_path):
    # The default tier hides the system copy and sends downloads to a proxy that is not there: as offline.
    config = {"model": {"z_dim": 8, "g_width": 8, "d_width": 8}, "train": {"steps": 2, "checkpoints": []}}
    result = _ganablate(*TRAIN, "--config-json", json.dumps(config), "--out", str(tmp_path / "run"))
    error = _one_line_error(result)
    assert "dataset.name=fashion-mnist: no data found" in error and "the download failed" in error
    assert "dataset.root" in error and "dataset-fashion-mnist" in error and "dataset.download" in error


def test_evaluate_without_domain_extractor_looks_where_the_workflow_puts_it_and_names_the_file(tmp_path, tiny_config):
    from ganablate.study.config import checkpoint_steps
    from ganablate.study.layout import domain_extractor_file
    from tests.eval_fakes import fake_run

    run = fake_run(tmp_path / "run", tiny_config, steps_saved=checkpoint_steps(tiny_config["train"]))
    result = _ganablate("evaluate", "--config-json", json.dumps(tiny_config), "--run", str(run), cwd=tmp_path)
    error = _one_line_error(result)
    assert f"{domain_extractor_file(tiny_config)} does not exist" in error and "ganablate train-extractor" in error


def _counted(monkeypatch, module, name: str) -> list:
    """Calls of module.name, counted (the function itself still runs)."""
    calls, function = [], getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: calls.append(1) or function(*a, **k))
    return calls


def test_a_workflow_job_validates_its_config_once_and_applies_its_cell_once(monkeypatch):
    """The feed level's way (docs/pipeline.md): the workflow's process validates the study once and takes each cell's
    config from that check; a job's process adds the command line's values to its sections and validates once."""
    from ganablate.study import job
    from ganablate.study.config import check_config

    study = check_config({"study": {"axes": {"feed": {"levels": ["split", "joint"]}}}})
    sections = json.loads(job.params(study.cells[("joint",)], "dataset", "model", "train", "eval"))
    validations, applications = _counted(monkeypatch, job, "check_config"), _counted(monkeypatch, job, "run_config")
    config = job.job_config(
        sections, "--config-json", False, {"feed": "joint"}, {"train": {"device": "cpu", "threads": 2}, "eval": {}}
    )
    assert (len(validations), len(applications)) == (1, 1)
    assert (config["train"]["feed"], config["train"]["threads"]) == ("joint", 2)
    del validations[:], applications[:]
    whole = job.job_config(
        {"study": {"axes": {"feed": {"levels": ["split", "joint"]}}}}, "c.yaml", True, {"feed": "joint"}
    )
    assert (len(validations), len(applications)) == (1, 0) and whole == study.cells[("joint",)]


def test_the_workflows_run_pattern_is_the_packages_run_folder():
    from ganablate.study import layout
    from ganablate.study.config import validate_config
    from ganablate.study.design import run_dir

    config = validate_config({"study": {"name": "s", "axes": {"lr": {"sets": "train.lr_d", "levels": [0.1]}}}})
    cell = {"lr": "0.1", "feed": "joint"}
    pattern = layout.run_pattern(config, ["lr", "feed"]).format(dataset="fashion-mnist", seed=3, **cell)
    assert pattern == str(run_dir(layout.runs_root(config), config, cell, 3))
    assert layout.cell_pattern(["lr", "feed"]) == "lr~{lr}/feed~{feed}"
