"""Training: one run of the study, a cell's config and a seed, deterministic and resumable at any moment; or
several seeds of one cell stacked into one process (stack.py), each into a run folder laid out as a solo run's.
The feed mode is train.feed and D's normalization model.d_norm: a study's axes set them, as they set any key.

In reading order: a seed's networks and random streams; one training step, train_step, the one definition of
the GAN's math for a solo run and a stack alike; the bookkeeping around it (identity, log rows, checkpoints,
state, summary); and the loop, _train, which reads top to bottom.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

import torch
from torch import nn
from torch.nn.utils import parametrize

from ganablate.catalog import d_init_family
from ganablate.components.architectures import provenance
from ganablate.components.feeds import FEEDS, Feed
from ganablate.components.losses import LOSSES, Loss, loss_of
from ganablate.components.networks import build_discriminator, build_generator
from ganablate.components.norms import NORMS, reference_size
from ganablate.components.protocol import require_architecture
from ganablate.data import load_study_data, to_model_range
from ganablate.device import resolve_device, stack_groups, stack_size
from ganablate.errors import ConfigError, UsageError
from ganablate.files import atomic_save, atomic_write_text, json_with_digest, load_tensors, sha256
from ganablate.study.config import checkpoint_steps, config_hash, recorded, stacked_penalty
from ganablate.study.design import run_path

LOG_COLUMNS = ["step", "loss_d", "loss_g", "d_real", "d_fake", "d_acc", "grad_norm_g", "grad_norm_d", "context_gap"]


def stream_seed(seed: int, stream: str) -> int:
    """Independent seeds per random stream, so that a seed fixes G's init, the real batches and z
    for every feed and norm alike (common random numbers for a paired comparison)."""
    return int(hashlib.sha256(f"{seed}/{stream}".encode()).hexdigest()[:15], 16)


@contextmanager
def buffers_restored(module: nn.Module):
    """Restore a train-mode module's BN running stats and spectral-norm vectors after the block (diagnostics)."""
    saved = [b.clone() for b in module.buffers()]
    try:
        yield
    finally:
        for buffer, value in zip(module.buffers(), saved):
            buffer.copy_(value)


def _grad_norm(module: nn.Module) -> float:
    return torch.nn.utils.get_total_norm([p.grad for p in module.parameters() if p.grad is not None]).item()


def _finite(module: nn.Module) -> bool:
    return all(torch.isfinite(t).all() for t in module.state_dict().values() if t.is_floating_point())


def _prepare_out(out: Path, flag: str = "--out") -> None:
    try:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        (out / "state").mkdir(exist_ok=True)
        probe = out / "state" / ".write-probe"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{flag}: cannot write to {out} ({exc.strerror})") from None


def _state_remedy(state_path: Path) -> str:
    return f"remove {state_path.parent}/ to start this run over"


def _read_state(state_path: Path, device: torch.device) -> dict:
    """The saved training state, read as plain tensor data (never code); a truncated, foreign or pickled-object
    file is a UsageError of one line naming it, why, and the remedy."""
    state = load_tensors(state_path, _state_remedy(state_path), map_location=device)
    if not isinstance(state, dict) or "run_hash" not in state:
        raise UsageError(
            f"{state_path}: not a training state from `ganablate train` (no run_hash); {_state_remedy(state_path)}"
        )
    return state


def _log_csv(rows: list[dict]) -> str:
    lines = [",".join(LOG_COLUMNS)]
    lines += [",".join(repr(float(row[c])) if c != "step" else str(row[c]) for c in LOG_COLUMNS) for row in rows]
    return "\n".join(lines) + "\n"


# --- a seed's networks and random streams ------------------------------------------------------


def build_networks(
    image_shape: tuple[int, int, int], model_cfg: dict, seed: int, images: torch.Tensor | None = None
) -> tuple[nn.Module, nn.Module]:
    """A seed's G and D as its run starts, on the CPU: G's init is the seed's for every feed and norm; D's is the
    seed's for every norm of one family (a norm's `family`; design.BREAKS records it), so that runs of one seed are
    paired on D's init across them; the reference batch, drawn from `images` (the training set, uint8) for the
    norms that take one, is the seed's for every such norm."""
    norm = model_cfg["d_norm"]
    torch.manual_seed(stream_seed(seed, "G"))
    G = build_generator(image_shape, model_cfg)
    reference = None
    if NORMS[norm].reference:  # the same reals for reference and virtual: paired by seed
        pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(stream_seed(seed, "reference")))
        reference = to_model_range(images[pick[: reference_size(model_cfg)]])
    torch.manual_seed(stream_seed(seed, f"D/{d_init_family(norm)}"))
    return G, build_discriminator(image_shape, model_cfg, norm, reference)


