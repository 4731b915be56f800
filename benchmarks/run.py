"""ganablate's performance, measured side by side in one run on one machine (not a test).

    python benchmarks/run.py [--quick] [--steps N] [--out results/benchmarks]
    python benchmarks/run.py --smoke --out DIR          # --quick's parts at the smallest sizes (tests run it)
    python benchmarks/run.py --stacking [--device cuda] [--synthetic]     # d) and e) (with cuda: t, d, f, e)
    benchmarks/gpu_check.sh                                               # the whole GPU check, into $OUT

a) training steps/s of ganablate's loop against a loop written like the seed question's code
   (a DataLoader over the dataset, label tensors built every step, G run forward twice per step)
   on identical models, batch size and device, for split and joint; plus the threads-per-job lever;
b) seconds to score one checkpoint (eval.n_samples images, domain extractor), reference cache warm;
c) wall time of the study of --config (the default study) with `snakemake --cores 2` from an empty folder, and its
   overhead: wall time x 2 cores over the pure compute of its runs (training loops + scoring, timed in the jobs);
   the study is kept in <--out>/study-<time>/; skipped with --quick;
d) solo vs stacked training throughput (training/stack.py) on --device, in images/s (seeds x batch x steps/s),
   per width and number of seeds per stack, with the ratio to a solo run of the same width;
e) the paper study's (config/paper.yaml) projected wall time on --device: training jobs x steps over the
   measured stack rate at its width and stack size, plus its runs x one run's scoring time when f) ran;
f) seconds to score one run of the paper study (its checkpoints, eval.n_samples) on --device;
g) seconds per training step of every registered D norm (the BatchNorm remedies among them) against batch, for
   split and joint, one after the other on one CPU thread;
t) `python -m pytest tests/test_stack.py -k cuda`: the stack's CUDA tests (skipped on a machine without CUDA).
By default --device cpu runs a, b, c, d, e, g and --device cuda runs t, d, f, e (--parts chooses).
Prints a table and writes it as CSV (one row per measurement, `ratio` where a comparison is made).
--smoke runs the same code at the smallest sizes (SMOKE), so that tests/test_benchmarks.py can run every part that
--quick runs within a test's time; its numbers measure nothing.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from ganablate import catalog
from ganablate.components.networks import build_discriminator, build_generator
from ganablate.data import ImageData, load_dataset
from ganablate.study.config import checkpoint_steps, load_config
from ganablate.study.design import design_of, seeds_of
from ganablate.study.execution import stack_groups, stack_size
from ganablate.training.record import Run
from ganablate.training.seeds import stream_seed
from ganablate.training.train import Trainer, train_run

REPO = Path(__file__).resolve().parents[1]


class _PerItemImages(Dataset):
    """What a torchvision dataset with ToTensor + Normalize does: convert one image per __getitem__."""

    def __init__(self, images_uint8: torch.Tensor):
        self.images = images_uint8

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return (self.images[i].float() / 255 - 0.5) / 0.5, 0


def seed_style_steps_per_second(data: ImageData, config: dict, feed: str, steps: int) -> float:
    """The seed question's loop, with its per-step label tensors and its second G forward pass."""
    model_cfg, train_cfg = config["model"], config["train"]
    batch = train_cfg["batch_size"]
    torch.manual_seed(stream_seed(0, "G"))
    G = build_generator(data.image_shape, model_cfg)
    D = build_discriminator(data.image_shape, model_cfg, "batch")
    opt_g = torch.optim.Adam(G.parameters(), lr=train_cfg["lr_g"], betas=tuple(train_cfg["betas"]))
    opt_d = torch.optim.Adam(D.parameters(), lr=train_cfg["lr_d"], betas=tuple(train_cfg["betas"]))
    criterion = torch.nn.BCEWithLogitsLoss()
    loader = DataLoader(_PerItemImages(data.train_images), batch_size=batch, shuffle=True, drop_last=True)
    done, start = 0, time.perf_counter()
    while done < steps:
        for real, _ in loader:
            z = torch.randn(batch, model_cfg["z_dim"])
            fake = G(z).detach()
            opt_g.zero_grad()
            opt_d.zero_grad()
            if feed == "split":
                predictions = torch.cat((D(real), D(fake)), dim=0)
            else:
                predictions = D(torch.cat((real, fake), dim=0))
            labels = torch.tensor([1.0] * batch + [0.0] * batch)
            criterion(predictions, labels).backward()
            opt_d.step()
            opt_d.zero_grad()
            opt_g.zero_grad()
            fake = G(z)
            criterion(D(fake), torch.tensor([1.0] * batch)).backward()
            opt_g.step()
            done += 1
            if done == steps:
                break
    return steps / (time.perf_counter() - start)


