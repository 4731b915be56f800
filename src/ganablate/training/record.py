"""A run's record, the contract with scoring: its folder (checkpoints/, state/), its log rows (train_log.csv), the
G checkpoints evaluate scores, and summary.json, which names the run's cell, identity and fate for aggregation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.utils import parametrize

from ganablate.components.architectures import provenance
from ganablate.errors import UsageError
from ganablate.files import atomic_save, atomic_write_text, json_with_digest, sha256
from ganablate.study.config import checkpoint_steps
from ganablate.study.identity import RunTag, computed_config
from ganablate.training.step import Nets, Step

LOG_COLUMNS = ["step", "loss_d", "loss_g", "d_real", "d_fake", "d_acc", "grad_norm_g", "grad_norm_d", "context_gap"]


@dataclass
class Run:
    """One seed's record: its folder (`out`) and identity, its log rows and checkpoints, and its fate."""

    seed: int
    out: Path
    run_hash: str
    rows: list[dict] = field(default_factory=list)
    checkpoints: dict[int, dict] = field(default_factory=dict)
    status: str = "running"  # then "diverged" when it does, or "completed" at the end
    steps_done: int = 0

    def state_dict(self) -> dict:
        return {"log": self.rows, "checkpoints": self.checkpoints, "status": self.status, "steps_done": self.steps_done}

    def load_state_dict(self, state: dict) -> None:
        self.rows, self.checkpoints = state["log"], state["checkpoints"]
        self.status, self.steps_done = state["status"], state["steps_done"]


def prepare(out: Path, flag: str = "--out") -> None:
    """A run's folder, its checkpoints/ and state/ made and proven writable: else a UsageError naming `flag`."""
    try:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        (out / "state").mkdir(exist_ok=True)
        probe = out / "state" / ".write-probe"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{flag}: cannot write to {out} ({exc.strerror})") from None


def restore_checkpoints(run: Run, resumed: bool) -> None:
    """A fresh run's folder without stale checkpoints; a resumed run's with every checkpoint its state holds."""
    if not resumed:
        for stale in (run.out / "checkpoints").glob("step_*.pt"):
            stale.unlink()
    # A workflow rerun may have removed checkpoints written before the kill: restore them from the state.
    for step, g_state in run.checkpoints.items():
        atomic_save(g_state, run.out / "checkpoints" / f"step_{step}.pt")


def record(step: int, nets: Nets, result: Step, runs: list[Run], optimizers: list, train_cfg: dict, progress) -> None:
    """After a step: each running seed's divergence check, then its log row and checkpoint."""
    checkpoint = step in checkpoint_steps(train_cfg)
    losses_d, losses_g = result.loss_d.tolist(), result.loss_g.tolist()
    for j, run in enumerate(runs):
        if run.status != "running":
            continue
        run.steps_done = step
        # Finite losses can still leave non-finite weights behind: checked before a checkpoint is written.
        if not math.isfinite(losses_d[j] + losses_g[j]) or (checkpoint and not nets.g_finite(j)):
            run.status = "diverged"
            run.rows.append(
                dict.fromkeys(LOG_COLUMNS, math.nan) | {"step": step, "loss_d": losses_d[j], "loss_g": losses_g[j]}
            )
            nets.retire(j, optimizers)
    running = [(j, run) for j, run in enumerate(runs) if run.status == "running"]
    if running and (step % train_cfg["log_every"] == 0 or step == train_cfg["steps"]):
        rows = log_rows(step, nets, result)
        for j, run in running:
            run.rows.append(rows[j])
        progress(step, [(run, rows[j]) for j, run in running])
    if checkpoint:
        for j, run in running:
            run.checkpoints[step] = nets.g_state_dict(j)
            atomic_save(run.checkpoints[step], run.out / "checkpoints" / f"step_{step}.pt")


def log_rows(step: int, nets: Nets, result: Step) -> list[dict]:
    """Each seed's row of train_log.csv after a step."""
    with torch.no_grad(), nets.buffers_restored():
        context_gap = nets.per_seed(_context_gap, result.real, result.fake)
    grad_norm_g, grad_norm_d = nets.grad_norms()
    return [
        {
            "step": step,
            "loss_d": result.loss_d[j].item(),
            "loss_g": result.loss_g[j].item(),
            "d_real": torch.sigmoid(result.d_real[j]).mean().item(),
            "d_fake": torch.sigmoid(result.d_fake[j]).mean().item(),
            "d_acc": ((result.d_real[j] > 0).float().mean().item() + (result.d_fake[j] < 0).float().mean().item()) / 2,
            "grad_norm_g": grad_norm_g[j],
            "grad_norm_d": grad_norm_d[j],
            "context_gap": context_gap[j].item(),
        }
        for j in range(nets.size)
    ]


def _context_gap(D, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The seed answer's explanation, measured: how much a fake's logit depends on batch company."""
    with parametrize.cached():
        alone = D(fake)
        mixed = D(torch.cat([real, fake]))[len(real) :]
    return (alone - mixed).abs().mean()


def finish(
    run: Run,
    runs: list[Run],
    data_name: str,
    seconds: float,
    resumed_from: int | None,
    device: torch.device,
    config: dict,
    tag: RunTag,
) -> dict:
    """Write the run's train_log.csv and summary.json; returns the summary. The summary names the run's cell (one
    label per axis): aggregation reads it from here, never from the path."""
    if run.status == "running":
        run.status = "completed"
    summary = {
        "status": run.status,
        "steps_done": run.steps_done,
        "steps": config["train"]["steps"],
        "dataset": data_name,
        "seed": run.seed,
        "cell": tag.cell,
        "plan_hash": tag.plan_hash,
        "wall_seconds": seconds,
        "resumed_from": resumed_from,
        "device": str(device),
        "threads": config["train"]["threads"],
        "torch_version": torch.__version__,
        "architecture": provenance(config["model"]["arch"]),  # which package, at which version, built G and D
        "config_hash": run.run_hash,
        "config": computed_config(config),
    }
    if len(runs) > 1:
        summary["stack"] = [r.seed for r in runs]  # trained together; their seeds are part of config_hash
    log = _log_csv(run.rows)
    summary["sha256"] = {"train_log.csv": sha256(log)}  # written after it: aggregate refuses a log that differs
    atomic_write_text(run.out / "train_log.csv", log)
    atomic_write_text(run.out / "summary.json", json_with_digest(summary))  # which evaluate and aggregate check
    return summary


def _log_csv(rows: list[dict]) -> str:
    lines = [",".join(LOG_COLUMNS)]
    lines += [",".join(repr(float(row[c])) if c != "step" else str(row[c]) for c in LOG_COLUMNS) for row in rows]
    return "\n".join(lines) + "\n"
