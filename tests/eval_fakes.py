"""Small synthetic data and runs for the evaluation tests: fast, offline, and easy for a classifier to tell apart."""

from __future__ import annotations

from pathlib import Path

import torch

from ganablate.components.networks import build_generator
from ganablate.data import ImageData
from ganablate.files import json_with_digest
from ganablate.study.config import validate_config

CLASSES = 10


def synthetic_data(n_train: int = 2000, n_test: int = 500, name: str = "fashion-mnist", seed: int = 0) -> ImageData:
    """28x28 grayscale images: class k is a bright 8x8 square at the k-th place of a grid, on noise."""
    rng = torch.Generator().manual_seed(seed)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(n) % CLASSES
        images = torch.rand(n, 1, 28, 28, generator=rng) * 60
        for k in range(CLASSES):
            row, col = 2 + 9 * (k // 4), 2 + 6 * (k % 4)
            images[labels == k, :, row : row + 8, col : col + 8] += 180
        return images.clamp(0, 255).to(torch.uint8), labels

    return ImageData(name, *split(n_train), *split(n_test))


def small_config(**eval_cfg) -> dict:
    # The sections an evaluation job gets (whole=False): not checked against the default stats section.
    return validate_config(
        {
            "model": {"z_dim": 8, "g_width": 8, "d_width": 8},
            "train": {"steps": 3, "checkpoints": [1, 2]},
            "eval": {"n_samples": 200, "batch_size": 100, "kid_subset_size": 50} | eval_cfg,
        },
        whole=False,
    )


def fake_run(run_dir: Path, config: dict, status: str = "completed", steps_saved=(1, 2, 3)) -> Path:
    """A run directory as `ganablate train` leaves it, with freshly initialised generators as checkpoints."""
    (run_dir / "checkpoints").mkdir(parents=True)
    for step in steps_saved:
        torch.manual_seed(step)
        G = build_generator((1, 28, 28), config["model"])
        torch.save(G.state_dict(), run_dir / "checkpoints" / f"step_{step}.pt")
    summary = {
        "status": status,
        "steps_done": max(steps_saved, default=0),
        "steps": config["train"]["steps"],
        "dataset": "fashion-mnist",
        "feed": "split",
        "norm": "batch",
        "seed": 0,
    }
    (run_dir / "summary.json").write_text(json_with_digest(summary))
    return run_dir
