"""Where a job computes: the device a config names (how many seeds one process trains together on it is
study/execution.py's). Torch-free to import: torch is imported when a device is resolved."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ganablate.errors import UsageError

if TYPE_CHECKING:
    import torch

# What train.device and eval.device may name (the schema's enums; tests/test_vocab.py holds them equal).
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str, field: str = "train.device") -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"{field}: cuda requested but no CUDA device is available; allowed here: cpu, auto")
    return torch.device(name)
