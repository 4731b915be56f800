"""Shared fixtures: tiny configs on the real Fashion-MNIST, which .ci/run installs from Debian."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from ganablate.config import validate_config
from ganablate.data import DEBIAN_FASHION_MNIST

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "model": {"z_dim": 8, "g_width": 8, "d_width": 8},
    "train": {"steps": 20, "batch_size": 16, "checkpoints": [10], "state_every": 5, "log_every": 5, "threads": 1},
    "eval": {"n_samples": 200, "kid_subset_size": 50, "batch_size": 100},
}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def tiny_config() -> dict:
    """A validated config small enough that a run takes well under a second."""
    if not DEBIAN_FASHION_MNIST.is_dir():
        pytest.fail(f"Fashion-MNIST is missing: apt-get install -y dataset-fashion-mnist ({DEBIAN_FASHION_MNIST})")
    return validate_config(copy.deepcopy(TINY))


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> Path:
    """The tiny study run once, locally, with `snakemake --cores 2`; shared by the workflow and SLURM tests."""
    import subprocess

    workdir = tmp_path_factory.mktemp("tiny-study")
    (workdir / "config.yaml").write_text((REPO / "tests/configs/tiny.yaml").read_text())
    result = subprocess.run(
        ["snakemake", "--cores", "2", "--snakefile", str(REPO / "workflow/Snakefile"), "--directory", str(workdir)],
        cwd=workdir, capture_output=True, text=True,
    )
    if result.returncode != 0:
        pytest.fail(f"the tiny study failed:\n{result.stderr[-6000:]}")
    return workdir
