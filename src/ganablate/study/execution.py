"""How a study's runs are cut into jobs: the seeds one process trains together (a stack), the blocks of a cell's seeds
one job trains, and what each block's job asks of a machine. Where and how a job executes is no part of what it
computes (study/identity.py's EXECUTION): these shape the jobs, never the runs' files. Torch-free: the workflow reads
it when it is parsed, `ganablate train --seeds` stacks with it."""

from __future__ import annotations

from dataclasses import dataclass

from ganablate.study.design import seeds_of
from ganablate.study.looks import looks_of


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


def gpus(device: str) -> int:
    # `auto` requests no GPU: it uses one only where the job happens to land on a GPU node.
    return 1 if device == "cuda" else 0


def train_minutes(train: dict, seeds_per_process: int) -> int:
    """A training process's runtime request: a CPU trains a stack's seeds at about a solo run's rate each; a GPU the
    whole stack at least at a CPU's solo rate (benchmarks/run.py --device cuda measures it)."""
    per_run = train["steps"] // 50
    return 10 + (per_run if train["device"] == "cuda" else seeds_per_process * per_run)


def stack_memory(seeds_per_process: int) -> int:
    """A training process's memory request in MB: a base, and a stack's seeds' networks and Adam states."""
    return 2000 + 250 * seeds_per_process


@dataclass(frozen=True)
class Block:
    """A cell's seeds that one job trains: `stack` of them at a time (1: solo runs, one after another; a block of
    one seed is a solo run), and what the job asks for."""

    seeds: tuple[int, ...]
    stack: int
    stacked: bool  # the study trains stacks: a stack is one cluster job of its own, in no group
    threads: int
    runtime: int  # minutes
    mem_mb: int
    gpu: int

    @property
    def name(self) -> str:
        """The block as its jobs are named: its seeds (0_1, 3_7_9; 0to9 when three or more are consecutive), after
        `stack_` where the study trains stacks."""
        seeds = list(self.seeds)
        if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
            name = f"{seeds[0]}to{seeds[-1]}"
        else:
            name = "_".join(map(str, seeds))
        return f"stack_{name}" if self.stacked else name

    @property
    def log_name(self) -> str:
        return f"{'stack' if self.stacked else 'seeds'}-{'-'.join(map(str, self.seeds))}"


@dataclass(frozen=True)
class Solo:
    """What the job of a solo run asks for: it trains and scores the run in one process."""

    threads: int
    runtime: int  # minutes
    mem_mb: int
    gpu: int


def blocks(config: dict) -> list[Block] | Solo:
    """How the workflow trains a study's runs (config: validated): each run by a job of its own that also scores it
    (Solo), or a cell's seeds in blocks, each trained by one job and scored by another: blocks of train.runs_per_job
    solo runs one after another, or with train.stack resolving to more than one seed, blocks of a stack each. Either
    way the last block of a cell may hold fewer seeds, and each run's folder holds the same files."""
    train, evaluation = config["train"], config["eval"]
    # A sequential study's blocks never straddle a look: a look's new seeds are trained when the look before asks.
    looks = looks_of(config["study"]["seeds"])
    parts = [list(looks.new_seeds(k)) for k in range(len(looks.counts))] if looks else [seeds_of(config["study"])]
    longest = max(map(len, parts))
    stack = stack_size(train["stack"], longest, train["device"])
    size = stack if stack > 1 else min(train["runs_per_job"], longest)
    if size == 1:
        return Solo(
            threads=max(train["threads"], evaluation["threads"]),
            runtime=train_minutes(train, 1) + 30,
            mem_mb=4000,
            gpu=max(gpus(train["device"]), gpus(evaluation["device"])),
        )
    return [
        _block(block, len(block) if stack > 1 else 1, stack > 1, train)
        for part in parts
        for block in stack_groups(part, size)
    ]


def _block(seeds: list[int], together: int, stacked: bool, train: dict) -> Block:
    """A block whose seeds train `together` per process: a stack's all at once, solo runs one after another (on a
    GPU too: a cluster must not kill a block of two for the runtime of one)."""
    return Block(
        seeds=tuple(seeds),
        stack=together,
        stacked=stacked,
        threads=train["threads"],
        runtime=len(seeds) // together * train_minutes(train, together),
        mem_mb=stack_memory(together),
        gpu=gpus(train["device"]),
    )