def with_norm(model_cfg: dict, train_cfg: dict, norm: str) -> dict:
    """model_cfg with D's norm set to `norm` and the settings that norm needs where the config leaves them unset:
    ghost_mixed's chunks have a fixed size (config.py refuses it without one), half of one source's batch, as
    remedies-v2's middle chunk."""
    model_cfg = model_cfg | {"d_norm": norm}
    if norm == "ghost_mixed" and model_cfg.get("ghost_chunk") is None:
        model_cfg["ghost_chunk"] = train_cfg["batch_size"] // 2
    return model_cfg


def ganablate_steps_per_second(
    data_file: Path, config: dict, feed: str, steps: int, workdir: Path, norm: str = "batch"
) -> float:
    config = copy.deepcopy(config)
    config["train"].update(steps=steps, checkpoints=[], log_every=steps, state_every=steps)
    config["train"]["feed"], config["model"] = feed, with_norm(config["model"], config["train"], norm)
    summary = train_run(config, 0, workdir / f"run-{feed}-{norm}-{os.getpid()}", data_path=str(data_file))
    return steps / summary["wall_seconds"]


def norm_step_seconds(data_file: Path, config: dict, steps: int, workdir: Path, record) -> None:
    """g) seconds per training step of every registered D norm against batch, feeds split and joint, one after the
    other in this process on one thread (the default study's model and batch)."""
    for feed in ("split", "joint"):
        batch = 1 / ganablate_steps_per_second(data_file, config, feed, steps, workdir)
        record(f"g) {feed}, batch: seconds per step", batch * 1000, "ms")
        for norm in (name for name in catalog.entries("norms") if name != "batch"):
            seconds = 1 / ganablate_steps_per_second(data_file, config, feed, steps, workdir, norm)
            record(f"g) {feed}, {norm}: seconds per step (ratio vs batch)", seconds * 1000, "ms", batch * 1000)


def _train_command(config: dict, data_file: Path, out: Path, threads: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ganablate.cli",
        "train",
        "--config-json",
        json.dumps(config),
        "--data",
        str(data_file),
        "--cell",
        "feed=split,norm=batch",
        "--seed",
        "0",
        "--threads",
        str(threads),
        "--out",
        str(out),
    ]


def jobs_vs_threads(config: dict, data_file: Path, steps: int, workdir: Path) -> tuple[float, float]:
    """Aggregate steps/s on 2 cores: two 1-thread jobs at once against one 2-thread job."""
    config = copy.deepcopy(config)
    config["train"].update(steps=steps, checkpoints=[], log_every=steps, state_every=steps)
    start = time.perf_counter()
    procs = [
        subprocess.Popen(_train_command(config, data_file, workdir / f"par{i}", 1), stdout=subprocess.DEVNULL)
        for i in range(2)
    ]
    for proc in procs:
        proc.wait()
    parallel = 2 * steps / (time.perf_counter() - start)
    start = time.perf_counter()
    subprocess.run(_train_command(config, data_file, workdir / "threads2", 2), check=True, stdout=subprocess.DEVNULL)
    threaded = steps / (time.perf_counter() - start)
    return parallel, threaded


