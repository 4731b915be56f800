"""`ganablate run`: a run trained and scored in one process, the workflow's job for a solo run; a block of runs
(train.runs_per_job) trained by one process and scored by another; and the scoring plan (eval.final_only)."""

import copy
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from ganablate.cli import main
from ganablate.data import load_study_data
from ganablate.errors import ConfigError
from ganablate.scoring.extractor import train_extractor
from ganablate.study.config import validate_config
from tests.conftest import kill_after_first_state

CELL = "feed=joint,norm=batch"
FILES = ("train_log.csv", "checkpoints/step_10.pt", "checkpoints/step_20.pt", "metrics.csv", "samples/step_20.png")


@pytest.fixture(scope="module")
def study(tmp_path_factory, synthetic_fashion_mnist):
    """The tiny config, its data as one file and a domain extractor trained on it."""
    from tests.conftest import TINY

    folder = tmp_path_factory.mktemp("run-command")
    config = validate_config(copy.deepcopy(TINY) | {"dataset": {"root": str(synthetic_fashion_mnist)}})
    load_study_data(config["dataset"]).save(folder / "data.pt")
    train_extractor(config, folder / "domain.pt", data_path=str(folder / "data.pt"))
    return SimpleNamespace(config=config, folder=folder)


def _args(study, config: dict, out: Path, cache: Path) -> list[str]:
    data, extractor = study.folder / "data.pt", study.folder / "domain.pt"
    return [
        "--config-json",
        json.dumps(config),
        "--cell",
        CELL,
        "--data",
        str(data),
        "--seed",
        "3",
        "--out",
        str(out),
    ], ["--domain-extractor", str(extractor), "--cache-root", str(cache), "--data", str(data)]


def _run(study, config: dict, out: Path, cache: Path) -> list[str]:
    train_args, score_args = _args(study, config, out, cache)
    return ["run", *train_args, *score_args[:4]]


def test_run_writes_the_bytes_train_then_evaluate_write(study, tmp_path):
    train_args, score_args = _args(study, study.config, tmp_path / "apart", tmp_path / "cache")
    assert main(["train", *train_args]) == 0
    assert (
        main(["evaluate", "--config-json", json.dumps(study.config), "--run", str(tmp_path / "apart"), *score_args])
        == 0
    )
    assert main(_run(study, study.config, tmp_path / "fused", tmp_path / "cache")) == 0
    for name in FILES:
        assert (tmp_path / "apart" / name).read_bytes() == (tmp_path / "fused" / name).read_bytes(), name


def test_a_run_killed_while_training_resumes_to_the_same_metrics(study, tmp_path):
    config = copy.deepcopy(study.config)
    config["train"].update(steps=300, checkpoints=[100], state_every=10)
    assert main(_run(study, config, tmp_path / "whole", tmp_path / "cache")) == 0
    cmd = [sys.executable, "-m", "ganablate.cli", *_run(study, config, tmp_path / "killed", tmp_path / "cache")]
    kill_after_first_state(cmd, tmp_path / "killed")
    assert not (tmp_path / "killed/metrics.csv").exists()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    assert json.loads((tmp_path / "killed/summary.json").read_text())["resumed_from"]
    for name in ("train_log.csv", "metrics.csv", "samples/step_300.png"):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "killed" / name).read_bytes(), name


def _block(study, config: dict, seeds: str, root: Path, cache: Path) -> tuple[list[str], list[str]]:
    """The workflow's two jobs of a block: `train --seeds ... --stack 1`, then `evaluate --run` of its runs."""
    train_args, score_args = _args(study, config, root, cache)
    i = train_args.index("--seed")
    train_args[i : i + 4] = ["--seeds", seeds, "--stack", "1", "--out-root", str(root)]
    runs = [str(_seed_dir(study, root, int(seed))) for seed in seeds.split(",")]
    return ["train", *train_args], ["evaluate", "--config-json", json.dumps(config), "--run", *runs, *score_args]


def _seed_dir(study, root: Path, seed: int) -> Path:
    return root / study.config["dataset"]["name"] / "feed~joint" / "norm~batch" / f"seed{seed}"


