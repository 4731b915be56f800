import copy
import json
import math
import pickle
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from ganablate.cli import main
from ganablate.components.norms import NORMS
from ganablate.errors import ConfigError
from ganablate.study.config import validate_config
from ganablate.training.record import LOG_COLUMNS
from ganablate.training.train import train_run
from tests.cells import at
from tests.conftest import kill_after_first_state


def _load(path):
    return torch.load(path, weights_only=True)


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_writes_the_layout_evaluation_relies_on(tiny_config, tmp_path):
    summary = train_run(at(tiny_config, "split", "batch"), 0, tmp_path)
    assert summary["status"] == "completed" and summary["steps_done"] == 20
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_10.pt", "step_20.pt"]
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert list(log.columns) == LOG_COLUMNS and log.step.tolist() == [5, 10, 15, 20]
    assert json.loads((tmp_path / "summary.json").read_text())["config_hash"] == summary["config_hash"]


def test_same_seed_gives_bitwise_identical_checkpoints_and_logs(tiny_config, tmp_path):
    train_run(at(tiny_config, "joint", "batch"), 3, tmp_path / "a")
    train_run(at(tiny_config, "joint", "batch"), 3, tmp_path / "b")
    for name in ("checkpoints/step_10.pt", "checkpoints/step_20.pt"):
        assert _same_state(_load(tmp_path / "a" / name), _load(tmp_path / "b" / name))
    assert (tmp_path / "a/train_log.csv").read_bytes() == (tmp_path / "b/train_log.csv").read_bytes()


def test_a_seed_fixes_g_init_and_z_stream_for_every_feed_and_norm(tiny_config, tmp_path):
    config = copy.deepcopy(tiny_config)
    # An lr far below float32 resolution leaves G's weights at their init; G's BN running stats
    # still move with the z it saw, so equal checkpoints mean equal init and equal z.
    config["train"].update(steps=3, checkpoints=[], lr_g=1e-30)
    runs = {
        (feed, norm, seed): tmp_path / f"{feed}-{norm}-{seed}"
        for feed, norm, seed in [("split", "batch", 5), ("joint_consistent", "spectral", 5), ("split", "batch", 6)]
    }
    for (feed, norm, seed), out in runs.items():
        train_run(at(config, feed, norm), seed, out)
    # (BN biases start at 0, where even 1e-30 is representable: they are left out.)
    g = {
        key: {k: v for k, v in _load(out / "checkpoints/step_3.pt").items() if not k.endswith("bias")}
        for key, out in runs.items()
    }
    assert _same_state(g["split", "batch", 5], g["joint_consistent", "spectral", 5])
    assert not _same_state(g["split", "batch", 5], g["split", "batch", 6])


