"""A training's saved state, state.pt: what the trainer's parts hold (their state_dict()s, gathered by the Trainer)
between the run's identity and its step, written atomically every train.state_every steps and read back when the
job starts again, so that a run killed at any moment finishes bitwise as an uninterrupted one."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

from ganablate.errors import UsageError
from ganablate.files import atomic_save, load_tensors
from ganablate.study.config import config_hash
from ganablate.training.record import Run

# A solo run's state keeps the layout it always had; a stack's holds lists, one entry per seed, in these keys.
PER_SEED = ("z_rng", "batch_rng", "log", "checkpoints", "status", "steps_done")


class Resumable(Protocol):
    """What is saved and restored: the Trainer."""

    runs: list[Run]
    device: torch.device

    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


def identity(runs: list[Run]) -> str:
    """The state's identity: its run's hash, or for a stack the hash of its runs' hashes."""
    return runs[0].run_hash if len(runs) == 1 else config_hash([run.run_hash for run in runs])


def packed(seeds: list[dict]) -> dict:
    """The seeds' own states (their streams' and records') as state.pt holds them."""
    if len(seeds) == 1:
        return {key: seeds[0][key] for key in PER_SEED[:4]}
    return {key: [seed[key] for seed in seeds] for key in PER_SEED}


def unpacked(state: dict, size: int) -> list[dict]:
    """Each of the `size` seeds' own states in a saved state (a solo run's was running up to the saved step)."""
    if size == 1:
        return [{key: state[key] for key in PER_SEED[:4]} | {"status": "running", "steps_done": state["step"]}]
    return [{key: state[key][j] for key in PER_SEED} for j in range(size)]


def save(trainer: Resumable, path: Path, step: int, seconds: float) -> None:
    atomic_save(
        {"run_hash": identity(trainer.runs), "step": step, **trainer.state_dict(), "wall_seconds": seconds}, path
    )


def resume(trainer: Resumable, path: Path) -> tuple[int | None, float]:
    """Load the state saved at `path` into the trainer: (the step it was saved at, the seconds trained before it),
    or (None, 0.0) when there is none or it is another config's."""
    if not path.exists():
        return None, 0.0
    state = read(path, trainer.device)
    if state["run_hash"] != identity(trainer.runs):  # a state from another config is stale: start afresh
        return None, 0.0
    try:
        trainer.load_state_dict(state)
        return state["step"], state["wall_seconds"]
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        detail = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        raise UsageError(f"{path}: a damaged training state ({detail}); {_remedy(path)}") from None


def read(path: Path, device: torch.device) -> dict:
    """The saved training state, read as plain tensor data (never code); a truncated, foreign or pickled-object
    file is a UsageError of one line naming it, why, and the remedy."""
    state = load_tensors(path, _remedy(path), map_location=device)
    if not isinstance(state, dict) or "run_hash" not in state:
        raise UsageError(f"{path}: not a training state from `ganablate train` (no run_hash); {_remedy(path)}")
    return state


def _remedy(path: Path) -> str:
    return f"remove {path.parent}/ to start this run over"