def _evaluate_command(config: dict, data_file: Path, run: Path, extractor: Path, cache: Path) -> list[str]:
    """`ganablate evaluate` of `run` as the workflow runs it; trains the domain extractor first if `extractor` is
    missing."""
    cli = [sys.executable, "-m", "ganablate.cli"]
    cfg = ["--config-json", json.dumps(config), "--data", str(data_file)]
    if not extractor.exists():
        subprocess.run([*cli, "train-extractor", *cfg, "--out", str(extractor)], check=True, stdout=subprocess.DEVNULL)
    return [*cli, "evaluate", *cfg, "--run", str(run), "--domain-extractor", str(extractor), "--cache-root", str(cache)]


def score_one_checkpoint_seconds(
    config: dict, data_file: Path, workdir: Path, extractor: Path | None, n_samples: int
) -> dict:
    """Cold and warm reference cache, n_samples, through the same `ganablate evaluate` the workflow runs."""
    config = copy.deepcopy(config)
    config["eval"]["n_samples"] = n_samples
    run = workdir / "scored"
    small = copy.deepcopy(config)
    small["train"].update(steps=1, checkpoints=[])
    train_run(small, 0, run, data_path=str(data_file))
    # evaluate checks the run against the config it was trained with
    evaluate = _evaluate_command(small, data_file, run, extractor or workdir / "domain.pt", workdir / "cache")
    times = {}
    for label in ("cold", "warm"):
        start = time.perf_counter()
        subprocess.run(evaluate, check=True, stdout=subprocess.DEVNULL)
        times[label] = time.perf_counter() - start
    return times


STUDY_CORES = 2
SCORED = re.compile(r"metrics\.csv: \d+ checkpoints, \d+ rows in ([\d.]+) s$", re.MULTILINE)


def study_seconds(workdir: Path, config_file: Path) -> dict:
    """A study from an empty folder with `snakemake --cores 2`: its wall time, and its pure compute: every run's
    training loop (run_times.csv's wall_seconds) and scoring (the seconds its job's log reports), each timed inside
    its job. wall x cores / compute is the overhead: imports, data loading, the shared jobs, idle cores."""
    start = time.perf_counter()
    subprocess.run(
        [
            "snakemake",
            "--cores",
            str(STUDY_CORES),
            "--directory",
            str(workdir),
            "--snakefile",
            str(REPO / "workflow/Snakefile"),
            "--configfile",
            str(config_file),
            "--quiet",
        ],
        check=True,
    )
    wall = time.perf_counter() - start
    study = workdir / "results" / load_config(config_file)["study"]["name"]
    # run_times.csv (aggregate): each run's loop seconds; a stacked run's are its whole stack's, shared by its seeds.
    times = pd.read_csv(study / "tables/run_times.csv")
    training = float((times["wall_seconds"] / times["stack_size"]).sum())
    scoring = sum(float(m) for log in study.glob("logs/**/*.log") for m in SCORED.findall(log.read_text()))
    runs = len(list(study.glob("runs/**/metrics.csv")))
    return {"wall": wall, "training": training, "scoring": scoring, "runs": runs}


# --- d) stacked seeds (training/stack.py), e) the paper study's projected time, f) scoring on the device ------


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def stack_steps_per_second(
    data: ImageData,
    config: dict,
    width: int,
    size: int,
    steps: int,
    warmup: int,
    device: torch.device,
    feed: str = "split",
    norm: str = "batch",
) -> float:
    """Training steps per second of `size` seeds of one (feed, norm) in one process: a solo run for size 1 (as
    train_stack runs one seed), a stack.Stack for more. The training loop's step as it is (train.Trainer.step: draw,
    train_step, the record with its per-step loss check), without the state saved every train.state_every steps;
    the clock starts after `warmup` steps (CUDA context, cuDNN's algorithm choice, allocator)."""
    model_cfg = copy.deepcopy(config["model"]) | {"g_width": width, "d_width": width, "d_norm": norm}
    train_cfg = copy.deepcopy(config["train"]) | {"steps": 10**9, "checkpoints": [], "log_every": 10**9, "feed": feed}
    seeds = list(range(size))
    runs = [Run(seed, Path(os.devnull), "") for seed in seeds]  # nothing is written: no checkpoint, no log row
    trainer = Trainer(config | {"model": model_cfg, "train": train_cfg}, seeds, data, device, runs)
    for i in range(1, warmup + 1):
        trainer.step(i)
    _synchronize(device)
    start = time.perf_counter()
    for i in range(warmup + 1, warmup + steps + 1):
        trainer.step(i)
    _synchronize(device)
    return steps / (time.perf_counter() - start)