@pytest.mark.parametrize("norm", [name for name, norm in NORMS.items() if norm.per_sample])
def test_split_and_joint_are_the_same_math_for_per_sample_norms(tiny_config, tmp_path, norm):
    train_run(at(tiny_config, "split", norm), 1, tmp_path / "split")
    train_run(at(tiny_config, "joint", norm), 1, tmp_path / "joint")
    split, joint = _load(tmp_path / "split/checkpoints/step_20.pt"), _load(tmp_path / "joint/checkpoints/step_20.pt")
    for key in split:
        torch.testing.assert_close(split[key].float(), joint[key].float(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("norm", ["none", "instance", "layer", "group", "spectral"])
def test_joint_consistent_and_joint_are_one_computation_under_per_sample_norms_to_the_bit(tiny_config, tmp_path, norm):
    """Why contrasts.csv calls this pair `identical` rather than equivalent: the same bits, not an estimate."""
    train_run(at(tiny_config, "joint", norm), 1, tmp_path / "joint")
    train_run(at(tiny_config, "joint_consistent", norm), 1, tmp_path / "consistent")
    for name in ("train_log.csv", "checkpoints/step_20.pt"):
        assert (tmp_path / "joint" / name).read_bytes() == (tmp_path / "consistent" / name).read_bytes(), name


def test_batchnorm_makes_split_and_joint_differ(tiny_config, tmp_path):
    train_run(at(tiny_config, "split", "batch"), 1, tmp_path / "split")
    train_run(at(tiny_config, "joint", "batch"), 1, tmp_path / "joint")
    split, joint = _load(tmp_path / "split/checkpoints/step_20.pt"), _load(tmp_path / "joint/checkpoints/step_20.pt")
    assert max((split[k].float() - joint[k].float()).abs().max() for k in split) > 1e-3


@pytest.mark.parametrize("norm", list(NORMS))
def test_context_gap_is_zero_for_per_sample_norms_and_large_for_batchnorm(tiny_config, tmp_path, norm):
    train_run(at(tiny_config, "split", norm), 0, tmp_path)
    gap = pd.read_csv(tmp_path / "train_log.csv").context_gap
    if NORMS[norm].per_sample:
        assert gap.max() < 1e-5
    else:
        assert gap.min() > 1e-2


def test_a_killed_run_resumes_to_the_same_bits_as_an_uninterrupted_one(tiny_config, tmp_path):
    config = copy.deepcopy(tiny_config)
    config["train"].update(steps=400, checkpoints=[40, 200], state_every=20, log_every=10)
    train_run(at(config, "split", "batch"), 2, tmp_path / "whole")

    cmd = [
        sys.executable,
        "-m",
        "ganablate.cli",
        "train",
        "--config-json",
        json.dumps(config),
        "--cell",
        "feed=split,norm=batch",
        "--seed",
        "2",
        "--out",
        str(tmp_path / "killed"),
    ]
    kill_after_first_state(cmd, tmp_path / "killed")
    assert not (tmp_path / "killed/summary.json").exists()
    # A workflow manager removes the outputs of an incomplete job before rerunning it.
    for checkpoint in (tmp_path / "killed/checkpoints").iterdir():
        checkpoint.unlink()

    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    resumed = json.loads((tmp_path / "killed/summary.json").read_text())
    assert resumed["resumed_from"] and resumed["status"] == "completed"
    for name in ("checkpoints/step_40.pt", "checkpoints/step_200.pt", "checkpoints/step_400.pt"):
        assert _same_state(_load(tmp_path / "whole" / name), _load(tmp_path / "killed" / name)), name
    assert (tmp_path / "whole/train_log.csv").read_bytes() == (tmp_path / "killed/train_log.csv").read_bytes()


def test_a_state_from_another_config_is_not_resumed(tiny_config, tmp_path):
    train_run(at(tiny_config, "split", "batch"), 0, tmp_path)
    changed = copy.deepcopy(tiny_config)
    changed["train"]["lr_d"] = 1e-3
    summary = train_run(at(changed, "split", "batch"), 0, tmp_path)
    assert summary["resumed_from"] is None


def test_a_nan_loss_ends_the_run_as_diverged_data_not_a_crash(tiny_config, tmp_path):
    config = copy.deepcopy(tiny_config)
    config["train"].update(lr_g=1e30, lr_d=1e30)
    summary = train_run(at(config, "split", "none"), 0, tmp_path)
    assert summary["status"] == "diverged" and summary["steps_done"] < 20
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert log.step.iloc[-1] == summary["steps_done"]
    assert not math.isfinite(log.loss_d.iloc[-1] + log.loss_g.iloc[-1])


@pytest.mark.parametrize(
    ("section", "change", "message"),
    [
        ("train", {"steps": 0}, "train.steps: 0 is less than the minimum of 1"),
        ("train", {"batch_size": -4}, "train.batch_size: -4 is less than the minimum of 1"),
        ("train", {"checkpoints": [10, 50]}, "train.checkpoints: step 50 is beyond train.steps=20"),
        ("dataset", {"name": "svhn"}, "dataset.name: 'svhn' is not one of"),
        ("train", {"stepz": 3}, "train: Additional properties are not allowed ('stepz' was unexpected)"),
    ],
)
def test_bad_config_values_name_the_key(tiny_config, section, change, message):
    config = copy.deepcopy(tiny_config)
    config[section].update(change)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_config(config)


class _RunsCode:
    """Unpickling this would create the file `marker`: what a malicious state file could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _damage_state(path: Path, damage: str, marker: Path) -> None:
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "random_bytes":
        path.write_bytes(random.Random(0).randbytes(4096))
    elif damage == "torch_pickled_code":  # torch.save's zip format, a pickled object inside
        torch.save({"run_hash": "x", "G": _RunsCode(marker)}, path)
    elif damage == "plain_pickled_code":  # a bare pickle, as pickle.dump writes it
        path.write_bytes(pickle.dumps({"run_hash": "x", "G": _RunsCode(marker)}))
    elif damage == "foreign":  # a loadable torch file that is no training state
        torch.save([torch.zeros(3)], path)
    else:  # damaged inside: the state of this very run, its G weights gone
        state = torch.load(path, weights_only=True)
        torch.save(state | {"G": {"not": torch.zeros(1)}}, path)


@pytest.mark.parametrize(
    "damage", ["truncated", "random_bytes", "torch_pickled_code", "plain_pickled_code", "foreign", "wrong_content"]
)
def test_a_damaged_resume_state_is_one_line_naming_it_and_exit_code_2(tiny_config, tmp_path, capsys, damage):
    config = copy.deepcopy(tiny_config)
    config["train"].update(steps=10, checkpoints=[], state_every=5)
    out = tmp_path / "run"
    args = [
        "train",
        "--config-json",
        json.dumps(config),
        "--cell",
        "feed=split,norm=batch",
        "--seed",
        "0",
        "--out",
        str(out),
    ]
    assert main(args) == 0  # leaves state/state.pt of step 5 behind
    state = out / "state" / "state.pt"
    _damage_state(state, damage, tmp_path / "pwned")
    capsys.readouterr()

    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"ganablate train: error: {state}: ")
    assert err.rstrip().endswith(f"remove {out / 'state'}/ to start this run over")
    assert not (tmp_path / "pwned").exists(), "loading the state ran code from it"
    # The remedy works: without the state the run starts over and completes.
    for path in (out / "state").iterdir():
        path.unlink()
    (out / "state").rmdir()
    assert main(args) == 0
