"""Training: the loop. One run of the study, a cell's config and a seed, deterministic and resumable at any moment;
or several seeds of one cell stacked into one process (stack.py), each into a run folder laid out as a solo run's.
The feed mode is train.feed and D's normalization model.d_norm: a study's axes set them, as they set any key.

The rooms around the loop: seeds.py (a seed's networks and random streams), step.py (train_step, the one
definition of the GAN's math for a solo run and a stack alike), record.py (log rows, checkpoints, summary.json: the
contract with scoring) and state.py (the saved state). Each part that carries state has state_dict() and
load_state_dict(); the Trainer gathers them, and _train reads top to bottom.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from ganablate.components.feeds import FEEDS
from ganablate.components.losses import loss_of
from ganablate.components.norms import NORMS
from ganablate.components.protocol import require_architecture
from ganablate.data import load_study_data
from ganablate.device import resolve_device
from ganablate.errors import ConfigError, UsageError
from ganablate.study.config import stacked_penalty
from ganablate.study.design import run_dir
from ganablate.study.execution import stack_groups, stack_size
from ganablate.study.identity import NO_TAG, RunTag, run_hash
from ganablate.training import state
from ganablate.training.record import Run, finish, prepare, record, restore_checkpoints
from ganablate.training.seeds import Streams, draw, networks
from ganablate.training.step import optimizers, train_step


class Trainer:
    """A cell's seeds in training in one process: their networks (a Solo run for one seed, a stack.Stack for
    several), optimizers, random streams and records. step() is one training step of every running seed, the step
    train_run's and train_stack's loop takes; benchmarks/run.py times it without the loop's files."""

    def __init__(self, config: dict, seeds: list[int], data, device: torch.device, runs: list[Run]):
        self.train_cfg, self.model_cfg, self.device, self.runs = config["train"], config["model"], device, runs
        self.feed, self.loss = FEEDS[self.train_cfg["feed"]], loss_of(self.train_cfg)
        self.nets = networks(data.image_shape, self.model_cfg, seeds, device, data.train_images)
        self.opt_g, self.opt_d = optimizers(self.nets, self.train_cfg)
        self.streams = [Streams.of(seed) for seed in seeds]
        self.pool = data.train_images.to(device).contiguous(memory_format=torch.channels_last)

    def step(self, step: int, progress=None) -> None:
        """Training step `step` (from 1): a batch of reals and z drawn, D's and G's updates, each seed's record."""
        real, z = draw(self.streams, self.pool, self.train_cfg["batch_size"], self.model_cfg["z_dim"], self.device)
        result = train_step(self.nets, self.opt_g, self.opt_d, self.feed, real, z, self.loss)
        record(step, self.nets, result, self.runs, [self.opt_g, self.opt_d], self.train_cfg, progress)

    @property
    def running(self) -> bool:
        return any(run.status == "running" for run in self.runs)

    def state_dict(self) -> dict:
        """The training's state, gathered from its parts: the networks, the optimizers, torch's global generator,
        and each seed's streams and record (laid out by state.packed)."""
        seeds = [stream.state_dict() | run.state_dict() for stream, run in zip(self.streams, self.runs)]
        return {
            **self.nets.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "torch_rng": torch.get_rng_state(),
            **state.packed(seeds),
        }

    def load_state_dict(self, saved: dict) -> None:
        self.nets.load_state_dict(saved)
        self.opt_g.load_state_dict(saved["opt_g"])
        self.opt_d.load_state_dict(saved["opt_d"])
        torch.set_rng_state(saved["torch_rng"].cpu())  # generator states are CPU tensors, whatever the device
        for stream, run, seed in zip(self.streams, self.runs, state.unpacked(saved, len(self.runs))):
            stream.load_state_dict(seed)
            run.load_state_dict(seed)


def _train(
    config: dict,
    seeds: list[int],
    outs: list[Path],
    state_path: Path,
    data_path: str | None,
    out_flag: str,
    tag: RunTag,
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
        prepare(out, out_flag)

    runs = [Run(seed, out, run_hash(config, seed, seeds)) for seed, out in zip(seeds, outs)]
    trainer = Trainer(config, seeds, data, device, runs)
    resumed_from, earlier_seconds = state.resume(trainer, state_path)
    for run in runs:
        restore_checkpoints(run, resumed=resumed_from is not None)

    start = resumed_from or 0
    t0 = time.perf_counter()
    progress = _progress(start, steps, runs)
    for step in range(start + 1, steps + 1):
        trainer.step(step, progress)
        if not trainer.running:
            break
        if step % train_cfg["state_every"] == 0 and step < steps:
            state.save(trainer, state_path, step, earlier_seconds + time.perf_counter() - t0)

    seconds = earlier_seconds + time.perf_counter() - t0
    return [finish(run, runs, data.name, seconds, resumed_from, device, config, tag) for run in runs]


def train_run(config: dict, seed: int, out: Path, data_path: str | None = None, tag: RunTag = NO_TAG) -> dict:
    """Train one run into `out`; returns the summary also written to out/summary.json."""
    out = Path(out)
    return _train(config, [seed], [out], out / "state" / "state.pt", data_path, "--out", tag)[0]


def train_stack(
    config: dict, seeds: list[int], out_root: Path, data_path: str | None = None, tag: RunTag = NO_TAG
) -> list[dict]:
    """Train several seeds of one cell in one process as one stack.Stack, each into its run folder (run_dir),
    laid out as a solo run's; the stack's state goes to <cell>/stack-<seeds>/state.pt. One seed is a solo run,
    bitwise as train_run. Returns the runs' summaries, in the order of `seeds`."""
    if len(set(seeds)) != len(seeds) or not seeds:
        raise UsageError(f"--seeds: {','.join(map(str, seeds))}: give one or more different seeds")
    outs = [run_dir(out_root, config, tag.cell, seed) for seed in seeds]
    if len(seeds) == 1:
        return [train_run(config, seeds[0], outs[0], data_path, tag)]
    state_path = outs[0].parent / f"stack-{'-'.join(map(str, seeds))}" / "state.pt"
    return _train(config, list(seeds), outs, state_path, data_path, "--out-root", tag)


def train_seeds(
    config: dict, seeds: list[int], out_root: Path, data_path: str | None = None, tag: RunTag = NO_TAG
) -> list[dict]:
    """Train `seeds` of one cell one stack after another, train.stack seeds per stack (stack_groups)."""
    size = stack_size(config["train"]["stack"], len(seeds), resolve_device(config["train"]["device"]).type)
    groups = stack_groups(seeds, size)
    return [summary for group in groups for summary in train_stack(config, group, out_root, data_path, tag)]


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