def stacking_table(
    data: ImageData,
    config: dict,
    device: torch.device,
    widths: list[int],
    sizes: list[int],
    steps: int,
    warmup: int,
    record,
) -> dict[tuple[int, int], float]:
    """Solo against stacked throughput per width, side by side: images/s = seeds x batch_size x steps/s (the real
    images the seeds train on). The solo run is measured first and again as the row S=1 (its spread is the noise).
    Returns {(width, S): stack steps/s}; a stack that runs out of GPU memory is reported and skipped."""
    batch = config["train"]["batch_size"]
    rates, lines = {}, []
    for width in widths:
        solo = stack_steps_per_second(data, config, width, 1, steps, warmup, device)
        record(f"d) solo run, width {width}, {device.type}", solo * batch, "images/s")
        for size in sizes:
            try:
                rate = stack_steps_per_second(data, config, width, size, steps, warmup, device)
            except torch.OutOfMemoryError:
                torch.cuda.empty_cache()
                lines.append(f"{width:>6} {size:>4} {'out of GPU memory':>40}")
                print(f"d) stack of {size}, width {width}: out of GPU memory", flush=True)
                continue
            rates[(width, size)] = rate
            images = rate * size * batch
            record(
                f"d) stack of {size}, width {width}, {device.type} (ratio vs solo)", images, "images/s", solo * batch
            )
            lines.append(
                f"{width:>6} {size:>4} {rate:>12.2f} {images:>12.0f} {solo * batch:>12.0f}"
                f" {images / (solo * batch):>7.2f}"
            )
    print(
        f"\nd) stacked seeds on {device} ({steps} timed steps after {warmup} warm-up, feed split, norm batch, "
        f"batch {batch}):"
    )
    print(f"{'width':>6} {'S':>4} {'stack st/s':>12} {'images/s':>12} {'solo img/s':>12} {'ratio':>7}")
    print("\n".join(lines) + "\n", flush=True)
    return rates


def paper_projection(
    paper: dict,
    data: ImageData,
    config: dict,
    device: torch.device,
    rates: dict,
    steps: int,
    warmup: int,
    eval_seconds: dict | None,
    record,
) -> None:
    """The paper study's wall time on this device from measured rates, one job at a time (snakemake --resources
    gpu=1): training = training jobs x train.steps / stack steps/s at the paper's width and stack size (measured
    here if d) did not), plus evaluation = runs x (seconds to score one run's checkpoints, warm cache) when f) ran.
    Not counted: process starts, data loading, the state saved every train.state_every steps, the extractor, the
    reference statistics and the analysis."""
    study, train_cfg = paper["study"], paper["train"]
    n_seeds = len(seeds_of(study))
    size = stack_size(train_cfg["stack"], n_seeds, device.type)
    width = paper["model"]["g_width"]
    if paper["model"]["d_width"] != width:
        print("e) the paper config has g_width != d_width: projected at g_width", flush=True)
    variants = len(design_of(paper).cells)
    jobs = variants * len(stack_groups(seeds_of(study), size))
    paper_cfg = copy.deepcopy(config) | {"model": paper["model"]}
    paper_cfg["train"] = copy.deepcopy(config["train"]) | {"batch_size": train_cfg["batch_size"]}
    same = (
        paper["model"]["z_dim"] == config["model"]["z_dim"] and train_cfg["batch_size"] == config["train"]["batch_size"]
    )
    rate = rates.get((width, size)) if same else None
    if rate is None:
        rate = stack_steps_per_second(data, paper_cfg, width, size, steps, warmup, device)
    record(f"e) paper study: stack of {size}, width {width}, {device.type}", rate, "steps/s")
    train_hours = jobs * train_cfg["steps"] / rate / 3600
    record(f"e) paper study training ({jobs} jobs x {train_cfg['steps']} steps), projected", train_hours, "h")
    if eval_seconds is not None:
        runs = variants * n_seeds
        eval_hours = runs * eval_seconds["warm"] / 3600
        record(
            f"e) paper study evaluation ({runs} runs x {eval_seconds['checkpoints']} checkpoints), projected",
            eval_hours,
            "h",
        )
        record("e) paper study training + evaluation, projected", train_hours + eval_hours, "h")