@dataclass
class Streams:
    """A seed's random streams while it trains: which real images each batch holds, and z."""

    batches: torch.Generator
    z: torch.Generator

    @classmethod
    def of(cls, seed: int) -> Streams:
        return cls(
            torch.Generator().manual_seed(stream_seed(seed, "batches")),
            torch.Generator().manual_seed(stream_seed(seed, "z")),
        )


def draw(streams: list[Streams], pool: torch.Tensor, batch: int, z_dim: int, device: torch.device):
    """(real, z): each seed's real batch and z from its own generators, as its solo run draws them, stacked along
    a leading seed axis."""
    real = [to_model_range(pool[torch.randint(len(pool), (batch,), generator=s.batches).to(device)]) for s in streams]
    z = [torch.randn(batch, z_dim, generator=s.z).to(device) for s in streams]
    return _seed_axis(real), _seed_axis(z)


def _seed_axis(tensors: list[torch.Tensor]) -> torch.Tensor:
    # One seed: a view, so that a solo run computes on the very tensor (and memory layout) it always has.
    return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)


# --- one training step -------------------------------------------------------------------------


def d_loss(feed: Feed, loss: Loss, D, real: torch.Tensor, fake: torch.Tensor):
    """One seed's D-step loss (train.loss; by default non-saturating BCE with logits, real -> 1, fake -> 0), and D's
    logits. Each step sees one D weight: spectral norm's power iteration runs once per cached() block, not once per
    forward pass, so that split's two passes and joint's one are the same math for every per-sample norm."""
    with parametrize.cached():
        d_real, d_fake = feed.d_step(D, real, fake)
        penalty = None if loss.penalty is None else loss.penalty(D, real, fake)
    value = loss.d(d_real, d_fake)
    return (value if penalty is None else value + penalty), d_real, d_fake


