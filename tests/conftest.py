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
