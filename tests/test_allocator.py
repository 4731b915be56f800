"""The process's malloc policy (allocator.py): the `ganablate` command sets it before anything else, a training
step then reuses freed memory instead of faulting fresh pages in, and a run trained and scored under it writes the
bytes it writes under glibc's default."""

import copy
import json
import platform
import resource
import subprocess
import sys

import pytest

from ganablate.data import load_study_data
from ganablate.scoring.extractor import train_extractor
from ganablate.study.config import validate_config

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="the policy is glibc's mallopt"
)

POLICY = ["-m", "ganablate.cli"]
# glibc's default allocator: the command's parser and subcommand, without main() and so without the policy.
DEFAULT = [
    "-c",
    "import sys\nfrom ganablate import cli\nargs = cli.build_parser().parse_args(sys.argv[1:])\nargs.func(args)",
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, synthetic_fashion_mnist):
    """A config with the default model and batch (tensors above glibc's default mmap threshold, 128 KiB), its data
    and a domain extractor."""
    from tests.conftest import TINY

    folder = tmp_path_factory.mktemp("allocator")
    config = copy.deepcopy(TINY) | {"dataset": {"root": str(synthetic_fashion_mnist)}}
    config["model"].update(z_dim=64, g_width=16, d_width=16)
    config["train"].update(batch_size=64, steps=20, checkpoints=[10, 20])
    config["eval"].update(n_samples=1000, kid_subset_size=200, batch_size=500, extractor_epochs=1)
    config = validate_config(config)
    load_study_data(config["dataset"]).save(folder / "data.pt")
    train_extractor(config, folder / "domain.pt", data_path=str(folder / "data.pt"))
    return folder, config


def _command(prepared, command: list[str], step: str, out, steps: int) -> int:
    """Runs `ganablate <step>` for a run of `steps` steps into `out`; the page faults (minor) the process took."""
    folder, config = prepared
    config = copy.deepcopy(config)
    config["train"]["steps"] = steps
    args = [step, "--config-json", json.dumps(config), "--data", str(folder / "data.pt")]
    if step == "train":
        args += ["--cell", "feed=joint,norm=batch", "--seed", "1", "--out", str(out)]
    else:
        args += ["--run", str(out), "--domain-extractor", str(folder / "domain.pt"), "--cache-root", str(out / "cache")]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
    subprocess.run([sys.executable, *command, *args], check=True, capture_output=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - before


def test_the_command_trains_without_faulting_in_fresh_pages_at_every_step(prepared, tmp_path):
    def per_step(command):  # the faults of 40 more steps: imports and set-up cancel out
        return (
            _command(prepared, command, "train", tmp_path / "b", 60)
            - _command(prepared, command, "train", tmp_path / "a", 20)
        ) / 40

    default, policy = per_step(DEFAULT), per_step(POLICY)
    assert default > 500  # glibc's default trims the freed activations and faults them in again (about 2500)
    assert policy < default / 10


def test_a_run_trained_and_scored_under_the_policy_writes_the_same_bytes(prepared, tmp_path):
    for name, command in (("policy", POLICY), ("default", DEFAULT)):
        _command(prepared, command, "train", tmp_path / name, 20)
        _command(prepared, command, "evaluate", tmp_path / name, 20)
    for name in ("train_log.csv", "checkpoints/step_10.pt", "checkpoints/step_20.pt", "metrics.csv"):
        assert (tmp_path / "policy" / name).read_bytes() == (tmp_path / "default" / name).read_bytes(), name