def test_a_block_trained_in_one_job_and_scored_in_another_writes_the_bytes_of_solo_runs(study, tmp_path):
    """train.runs_per_job's jobs: one process trains seeds 3 and 4, another scores both with one Scoring (and
    KID's real sums computed once): every file of both runs is the one `run --seed` writes alone."""
    train, evaluate = _block(study, study.config, "3,4", tmp_path / "block", tmp_path / "cache")
    assert main(train) == 0 and main(evaluate) == 0
    for seed in (3, 4):
        alone = tmp_path / f"alone{seed}"
        args = _run(study, study.config, alone, tmp_path / "cache")
        args[args.index("--seed") + 1] = str(seed)
        assert main(args) == 0
        for name in FILES:
            assert (alone / name).read_bytes() == (_seed_dir(study, tmp_path / "block", seed) / name).read_bytes(), (
                seed,
                name,
            )


def test_a_block_killed_in_its_second_run_resumes_to_the_same_files(study, tmp_path):
    config = copy.deepcopy(study.config)
    config["train"].update(steps=300, checkpoints=[100], state_every=10)
    for side in ("whole", "killed"):
        train, evaluate = _block(study, config, "3,4", tmp_path / side, tmp_path / "cache")
        if side == "killed":
            cmd = [sys.executable, "-m", "ganablate.cli", *train]
            kill_after_first_state(cmd, _seed_dir(study, tmp_path / side, 4))
            assert _seed_dir(study, tmp_path / side, 3).joinpath("summary.json").exists()  # the first run finished
        assert main(train) == 0 and main(evaluate) == 0
    assert json.loads(_seed_dir(study, tmp_path / "killed", 4).joinpath("summary.json").read_text())["resumed_from"]
    for seed in (3, 4):
        for name in ("train_log.csv", "checkpoints/step_100.pt", "metrics.csv", "samples/step_300.png"):
            whole, killed = (_seed_dir(study, tmp_path / side, seed) / name for side in ("whole", "killed"))
            assert whole.read_bytes() == killed.read_bytes(), (seed, name)


def test_a_block_with_a_run_that_cannot_be_scored_exits_2_naming_it_before_scoring_any(study, tmp_path, capsys):
    train, evaluate = _block(study, study.config, "3", tmp_path / "block", tmp_path / "cache")
    assert main(train) == 0
    missing = tmp_path / "block" / "seed9"
    evaluate.insert(evaluate.index("--run") + 2, str(missing))
    assert main(evaluate) == 2
    assert f"--run: cannot read {missing / 'summary.json'}" in capsys.readouterr().err
    assert not _seed_dir(study, tmp_path / "block", 3).joinpath("metrics.csv").exists()


def test_final_only_metrics_are_scored_at_the_last_step_alone_with_the_same_values(study, tmp_path):
    assert main(_run(study, study.config, tmp_path / "all", tmp_path / "cache")) == 0
    planned = copy.deepcopy(study.config)
    planned["eval"]["final_only"] = ["precision", "recall", "is"]
    assert main(_run(study, planned, tmp_path / "planned", tmp_path / "cache")) == 0
    every, some = (pd.read_csv(tmp_path / run / "metrics.csv", comment="#") for run in ("all", "planned"))
    assert set(some[some.step == 10].metric) == {"fid", "kid", "kid_std"}
    assert set(some[some.step == 20].metric) == set(every.metric)
    merged = some.merge(every, on=["step", "extractor", "metric"], suffixes=("", "_all"))
    assert len(merged) == len(some) and (merged.value == merged.value_all).all()


def test_final_only_cannot_hold_a_metric_the_tables_read_at_every_checkpoint(study):
    config = copy.deepcopy(study.config)
    config["eval"]["final_only"] = ["kid"]  # the default stats.secondary_metric
    with pytest.raises(ConfigError, match=r"eval.final_only: kid is stats' primary or secondary metric"):
        validate_config(config)


def test_final_only_names_only_known_metrics(study):
    config = copy.deepcopy(study.config)
    config["eval"]["final_only"] = ["prc"]
    with pytest.raises(ConfigError, match=r"eval.final_only.0: 'prc' is not one of"):
        validate_config(config)


@pytest.mark.parametrize(
    ("drop", "flag"),
    [("--seed", "--seed"), ("--out", "--out")],
)
def test_run_without_its_seed_or_folder_exits_2_naming_the_flag(study, tmp_path, capsys, drop, flag):
    args = _run(study, study.config, tmp_path / "run", tmp_path / "cache")
    i = args.index(drop)
    with pytest.raises(SystemExit) as exc:
        main(args[:i] + args[i + 2 :])
    assert exc.value.code == 2 and flag in capsys.readouterr().err
