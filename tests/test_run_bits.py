"""The runs' bits are the package's, not its layout's: every norm's, feed's and loss's tiny run, trained from the
default study's config (config/config.yaml, shrunk to a few steps), leaves checkpoints and a log byte-identical to
those recorded in tests/golden/run-bits.json. A refactor that moves code keeps them; a change that means to alter
what a run computes regenerates the file (`python -m tests.test_run_bits`) and says so in the CHANGELOG.

Bits depend on torch's version and the CPU kernels it dispatches to: the record names the torch and the CPU capability
it was made with, and the test skips under others (CI runs the torch the Makefile installs)."""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

from ganablate.study.config import validate_config
from ganablate.study.design import design_of

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests/golden/run-bits.json"
SHRUNK = {"steps": 4, "batch_size": 16, "checkpoints": [2], "state_every": 2, "log_every": 1, "threads": 1}
# Beyond the default study's cells: every other norm under both feeds of the question, the feeds no default cell
# trains with BatchNorm, every loss, and a stack of two seeds.
EXTRA = [
    *(
        {"train.feed": feed, "model.d_norm": norm, "model.ghost_chunk": 8 if norm == "ghost_mixed" else None}
        for norm in ("ghost", "ghost_mixed", "realhalf", "reference", "virtual", "batch_eval", "batch_detached")
        for feed in ("split", "joint")
    ),
    *(
        {"train.feed": feed, "model.d_norm": "batch"}
        for feed in ("split_g_mixed", "joint_cached_stats", "joint_detached_g")
    ),
    *({"train.feed": "split", "model.d_norm": "batch", "train.loss": loss} for loss in ("hinge", "lsgan", "wgan_gp")),
]


def _default_config(data_root: Path) -> dict:
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["train"] |= SHRUNK
    config["dataset"] = {"name": "fashion-mnist", "root": str(data_root)}
    return validate_config(config)


def _cases(config: dict) -> dict[str, dict]:
    """name -> the settings of one run: the default design's cells, then EXTRA."""
    design = design_of(config)
    cases = {}
    for labels in design.cells:
        cell = design.cell(labels)
        cases[",".join(f"{k}={v}" for k, v in cell.items())] = {a.sets: a.value(cell[a.name]) for a in design.axes}
    for settings in EXTRA:
        cases[",".join(f"{k}={v}" for k, v in settings.items() if v is not None)] = settings
    return cases


def _configured(config: dict, settings: dict) -> dict:
    config = copy.deepcopy(config)
    for key, value in settings.items():
        section, name = key.split(".")
        config[section][name] = value
    return config


def _digest(run: Path) -> str:
    files = sorted([*run.glob("checkpoints/*"), run / "train_log.csv"])
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(run).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def run_bits(data_root: Path, out: Path) -> dict[str, str]:
    """Every case's digest: its seed-0 run trained solo, and a stack of seeds 0 and 1 of the joint+batch cell."""
    from ganablate.training.train import train_run, train_stack

    config = _default_config(data_root)
    bits = {}
    for name, settings in _cases(config).items():
        torch.set_num_threads(1)
        run = out / name.replace("/", "_")
        train_run(_configured(config, settings), 0, run)
        bits[name] = _digest(run)
    stacked = _configured(config, {"train.feed": "joint", "model.d_norm": "batch", "train.stack": 2})
    train_stack(stacked, [0, 1], out / "stack")
    for run in sorted((out / "stack").rglob("train_log.csv")):
        bits[f"stack of seeds 0,1: {run.parent.name}"] = _digest(run.parent)
    return bits


def test_every_norm_feed_and_loss_trains_to_the_recorded_bits(synthetic_fashion_mnist, tmp_path):
    golden = json.loads(GOLDEN.read_text())
    here = {"torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability()}
    if {key: golden[key] for key in here} != here:
        pytest.skip(f"bits recorded under torch {golden['torch']} on {golden['cpu']}; this is {here}")
    bits = run_bits(synthetic_fashion_mnist, tmp_path)
    assert set(bits) == set(golden["runs"])
    changed = [name for name in bits if bits[name] != golden["runs"][name]]
    assert changed == [], f"{len(changed)} of {len(bits)} runs changed their bits: {changed}"


if __name__ == "__main__":  # regenerate the record: python -m tests.test_run_bits
    import tempfile

    from tests.synthetic_idx import write_fashion_mnist

    with tempfile.TemporaryDirectory() as tmp:
        data = write_fashion_mnist(Path(tmp) / "data")
        runs = run_bits(data, Path(tmp) / "runs")
    machine = {"torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability()}
    GOLDEN.write_text(json.dumps(machine | {"runs": runs}, indent=1) + "\n")
    print(f"{GOLDEN}: {len(runs)} runs", file=sys.stderr)