def paper_run_scoring_seconds(paper: dict, data_file: Path, device: torch.device, workdir: Path) -> dict:
    """Seconds for `ganablate evaluate` of one run with the paper's checkpoint count, eval.n_samples and extractor
    (domain) on the device: the whole process, reference cache cold, then warm. G is the paper's width, trained
    for as many steps as checkpoints (the images' content does not change the cost); the domain extractor is
    trained for one epoch (its accuracy does not change the cost either)."""
    n_checkpoints = len(checkpoint_steps(paper["train"]))
    config = copy.deepcopy(paper)
    config["train"] |= {
        "steps": n_checkpoints,
        "checkpoints": list(range(1, n_checkpoints)),
        "device": device.type,
        "stack": 1,
        "state_every": n_checkpoints,
    }
    config["eval"] |= {"device": device.type, "extractors": ["domain"], "extractor_epochs": 1}
    run = workdir / "paper-scored"
    train_run(config, 0, run, data_path=str(data_file))
    evaluate = _evaluate_command(config, data_file, run, workdir / "paper-domain.pt", workdir / "paper-cache")
    times = {"checkpoints": n_checkpoints}
    for label in ("cold", "warm"):
        start = time.perf_counter()
        subprocess.run(evaluate, check=True, stdout=subprocess.DEVNULL)
        times[label] = time.perf_counter() - start
    return times


