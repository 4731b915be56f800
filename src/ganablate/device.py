"""Where a job computes: the device a config names, and how many seeds one process trains together on it.
Torch-free to import: the workflow sizes its training jobs with stack_size when it is parsed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ganablate.errors import UsageError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str, field: str = "train.device") -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"{field}: cuda requested but no CUDA device is available; allowed here: cpu, auto")
    return torch.device(name)


def stack_size(stack: int | str, n_seeds: int, device: str) -> int:
    """How many seeds one process trains together, for train.stack: as given (at most n_seeds), or for `auto`
    all of them on CUDA (one small run leaves a GPU mostly idle) and one otherwise: on the CPU, where parallel
    1-thread jobs already keep every core busy, and, when the workflow is parsed, for device auto, which only the
    node a job lands on resolves. device: a device type (cuda, cpu) or train.device itself."""
    if stack == "auto":
        return n_seeds if device == "cuda" else 1
    return max(1, min(stack, n_seeds))


def stack_groups(seeds: list[int], size: int) -> list[list[int]]:
    """The stacks that `seeds` are trained in, `size` seeds each (the last may have fewer), in the given order."""
    return [list(seeds[i : i + size]) for i in range(0, len(seeds), size)]