def g_loss(feed: Feed, loss: Loss, D, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """One seed's G-step loss (by default fakes -> 1), the gradient flowing to G through D."""
    with parametrize.cached():
        return loss.g(feed.g_step(D, real, fake))


def optimizers(nets, train_cfg: dict) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """G's and D's Adam (train.lr_g, train.lr_d, train.betas) over a Solo run's or a stack's parameters."""
    betas = tuple(train_cfg["betas"])
    return (
        torch.optim.Adam(nets.g_parameters, lr=train_cfg["lr_g"], betas=betas),
        torch.optim.Adam(nets.d_parameters, lr=train_cfg["lr_d"], betas=betas),
    )


class Nets(Protocol):
    """The one interface train_step and the loop train through: a Solo run's networks or a stack.Stack of several
    seeds'. Tensors in and out carry a leading seed axis (of length `size`); j indexes a seed."""

    size: int
    g_parameters: list
    d_parameters: list

    def generate(self, z: torch.Tensor) -> torch.Tensor: ...
    def per_seed(self, fn, *args: torch.Tensor): ...  # fn(D, *args) for each seed
    def backward(self, loss: torch.Tensor) -> None: ...  # of the seeds' losses, each seed's own gradient
    def d_frozen(self): ...  # a context: D's weights need no gradient in the G step
    def buffers_restored(self): ...  # a context: D's buffers as they were when it ends
    def grad_norms(self) -> tuple[list[float], list[float]]: ...
    def g_state_dict(self, j: int) -> dict[str, torch.Tensor]: ...
    def g_finite(self, j: int) -> bool: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...
    def retire(self, j: int, optimizers: list) -> None: ...  # seed j diverged: the others go on


@dataclass(frozen=True)
class Step:
    """What a training step saw and computed, each with a leading seed axis: what the log rows are made of."""

    real: torch.Tensor
    fake: torch.Tensor
    d_real: torch.Tensor
    d_fake: torch.Tensor
    loss_d: torch.Tensor
    loss_g: torch.Tensor


def train_step(
    nets: Nets, opt_g, opt_d, feed: Feed, real: torch.Tensor, z: torch.Tensor, loss: Loss = LOSSES["ns"]
) -> Step:
    """One GAN step of every seed of `nets`, a Solo run or a stack.Stack (the same code for both): the D step,
    then the G step through the D just updated, reusing G's forward pass. real and z carry a leading seed axis."""
    fake = nets.generate(z)

    loss_d, d_real, d_fake = nets.per_seed(partial(d_loss, feed, loss), real, fake.detach())
    opt_d.zero_grad(set_to_none=True)
    nets.backward(loss_d)
    opt_d.step()

    with nets.d_frozen():  # D's weights need no gradient in the G step
        loss_g = nets.per_seed(partial(g_loss, feed, loss), real, fake)
        opt_g.zero_grad(set_to_none=True)
        nets.backward(loss_g)
        opt_g.step()
    return Step(real, fake.detach(), d_real.detach(), d_fake.detach(), loss_d.detach(), loss_g.detach())


class Solo:
    """The networks of one run, called as the modules they are: a stack of one seed for train_step, with the
    methods of stack.Stack (tensors in and out carry a leading seed axis of length 1)."""

    size = 1

    def __init__(self, G: nn.Module, D: nn.Module):
        self.G, self.D = G, D
        self.g_parameters, self.d_parameters = list(G.parameters()), list(D.parameters())

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.G(z[0]).unsqueeze(0)

    def per_seed(self, fn, *args: torch.Tensor):
        """fn(D, *args) with the seed axis taken off the arguments and put back on the results."""
        out = fn(self.D, *(a[0] for a in args))
        return tuple(t.unsqueeze(0) for t in out) if isinstance(out, tuple) else out.unsqueeze(0)

    def backward(self, loss: torch.Tensor) -> None:
        loss.sum().backward()

    @contextmanager
    def d_frozen(self):
        self.D.requires_grad_(False)
        try:
            yield
        finally:
            self.D.requires_grad_(True)

    def buffers_restored(self):
        return buffers_restored(self.D)

    def grad_norms(self) -> tuple[list[float], list[float]]:
        return [_grad_norm(self.G)], [_grad_norm(self.D)]

    def g_state_dict(self, j: int) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.G.state_dict().items()}

    def g_finite(self, j: int) -> bool:
        return _finite(self.G)

    def state_dict(self) -> dict:
        return {"G": self.G.state_dict(), "D": self.D.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])

    def retire(self, j: int, optimizers: list) -> None:
        pass  # the run ends here: there is no other seed to protect


def _networks(image_shape, model_cfg: dict, seeds: list[int], device: torch.device, images: torch.Tensor):
    """The networks of `seeds` on `device`: a Solo run for one seed, a stack.Stack for several."""
    networks = [build_networks(image_shape, model_cfg, seed, images) for seed in seeds]
    if len(seeds) == 1:
        # channels_last: the convolutions run about 1.2-1.3x faster on CPU (benchmarks/run.py), same results.
        return Solo(*(net.to(device, memory_format=torch.channels_last) for net in networks[0]))
    from ganablate.training.stack import Stack

    return Stack([(G.to(device), D.to(device)) for G, D in networks])


# --- bookkeeping: identity, log rows, checkpoints, state, summary ------------------------------


@dataclass(frozen=True)
class Label:
    """What a run records about the study it belongs to: its cell (axis -> level label) and the hash of the plan
    that was frozen when the study launched."""

    cell: dict[str, str] = field(default_factory=dict)
    plan_hash: str | None = None


NO_LABEL = Label()
EXECUTION = ("device", "threads", "stack", "runs_per_job")


def resolved(config: dict) -> dict:
    """What a run computes from: the dataset, model and train sections with a cell's levels applied, without the
    execution settings (where and on how many threads it runs)."""
    train = {k: v for k, v in config["train"].items() if k not in EXECUTION}
    return {
        "dataset": config["dataset"],
        "model": recorded("model", config["model"]),
        "train": recorded("train", train),
    }


@dataclass
class Run:
    """One seed's record: its folder and identity, its log rows and checkpoints, and its fate."""

    seed: int
    out: Path
    run_hash: str
    rows: list[dict] = field(default_factory=list)
    checkpoints: dict[int, dict] = field(default_factory=dict)
    status: str = "running"  # then "diverged" when it does, or "completed" at the end
    steps_done: int = 0


