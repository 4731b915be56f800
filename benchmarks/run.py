"""ganablate's performance, measured side by side in one run on one machine (not a test).

    python benchmarks/run.py [--quick] [--steps N] [--out results/benchmarks]

a) training steps/s of ganablate's loop against a loop written like the seed question's code
   (a DataLoader over the dataset, label tensors built every step, G run forward twice per step)
   on identical models, batch size and device, for split and joint; plus the threads-per-job lever;
b) seconds to score one checkpoint (eval.n_samples images, domain extractor), reference cache warm;
c) wall time of the default study with `snakemake --cores 2` (skipped with --quick).
Prints a table and writes it as CSV (one row per measurement, `ratio` where a comparison is made).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from ganablate.config import load_config
from ganablate.data import ImageData, load_dataset
from ganablate.models import build_discriminator, build_generator
from ganablate.train import stream_seed, train_run

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


def ganablate_steps_per_second(data_file: Path, config: dict, feed: str, steps: int, workdir: Path) -> float:
    config = copy.deepcopy(config)
    config["train"].update(steps=steps, checkpoints=[], log_every=steps, state_every=steps)
    summary = train_run(config, feed, "batch", 0, workdir / f"run-{feed}-{os.getpid()}", data_path=str(data_file))
    return steps / summary["wall_seconds"]


def _train_command(config: dict, data_file: Path, out: Path, threads: int) -> list[str]:
    return [sys.executable, "-m", "ganablate.cli", "train", "--config-json", json.dumps(config), "--data", str(data_file),
            "--feed", "split", "--norm", "batch", "--seed", "0", "--threads", str(threads), "--out", str(out)]


def jobs_vs_threads(config: dict, data_file: Path, steps: int, workdir: Path) -> tuple[float, float]:
    """Aggregate steps/s on 2 cores: two 1-thread jobs at once against one 2-thread job."""
    config = copy.deepcopy(config)
    config["train"].update(steps=steps, checkpoints=[], log_every=steps, state_every=steps)
    start = time.perf_counter()
    procs = [subprocess.Popen(_train_command(config, data_file, workdir / f"par{i}", 1), stdout=subprocess.DEVNULL)
             for i in range(2)]
    for proc in procs:
        proc.wait()
    parallel = 2 * steps / (time.perf_counter() - start)
    start = time.perf_counter()
    subprocess.run(_train_command(config, data_file, workdir / "threads2", 2), check=True, stdout=subprocess.DEVNULL)
    threaded = steps / (time.perf_counter() - start)
    return parallel, threaded


def score_one_checkpoint_seconds(config: dict, data_file: Path, workdir: Path, extractor: Path | None) -> dict:
    """Cold and warm reference cache, 10k samples, through the same `ganablate evaluate` the workflow runs."""
    config = copy.deepcopy(config)
    config["eval"]["n_samples"] = 10000
    run = workdir / "scored"
    small = copy.deepcopy(config)
    small["train"].update(steps=1, checkpoints=[])
    train_run(small, "split", "batch", 0, run, data_path=str(data_file))
    cfg = json.dumps(small)  # evaluate checks the run against the config it was trained with
    if extractor is None:
        extractor = workdir / "domain.pt"
        subprocess.run([sys.executable, "-m", "ganablate.cli", "train-extractor", "--config-json", cfg, "--data",
                        str(data_file), "--out", str(extractor)], check=True, stdout=subprocess.DEVNULL)
    evaluate = [sys.executable, "-m", "ganablate.cli", "evaluate", "--config-json", cfg, "--run", str(run), "--data",
                str(data_file), "--domain-extractor", str(extractor), "--cache-root", str(workdir / "cache")]
    times = {}
    for label in ("cold", "warm"):
        start = time.perf_counter()
        subprocess.run(evaluate, check=True, stdout=subprocess.DEVNULL)
        times[label] = time.perf_counter() - start
    return times


def default_study_seconds(workdir: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["snakemake", "--cores", "2", "--directory", str(workdir), "--snakefile",
                    str(REPO / "workflow/Snakefile"), "--configfile", str(REPO / "config.yaml")], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip c), the whole default study")
    parser.add_argument("--steps", type=int, default=300, help="training steps per throughput measurement")
    parser.add_argument("--config", default=str(REPO / "config.yaml"))
    parser.add_argument("--out", default="results/benchmarks")
    parser.add_argument("--extractor", type=Path, help="an existing domain extractor file (default: train one)")
    args = parser.parse_args()

    config = load_config(args.config)
    torch.set_num_threads(config["train"]["threads"])
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, CPU"
    rows = []

    def record(measurement: str, value: float, unit: str, baseline: float | None = None) -> None:
        ratio = value / baseline if baseline else None
        rows.append({"measurement": measurement, "value": round(value, 3), "unit": unit,
                     "ratio": round(ratio, 3) if ratio else None, "machine": machine})
        print(f"{measurement:<58} {value:10.3f} {unit:<8} {'' if ratio is None else f'x{ratio:.2f}'}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        data = load_dataset(config["dataset"])
        data_file = workdir / "data.pt"
        data.save(data_file)
        for feed in ("split", "joint"):
            seed_style = seed_style_steps_per_second(data, config, feed, args.steps)
            ours = ganablate_steps_per_second(data_file, config, feed, args.steps, workdir)
            record(f"a) seed-style loop, {feed}, batch norm", seed_style, "steps/s")
            record(f"a) ganablate loop, {feed}, batch norm (ratio vs seed-style)", ours, "steps/s", seed_style)
        parallel, threaded = jobs_vs_threads(config, data_file, args.steps, workdir)
        record("a) 1 job x 2 threads, total", threaded, "steps/s")
        record("a) 2 jobs x 1 thread, total (ratio vs 1 job x 2 threads)", parallel, "steps/s", threaded)
        times = score_one_checkpoint_seconds(config, data_file, workdir, args.extractor)
        record("b) score one checkpoint, 10000 samples, cold cache (whole process)", times["cold"], "s")
        record("b) score one checkpoint, 10000 samples, warm cache (whole process)", times["warm"], "s")
        if not args.quick:
            record("c) default study, snakemake --cores 2", default_study_seconds(workdir / "study") / 60, "min")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"benchmark-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    print(f"written: {path}")


if __name__ == "__main__":
    main()