def stack_tests_on_device(timeout: int, select: str) -> tuple[int, float, str]:
    """`python -m pytest tests/test_stack.py -k select`: the stack's CUDA tests (skipped without CUDA) by default,
    the CPU ones having run wherever the suite runs. Returns (exit code, seconds, its last lines)."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_stack.py"]
    try:
        result = subprocess.run(
            command + (["-k", select] if select else []), cwd=REPO, capture_output=True, text=True, timeout=timeout
        )
        code, output = result.returncode, result.stdout + result.stderr
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        code, output = 124, f"{partial}\ntimed out after {timeout} s"
    return code, time.perf_counter() - start, "\n".join(output.strip().splitlines()[-15:])


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


# What each part measures, and which run by default per --device.
PARTS = {
    "t": "python -m pytest tests/test_stack.py -k cuda (--pytest-select): the stack's tests on CUDA",
    "a": "training loop vs the seed's loop, jobs vs threads (on the CPU whatever --device)",
    "b": "score one checkpoint, 10000 samples (eval.device of --config)",
    "c": "the study of --config, snakemake --cores 2, and its overhead ratio (dropped by --quick)",
    "d": "solo vs stacked training throughput on --device, per width and stack size",
    "f": "score one run of the paper study (its checkpoints and eval.n_samples) on --device",
    "g": "seconds per training step of every registered D norm against batch, split and joint, on the CPU",
    "e": "the paper study's projected wall time on --device, from d) and f)",
}
DEFAULTS = {  # device: (parts, stack sizes, widths, timed steps, warm-up steps)
    "cpu": ("abcdeg", "1,2,4", "16,32", 20, 3),
    "cuda": ("tdfe", "1,2,4,8,16,32,64", "32,64", 100, 10),
}
SCORED_SAMPLES = 10000  # b)'s samples per checkpoint
# --smoke: the same code at the smallest sizes, on the synthetic data (the config's sections are updated with these).
SMOKE = {
    "steps": 2,  # a), g)
    "stack": ("1,2", "8", 1, 0),  # d), e): stack sizes, widths, timed steps, warm-up steps
    "images": (2000, 500),  # training and test images kept of the data
    "model": {"z_dim": 8, "g_width": 8, "d_width": 8},
    "train": {"batch_size": 16},
    "eval": {"n_samples": 200, "kid_subset_size": 50, "batch_size": 100, "extractor_epochs": 1},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip c), the whole default study")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="--quick --synthetic at the smallest sizes (a subset of the images, width 8, batch 16, 2 steps, 200 "
        "samples, one extractor epoch): every part runs, and its numbers measure nothing",
    )
    parser.add_argument("--steps", type=int, default=300, help="training steps per throughput measurement of a)")
    parser.add_argument("--config", default=str(REPO / "config/config.yaml"))
    parser.add_argument("--out", default="results/benchmarks")
    parser.add_argument("--extractor", type=Path, help="an existing domain extractor file (default: train one)")
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="where d), e) and f) train and score (default: cpu)"
    )
    parser.add_argument(
        "--parts",
        help="which parts, in any order, e.g. de: "
        + "; ".join(f"{k}) {v}" for k, v in PARTS.items())
        + f". Default: {DEFAULTS['cpu'][0]} on cpu, {DEFAULTS['cuda'][0]} on cuda",
    )
    parser.add_argument(
        "--stacking",
        action="store_true",
        help="only the stacking benchmark and the paper projection (--parts de; with --device cuda, tdfe)",
    )
    parser.add_argument(
        "--stack-sizes", type=_ints, help="d): seeds per stack (default: 1,2,4 on cpu, 1,2,4,8,16,32,64 on cuda)"
    )
    parser.add_argument("--widths", type=_ints, help="d): g_width = d_width (default: 16,32 on cpu, 32,64 on cuda)")
    parser.add_argument(
        "--stack-steps", type=int, help="d), e): timed steps per measurement (default: 20 on cpu, 100 on cuda)"
    )
    parser.add_argument("--warmup", type=int, help="d), e): untimed steps first (default: 3 on cpu, 10 on cuda)")
    parser.add_argument("--paper", default=str(REPO / "config/paper.yaml"), help="the study e) and f) project")
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="images of Fashion-MNIST's shape made here "
        "(tests/synthetic_idx.py) instead of the configured dataset: for machines without it",
    )
    parser.add_argument("--pytest-timeout", type=int, default=300, help="t): seconds before the tests are stopped")
    parser.add_argument(
        "--pytest-select",
        default="cuda",
        help="t): pytest -k expression ('' for every test of tests/test_stack.py; default: cuda, its CUDA tests)",
    )
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available here")
    parts, sizes, widths, stack_steps, warmup = DEFAULTS[device.type]
    if args.smoke:
        sizes, widths, stack_steps, warmup = SMOKE["stack"]
        args.quick, args.synthetic, args.steps = True, True, SMOKE["steps"]
    parts = args.parts or ({"cpu": "de", "cuda": "tdfe"}[device.type] if args.stacking else parts)
    if unknown := set(parts) - set(PARTS):
        parser.error(f"--parts: unknown parts {''.join(sorted(unknown))}; allowed: {''.join(PARTS)}")
    if args.quick:
        parts = parts.replace("c", "")
    sizes, widths = args.stack_sizes or _ints(sizes), args.widths or _ints(widths)
    stack_steps, warmup = args.stack_steps or stack_steps, args.warmup if args.warmup is not None else warmup

    config = load_config(args.config)
    if args.smoke:
        for section in ("model", "train", "eval"):
            config[section] |= SMOKE[section]
    paper = load_config(args.paper) if set(parts) & set("ef") else None
    config["train"]["device"] = device.type
    torch.set_num_threads(config["train"]["threads"])
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {where}"
    )
    print(f"{machine}; parts {parts}", flush=True)
    rows = []

    def record(measurement: str, value: float, unit: str, baseline: float | None = None) -> None:
        ratio = value / baseline if baseline else None
        rows.append(
            {
                "measurement": measurement,
                "value": round(value, 3),
                "unit": unit,
                "ratio": round(ratio, 3) if ratio else None,
                "machine": machine,
            }
        )
        print(f"{measurement:<58} {value:10.3f} {unit:<8} {'' if ratio is None else f'x{ratio:.2f}'}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if "t" in parts:
            code, seconds, tail = stack_tests_on_device(args.pytest_timeout, args.pytest_select)
            print(tail, flush=True)
            record(f"t) pytest tests/test_stack.py -k '{args.pytest_select}', exit code {code}", seconds, "s")
        if args.synthetic:
            sys.path.insert(0, str(REPO))
            from tests.synthetic_idx import write_fashion_mnist

            config["dataset"] = {"name": "fashion-mnist", "root": str(write_fashion_mnist(workdir / "synthetic"))}
        data = load_dataset(config["dataset"])
        if args.smoke:
            n_train, n_test = SMOKE["images"]
            data = dataclasses.replace(  # copies: a view would save the whole tensor's storage into data.pt
                data,
                train_images=data.train_images[:n_train].clone(),
                train_labels=data.train_labels[:n_train].clone(),
                test_images=data.test_images[:n_test].clone(),
                test_labels=data.test_labels[:n_test].clone(),
            )
        data_file = workdir / "data.pt"
        data.save(data_file)
        if "a" in parts:
            cpu_config = copy.deepcopy(config)
            cpu_config["train"]["device"] = "cpu"
            for feed in ("split", "joint"):
                seed_style = seed_style_steps_per_second(data, cpu_config, feed, args.steps)
                ours = ganablate_steps_per_second(data_file, cpu_config, feed, args.steps, workdir)
                record(f"a) seed-style loop, {feed}, batch norm", seed_style, "steps/s")
                record(f"a) ganablate loop, {feed}, batch norm (ratio vs seed-style)", ours, "steps/s", seed_style)
            parallel, threaded = jobs_vs_threads(cpu_config, data_file, args.steps, workdir)
            record("a) 1 job x 2 threads, total", threaded, "steps/s")
            record("a) 2 jobs x 1 thread, total (ratio vs 1 job x 2 threads)", parallel, "steps/s", threaded)
        if "b" in parts:
            n = config["eval"]["n_samples"] if args.smoke else SCORED_SAMPLES
            times = score_one_checkpoint_seconds(config, data_file, workdir, args.extractor, n)
            record(f"b) score one checkpoint, {n} samples, cold cache (whole process)", times["cold"], "s")
            record(f"b) score one checkpoint, {n} samples, warm cache (whole process)", times["warm"], "s")
        if "g" in parts:
            cpu_config = copy.deepcopy(config)
            cpu_config["train"]["device"] = "cpu"
            norm_step_seconds(data_file, cpu_config, args.steps, workdir, record)
        if "c" in parts:
            # Kept (its tables are the study's), in a new folder: a study timed from an empty one.
            study = study_seconds(
                Path(args.out).resolve() / f"study-{time.strftime('%Y%m%d-%H%M%S')}", Path(args.config)
            )
            compute = study["training"] + study["scoring"]
            record(f"c) study of {args.config}, snakemake --cores {STUDY_CORES}", study["wall"] / 60, "min")
            record(f"c) its {study['runs']} runs' training loops, summed", study["training"] / 60, "min")
            record(f"c) its {study['runs']} runs' scoring, summed", study["scoring"] / 60, "min")
            # The overhead as a ratio: 1 would be every core computing a run's steps or scores all the time.
            record(
                f"c) wall x {STUDY_CORES} cores over the runs' compute (ratio)",
                study["wall"] * STUDY_CORES / 60,
                "core-min",
                compute / 60,
            )
        rates = stacking_table(data, config, device, widths, sizes, stack_steps, warmup, record) if "d" in parts else {}
        scoring = None
        if "f" in parts:
            scoring = paper_run_scoring_seconds(paper, data_file, device, workdir)
            for label in ("cold", "warm"):
                record(
                    f"f) score one paper run ({scoring['checkpoints']} checkpoints, "
                    f"{paper['eval']['n_samples']} samples), {label} cache, {device.type}",
                    scoring[label],
                    "s",
                )
        if "e" in parts:
            paper_projection(paper, data, config, device, rates, stack_steps, warmup, scoring, record)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"benchmark-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    print(f"written: {path}")


if __name__ == "__main__":
    main()
