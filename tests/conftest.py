"""Shared fixtures and the test tiers.

Default tier (`python -m pytest`): touches nothing outside the project and a temp dir, and passes on a machine
without the Debian dataset or a network: tiny configs read synthetic data in Fashion-MNIST's IDX format through
dataset.root, no test sees the system copy of a dataset or the user's caches, and downloads fail at once.
Opt-in tiers: `--realdata` (or GANABLATE_REALDATA=1) runs the tests marked realdata, on the real Fashion-MNIST;
`--slurm` (or GANABLATE_SLURM=1) runs those marked slurm, which install and start a local SLURM cluster
(tests/cluster/slurm-up.sh: apt, daemons, /etc). .ci/run installs both and runs `make test TESTS="--realdata --slurm"`.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from ganablate.data import DATA_CACHE_ENV, DATASETS, SYSTEM_DATA_ENV, system_data
from ganablate.study.config import validate_config
from tests.synthetic_idx import write_fashion_mnist

REPO = Path(__file__).resolve().parents[1]
# The workflow as the tests run it: the snakemake of this interpreter, whatever PATH holds.
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow/Snakefile")]
# Where the Snakefile reads a study's config when snakemake gets no --configfile, relative to its working directory.
STUDY_CONFIG = Path("config/config.yaml")
# The environment before _hermetic changed it: for tools of the opt-in tiers that need the real one (apt).
ORIGINAL_ENV = dict(os.environ)
# Where the real Fashion-MNIST is, read before the default tier hides the system location.
REAL_FASHION_MNIST = system_data() / "fashion-mnist"

TIERS = {  # marker: (option, environment variable, why a test of it is skipped by default)
    "realdata": (
        "--realdata",
        "GANABLATE_REALDATA",
        "needs the real Fashion-MNIST (run with --realdata; apt-get install dataset-fashion-mnist)",
    ),
    "slurm": (
        "--slurm",
        "GANABLATE_SLURM",
        "needs a local SLURM cluster, which tests/cluster/slurm-up.sh installs and starts as root (run with --slurm)",
    ),
}


def pytest_addoption(parser):
    for marker, (option, env, _) in TIERS.items():
        parser.addoption(option, action="store_true", help=f"also run the tests marked {marker} (or set {env}=1)")


def tier_enabled(config, marker: str) -> bool:
    option, env, _ = TIERS[marker]
    return config.getoption(option) or os.environ.get(env) == "1"


def pytest_collection_modifyitems(config, items):
    for marker, (_, _, reason) in TIERS.items():
        if not tier_enabled(config, marker):
            for item in items:
                if marker in item.keywords:
                    item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session", autouse=True)
def _hermetic(tmp_path_factory):
    """For the whole session (subprocesses and snakemake jobs included): no system copy of a dataset, caches
    (ours, torch's, matplotlib's, snakemake's) in a temp dir, and HTTP(S) through a proxy that is not there,
    so that an unintended download fails at once instead of reaching the network."""
    root = tmp_path_factory.mktemp("hermetic")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SYSTEM_DATA_ENV, str(root / "no-system-data"))
        patch.setenv(DATA_CACHE_ENV, str(root / "datasets"))
        patch.setenv("XDG_CACHE_HOME", str(root / "cache"))
        for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            patch.setenv(proxy, "http://127.0.0.1:9")
        for exempt in ("no_proxy", "NO_PROXY"):
            patch.delenv(exempt, raising=False)
        yield


@pytest.fixture(scope="session")
def synthetic_fashion_mnist(tmp_path_factory) -> Path:
    """A folder with synthetic data in the real Fashion-MNIST's four IDX files (tests/synthetic_idx.py)."""
    return write_fashion_mnist(tmp_path_factory.mktemp("synthetic-fashion-mnist"))


@pytest.fixture(scope="session")
def real_fashion_mnist() -> Path:
    """The real Fashion-MNIST (tests marked realdata); missing, it fails the test rather than skipping it."""
    if DATASETS["fashion-mnist"].locate(REAL_FASHION_MNIST) is None:
        pytest.fail(
            f"the real Fashion-MNIST is missing: apt-get install -y dataset-fashion-mnist ({REAL_FASHION_MNIST})"
        )
    return REAL_FASHION_MNIST


TINY = {
    "model": {"z_dim": 8, "g_width": 8, "d_width": 8},
    "train": {"steps": 20, "batch_size": 16, "checkpoints": [10], "state_every": 5, "log_every": 5, "threads": 1},
    "eval": {"n_samples": 200, "kid_subset_size": 50, "batch_size": 100},
}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def tiny_config(synthetic_fashion_mnist) -> dict:
    """A validated config small enough that a run takes well under a second, on the synthetic data."""
    return validate_config(copy.deepcopy(TINY) | {"dataset": {"root": str(synthetic_fashion_mnist)}})


@pytest.fixture
def real_tiny_config(real_fashion_mnist) -> dict:
    """tiny_config on the real Fashion-MNIST (tests marked realdata)."""
    return validate_config(copy.deepcopy(TINY) | {"dataset": {"root": str(real_fashion_mnist)}})


def write_tiny_study_config(workdir: Path, data_root: Path) -> None:
    """tests/configs/tiny.yaml as workdir/config/config.yaml (the workflow's default config), reading its data from
    data_root."""
    config = yaml.safe_load((REPO / "tests/configs/tiny.yaml").read_text())
    config.setdefault("dataset", {})["root"] = str(data_root)
    (workdir / STUDY_CONFIG).parent.mkdir(parents=True, exist_ok=True)
    (workdir / STUDY_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory, synthetic_fashion_mnist) -> Path:
    """The tiny study run once, locally, with `snakemake --cores 2`; shared by the workflow and SLURM tests."""
    import subprocess

    workdir = tmp_path_factory.mktemp("tiny-study")
    write_tiny_study_config(workdir, synthetic_fashion_mnist)
    result = subprocess.run(
        [*SNAKEMAKE, "--cores", "2", "--directory", str(workdir)],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.fail(f"the tiny study failed:\n{result.stderr[-6000:]}")
    return workdir


def kill_after_first_state(cmd: list[str], run_dir: Path) -> None:
    """Start a training command and kill -9 it as soon as it has saved its first resumable state, mid-way."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    state = run_dir / "state/state.pt"
    deadline = time.monotonic() + 120
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state.exists() and proc.returncode == -signal.SIGKILL, "the run was not killed mid-way"
