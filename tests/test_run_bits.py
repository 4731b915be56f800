"""The runs' bits are the package's, not its layout's: every norm's, feed's and loss's tiny run, trained from the
default study's config (config/config.yaml, shrunk to a few steps), leaves checkpoints and a log byte-identical to
those recorded in tests/golden/. A refactor that moves code keeps them; a change that means to alter what a run
computes regenerates the record (`python -m tests.test_run_bits`, on each machine kind) and says so in the CHANGELOG.

Bits depend on torch's version, the CPU kernels it dispatches to and the processor they run on: an Intel Xeon and an
AMD EPYC with the same capability (AVX512) train to other bits. So there is one record per machine kind, named and
keyed by torch, the capability, and the processor's vendor, family and model name (MACHINE_KIND); the test runs
against the record of this machine's kind and skips, saying which kinds are recorded, where none is."""

from __future__ import annotations

import copy
import hashlib
import json
import platform
import re
import sys
from pathlib import Path

import pytest
import torch
import yaml

from ganablate.study.config import validate_config
from ganablate.study.design import design_of

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests/golden"
MACHINE_KIND = ("torch", "cpu", "vendor_id", "cpu_family", "model_name")  # a record's key; the rest says how and what
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


def model_name(raw: str) -> str:
    """A processor's model name without trademarks, clock, core count and the generic words around it: VMs of one
    kind print "Intel(R) Xeon(R) Processor" or "AMD EPYC Processor (with IBPB)", recorded as "Intel Xeon" and
    "AMD EPYC"."""
    name = re.sub(r"\([^)]*\)|@.*$|\b(Processor|CPU|\d+-Core)\b", " ", raw, flags=re.IGNORECASE)
    return " ".join(name.split())


def machine_kind() -> dict:
    """This machine's MACHINE_KIND: torch, its CPU capability, and the first processor of /proc/cpuinfo (off Linux,
    what the platform module says of it, and no family)."""
    fields = {}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        first = cpuinfo.read_text().split("\n\n")[0]
        fields = dict(
            (key.strip(), value.strip()) for key, _, value in (line.partition(":") for line in first.splitlines())
        )
    family = fields.get("cpu family")
    return {
        "torch": torch.__version__,
        "cpu": torch.backends.cpu.get_cpu_capability(),
        "vendor_id": fields.get("vendor_id") or platform.processor() or platform.machine(),
        "cpu_family": int(family) if family and family.isdigit() else None,
        "model_name": model_name(fields.get("model name") or platform.processor() or platform.machine()),
    }


def record_path(kind: dict) -> Path:
    """tests/golden/run-bits-<model>-<capability>.json, e.g. run-bits-amd-epyc-avx512.json."""
    slug = re.sub(r"[^a-z0-9]+", "-", f"{kind['model_name']} {kind['cpu']}".lower()).strip("-")
    return GOLDEN / f"run-bits-{slug}.json"


def records() -> dict[Path, dict]:
    return {path: json.loads(path.read_text()) for path in sorted(GOLDEN.glob("run-bits-*.json"))}


def test_each_record_is_keyed_by_a_machine_kind_of_its_own_and_named_after_it():
    kinds = []
    for path, record in records().items():
        assert set(MACHINE_KIND) <= set(record), f"{path.name}: lacks {set(MACHINE_KIND) - set(record)}"
        kind = {key: record[key] for key in MACHINE_KIND}
        assert record_path(kind) == path, f"{path.name}: its key names {record_path(kind).name}"
        assert kind not in kinds, f"{path.name}: a second record of {kind}"
        kinds.append(kind)
    assert kinds, "no record in tests/golden/"


def test_model_names_are_recorded_without_trademarks_and_generic_words():
    assert model_name("Intel(R) Xeon(R) Processor") == "Intel Xeon"
    assert model_name("AMD EPYC Processor (with IBPB)") == "AMD EPYC"
    assert model_name("Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz") == "Intel Xeon Platinum 8481C"
    assert model_name("AMD EPYC 9B14 96-Core Processor") == "AMD EPYC 9B14"


def test_every_norm_feed_and_loss_trains_to_the_recorded_bits(synthetic_fashion_mnist, tmp_path):
    here = machine_kind()
    golden = [r for r in records().values() if {key: r[key] for key in MACHINE_KIND} == here]
    if not golden:
        recorded = ", ".join(path.name for path in records())
        pytest.skip(
            f"no record of this machine kind {here} in tests/golden/ (recorded: {recorded}); "
            f"`python -m tests.test_run_bits` makes one"
        )
    bits = run_bits(synthetic_fashion_mnist, tmp_path)
    assert set(bits) == set(golden[0]["runs"])
    changed = [name for name in bits if bits[name] != golden[0]["runs"][name]]
    assert changed == [], f"{len(changed)} of {len(bits)} runs changed their bits: {changed}"


if __name__ == "__main__":  # regenerate this machine kind's record: python -m tests.test_run_bits
    import subprocess
    import tempfile

    from tests.synthetic_idx import write_fashion_mnist

    with tempfile.TemporaryDirectory() as tmp:
        data = write_fashion_mnist(Path(tmp) / "data")
        runs = run_bits(data, Path(tmp) / "runs")
    kind = machine_kind()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    how = f"python -m tests.test_run_bits at {commit.stdout.strip() or 'an unknown commit'}"
    record_path(kind).write_text(json.dumps(kind | {"how": how, "runs": runs}, indent=1) + "\n")
    print(f"{record_path(kind)}: {len(runs)} runs", file=sys.stderr)