def run_hash(config: dict, seed: int, stack: list[int] | None = None) -> str:
    """A run's identity: what it computes. Where and on how many threads it executes is none of it: a run killed
    on a GPU node resumes on a CPU one, or with fewer cores, instead of starting over; neither is train.stack as
    such. But a stack's runs differ from solo runs by float rounding: the seeds of a stack are part of each of
    its runs' identity."""
    key = {**resolved(config), "seed": seed}
    if stack is not None and len(stack) > 1:
        key["stack"] = list(stack)
    return config_hash(key)


def _log_rows(step: int, nets, out: Step) -> list[dict]:
    """Each seed's row of train_log.csv after a step."""
    with torch.no_grad(), nets.buffers_restored():
        context_gap = nets.per_seed(_context_gap, out.real, out.fake)
    grad_norm_g, grad_norm_d = nets.grad_norms()
    return [
        {
            "step": step,
            "loss_d": out.loss_d[j].item(),
            "loss_g": out.loss_g[j].item(),
            "d_real": torch.sigmoid(out.d_real[j]).mean().item(),
            "d_fake": torch.sigmoid(out.d_fake[j]).mean().item(),
            "d_acc": ((out.d_real[j] > 0).float().mean().item() + (out.d_fake[j] < 0).float().mean().item()) / 2,
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


def _record(step: int, nets, out: Step, runs: list[Run], optimizers: list, train_cfg: dict, progress) -> None:
    """After a step: each running seed's divergence check, then its log row and checkpoint."""
    checkpoint = step in checkpoint_steps(train_cfg)
    losses_d, losses_g = out.loss_d.tolist(), out.loss_g.tolist()
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
        rows = _log_rows(step, nets, out)
        for j, run in running:
            run.rows.append(rows[j])
        progress(step, [(run, rows[j]) for j, run in running])
    if checkpoint:
        for j, run in running:
            run.checkpoints[step] = nets.g_state_dict(j)
            atomic_save(run.checkpoints[step], run.out / "checkpoints" / f"step_{step}.pt")


# A solo run's state keeps the layout it always had; a stack's holds lists, one entry per seed, in these keys.
_PER_SEED = ("z_rng", "batch_rng", "log", "checkpoints", "status", "steps_done")


def _save_state(
    state_path: Path,
    state_hash: str,
    step: int,
    nets,
    opt_g,
    opt_d,
    runs: list[Run],
    streams: list[Streams],
    seconds: float,
) -> None:
    per_seed = {
        "z_rng": [s.z.get_state() for s in streams],
        "batch_rng": [s.batches.get_state() for s in streams],
        "log": [r.rows for r in runs],
        "checkpoints": [r.checkpoints for r in runs],
        "status": [r.status for r in runs],
        "steps_done": [r.steps_done for r in runs],
    }
    if len(runs) == 1:
        per_seed = {k: v[0] for k, v in per_seed.items() if k not in ("status", "steps_done")}
    atomic_save(
        {
            "run_hash": state_hash,
            "step": step,
            **nets.state_dict(),
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(),
            "torch_rng": torch.get_rng_state(),
            **per_seed,
            "wall_seconds": seconds,
        },
        state_path,
    )


def _resume(
    state_path: Path, state_hash: str, device: torch.device, nets, opt_g, opt_d, runs: list[Run], streams: list[Streams]
) -> tuple[int | None, float]:
    """Load the state saved at state_path into the networks, optimizers, streams and run records: (the step it
    was saved at, the seconds trained before it), or (None, 0.0) when there is none or it is another config's."""
    if not state_path.exists():
        return None, 0.0
    state = _read_state(state_path, device)
    if state["run_hash"] != state_hash:  # a state from another config is stale: start afresh
        return None, 0.0
    try:
        nets.load_state_dict(state)
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        torch.set_rng_state(state["torch_rng"].cpu())  # generator states are CPU tensors, whatever the device
        for j, (run, stream) in enumerate(zip(runs, streams)):
            if len(runs) == 1:
                saved = {k: state[k] for k in _PER_SEED[:4]} | {"status": "running", "steps_done": state["step"]}
            else:
                saved = {k: state[k][j] for k in _PER_SEED}
            stream.z.set_state(saved["z_rng"].cpu())
            stream.batches.set_state(saved["batch_rng"].cpu())
            run.rows, run.checkpoints, run.status, run.steps_done = (
                saved["log"],
                saved["checkpoints"],
                saved["status"],
                saved["steps_done"],
            )
        return state["step"], state["wall_seconds"]
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise UsageError(
            f"{state_path}: a damaged training state ({type(exc).__name__}: {detail}); {_state_remedy(state_path)}"
        ) from None


def _restore_checkpoints(run: Run, resumed: bool) -> None:
    if not resumed:
        for stale in (run.out / "checkpoints").glob("step_*.pt"):
            stale.unlink()
    # A workflow rerun may have removed checkpoints written before the kill: restore them from the state.
    for step, g_state in run.checkpoints.items():
        atomic_save(g_state, run.out / "checkpoints" / f"step_{step}.pt")


def _finish(
    run: Run,
    runs: list[Run],
    data_name: str,
    seconds: float,
    resumed_from: int | None,
    device: torch.device,
    config: dict,
    label: Label,
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
        "cell": label.cell,
        "plan_hash": label.plan_hash,
        "wall_seconds": seconds,
        "resumed_from": resumed_from,
        "device": str(device),
        "threads": config["train"]["threads"],
        "torch_version": torch.__version__,
        "architecture": provenance(config["model"]["arch"]),  # which package, at which version, built G and D
        "config_hash": run.run_hash,
        "config": resolved(config),
    }
    if len(runs) > 1:
        summary["stack"] = [r.seed for r in runs]  # trained together; their seeds are part of config_hash
    log = _log_csv(run.rows)
    summary["sha256"] = {"train_log.csv": sha256(log)}  # written after it: aggregate refuses a log that differs
    atomic_write_text(run.out / "train_log.csv", log)
    atomic_write_text(run.out / "summary.json", json_with_digest(summary))  # which evaluate and aggregate check
    return summary


# --- the loop ----------------------------------------------------------------------------------


class Trainer:
    """A cell's seeds in training in one process: their networks (a Solo run for one seed, a stack.Stack for
    several), optimizers, random streams and records. step() is one training step of every running seed, the step
    train_run's and train_stack's loop takes; benchmarks/run.py times it without the loop's files."""

    def __init__(self, config: dict, seeds: list[int], data, device: torch.device, runs: list[Run]):
        self.train_cfg, self.model_cfg, self.device, self.runs = config["train"], config["model"], device, runs
        self.feed, self.loss = FEEDS[self.train_cfg["feed"]], loss_of(self.train_cfg)
        self.nets = _networks(data.image_shape, self.model_cfg, seeds, device, data.train_images)
        self.opt_g, self.opt_d = optimizers(self.nets, self.train_cfg)
        self.streams = [Streams.of(seed) for seed in seeds]
        self.pool = data.train_images.to(device).contiguous(memory_format=torch.channels_last)

    def step(self, step: int, progress=None) -> None:
        """Training step `step` (from 1): a batch of reals and z drawn, D's and G's updates, each seed's record."""
        real, z = draw(self.streams, self.pool, self.train_cfg["batch_size"], self.model_cfg["z_dim"], self.device)
        out = train_step(self.nets, self.opt_g, self.opt_d, self.feed, real, z, self.loss)
        _record(step, self.nets, out, self.runs, [self.opt_g, self.opt_d], self.train_cfg, progress)

    @property
    def running(self) -> bool:
        return any(run.status == "running" for run in self.runs)

    def state(self) -> tuple:
        """What a saved state holds of the training: (nets, opt_g, opt_d, runs, streams)."""
        return self.nets, self.opt_g, self.opt_d, self.runs, self.streams


def _train(
    config: dict,
    seeds: list[int],
    outs: list[Path],
    state_path: Path,
    data_path: str | None,
    out_flag: str,
    label: Label,
) -> list[dict]:
    """Train `seeds` of one cell in one process, seeds[i] into outs[i], and the common state into state_path: as a
    Solo run for one seed, as a stack.Stack for several. Returns the runs' summaries."""
    feed, norm = config["train"]["feed"], config["model"]["d_norm"]
    if feed not in FEEDS:
        raise ConfigError(f"feed: unknown feed mode {feed!r}; allowed: {', '.join(FEEDS)}")
    if norm not in NORMS:
        raise ConfigError(f"norm: unknown normalization {norm!r}; allowed: {', '.join(NORMS)}")
    train_cfg, model_cfg = config["train"], config["model"]
    try:
        loss = loss_of(train_cfg)  # an unknown name stops the run here, before its folders are touched
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if loss.penalty is not None and len(seeds) > 1:
        raise ConfigError(stacked_penalty(train_cfg["loss"], len(seeds)))
    steps = train_cfg["steps"]
    device = resolve_device(train_cfg["device"])
    torch.set_num_threads(train_cfg["threads"])
    data = load_study_data(config["dataset"], data_path)
    require_architecture(model_cfg, data.image_shape)
    for out in outs:
        _prepare_out(out, out_flag)

    runs = [Run(seed, out, run_hash(config, seed, seeds)) for seed, out in zip(seeds, outs)]
    state_hash = runs[0].run_hash if len(runs) == 1 else config_hash([run.run_hash for run in runs])
    trainer = Trainer(config, seeds, data, device, runs)
    resumed_from, earlier_seconds = _resume(state_path, state_hash, device, *trainer.state())
    for run in runs:
        _restore_checkpoints(run, resumed=resumed_from is not None)

    start = resumed_from or 0
    t0 = time.perf_counter()
    progress = _progress(start, steps, runs)
    for step in range(start + 1, steps + 1):
        trainer.step(step, progress)
        if not trainer.running:
            break
        if step % train_cfg["state_every"] == 0 and step < steps:
            seconds = earlier_seconds + time.perf_counter() - t0
            _save_state(state_path, state_hash, step, *trainer.state(), seconds)

    seconds = earlier_seconds + time.perf_counter() - t0
    return [_finish(run, runs, data.name, seconds, resumed_from, device, config, label) for run in runs]


def train_run(config: dict, seed: int, out: Path, data_path: str | None = None, label: Label = NO_LABEL) -> dict:
    """Train one run into `out`; returns the summary also written to out/summary.json."""
    out = Path(out)
    return _train(config, [seed], [out], out / "state" / "state.pt", data_path, "--out", label)[0]


def run_dir(out_root: Path, config: dict, cell: dict[str, str], seed: int) -> Path:
    """A run's folder under a root of runs, as the workflow lays them out."""
    return Path(out_root) / config["dataset"]["name"] / run_path(cell, seed)


def train_stack(
    config: dict, seeds: list[int], out_root: Path, data_path: str | None = None, label: Label = NO_LABEL
) -> list[dict]:
    """Train several seeds of one cell in one process as one stack.Stack, each into its run folder (run_dir),
    laid out as a solo run's; the stack's state goes to <cell>/stack-<seeds>/state.pt. One seed is a solo run,
    bitwise as train_run. Returns the runs' summaries, in the order of `seeds`."""
    if len(set(seeds)) != len(seeds) or not seeds:
        raise UsageError(f"--seeds: {','.join(map(str, seeds))}: give one or more different seeds")
    outs = [run_dir(out_root, config, label.cell, seed) for seed in seeds]
    if len(seeds) == 1:
        return [train_run(config, seeds[0], outs[0], data_path, label)]
    state_path = outs[0].parent / f"stack-{'-'.join(map(str, seeds))}" / "state.pt"
    return _train(config, list(seeds), outs, state_path, data_path, "--out-root", label)


def train_seeds(
    config: dict, seeds: list[int], out_root: Path, data_path: str | None = None, label: Label = NO_LABEL
) -> list[dict]:
    """Train `seeds` of one cell one stack after another, train.stack seeds per stack (stack_groups)."""
    size = stack_size(config["train"]["stack"], len(seeds), resolve_device(config["train"]["device"]).type)
    return [
        summary
        for group in stack_groups(seeds, size)
        for summary in train_stack(config, group, out_root, data_path, label)
    ]


def _progress(start: int, steps: int, runs: list[Run]):
    """A tqdm bar on a terminal; plain lines (one per log row) in logs and batch jobs."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        label = runs[0].out if len(runs) == 1 else f"{runs[0].out.parent} seeds {','.join(str(r.seed) for r in runs)}"
        bar = tqdm(total=steps, initial=start, desc=str(label), unit="step")

        def update(step: int, logged: list[tuple[Run, dict]]) -> None:
            bar.update(step - bar.n)
            row = logged[0][1]
            bar.set_postfix(loss_d=f"{row['loss_d']:.3f}", d_acc=f"{row['d_acc']:.2f}")

        return update

    def log_lines(step: int, logged: list[tuple[Run, dict]]) -> None:
        for run, row in logged:
            print(
                f"{run.out}: step {step}/{steps} loss_d={row['loss_d']:.4f} loss_g={row['loss_g']:.4f} "
                f"d_acc={row['d_acc']:.3f} context_gap={row['context_gap']:.4f}",
                flush=True,
            )

    return log_lines
