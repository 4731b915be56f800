"""One run of the study: (dataset, feed, norm, seed) trained deterministically, resumable at any moment."""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ganablate.config import ConfigError, UsageError, checkpoint_steps, config_hash
from ganablate.data import load_study_data, to_model_range
from ganablate.files import atomic_save, atomic_write_text
from ganablate.feed import FEEDS
from ganablate.models import NORMS, build_discriminator, build_generator

LOG_COLUMNS = ["step", "loss_d", "loss_g", "d_real", "d_fake", "d_acc", "grad_norm_g", "grad_norm_d", "context_gap"]


def stream_seed(seed: int, stream: str) -> int:
    """Independent seeds per random stream, so that a seed fixes G's init, the real batches and z
    for every feed and norm alike (common random numbers for a paired comparison)."""
    return int(hashlib.sha256(f"{seed}/{stream}".encode()).hexdigest()[:15], 16)


def resolve_device(name: str, field: str = "train.device") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"{field}: cuda requested but no CUDA device is available; allowed here: cpu, auto")
    return torch.device(name)


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


def _prepare_out(out: Path) -> None:
    try:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        (out / "state").mkdir(exist_ok=True)
        probe = out / "state" / ".write-probe"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--out: cannot write to {out} ({exc.strerror})") from None


def _log_csv(rows: list[dict]) -> str:
    lines = [",".join(LOG_COLUMNS)]
    lines += [",".join(repr(float(row[c])) if c != "step" else str(row[c]) for c in LOG_COLUMNS) for row in rows]
    return "\n".join(lines) + "\n"


def train_run(config: dict, feed: str, norm: str, seed: int, out: Path, data_path: str | None = None) -> dict:
    """Train one run into `out`; returns the summary also written to out/summary.json."""
    if feed not in FEEDS:
        raise ConfigError(f"feed: unknown feed mode {feed!r}; allowed: {', '.join(FEEDS)}")
    if norm not in NORMS:
        raise ConfigError(f"norm: unknown normalization {norm!r}; allowed: {', '.join(NORMS)}")
    train_cfg, model_cfg = config["train"], config["model"]
    steps, batch = train_cfg["steps"], train_cfg["batch_size"]
    device = resolve_device(train_cfg["device"])
    torch.set_num_threads(train_cfg["threads"])
    data = load_study_data(config["dataset"], data_path)
    _prepare_out(out)

    # Where and on how many threads a run executes is no part of its identity: a run killed on a GPU node
    # resumes on a CPU one, or with fewer cores, instead of starting over.
    what = {k: v for k, v in train_cfg.items() if k not in ("device", "threads")}
    run_key = {"dataset": config["dataset"], "model": model_cfg, "train": what, "feed": feed, "norm": norm, "seed": seed}
    run_hash = config_hash(run_key)
    saved_steps = checkpoint_steps(train_cfg)

    # channels_last: the convolutions run about 1.2-1.3x faster on CPU (benchmarks/run.py), same results.
    torch.manual_seed(stream_seed(seed, "G"))
    G = build_generator(data.image_shape, model_cfg).to(device, memory_format=torch.channels_last)
    torch.manual_seed(stream_seed(seed, f"D/{norm}"))
    D = build_discriminator(data.image_shape, model_cfg, norm).to(device, memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(G.parameters(), lr=train_cfg["lr_g"], betas=tuple(train_cfg["betas"]))
    opt_d = torch.optim.Adam(D.parameters(), lr=train_cfg["lr_d"], betas=tuple(train_cfg["betas"]))
    z_rng = torch.Generator().manual_seed(stream_seed(seed, "z"))
    batch_rng = torch.Generator().manual_seed(stream_seed(seed, "batches"))
    pool = data.train_images.to(device).contiguous(memory_format=torch.channels_last)
    rows: list[dict] = []
    saved_checkpoints: dict[int, dict] = {}
    start, earlier_seconds = 0, 0.0

    state_path = out / "state" / "state.pt"
    resumed_from = None
    if state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
        if state["run_hash"] == run_hash:  # a state from another config is stale: start afresh
            G.load_state_dict(state["G"])
            D.load_state_dict(state["D"])
            opt_g.load_state_dict(state["opt_g"])
            opt_d.load_state_dict(state["opt_d"])
            z_rng.set_state(state["z_rng"])
            batch_rng.set_state(state["batch_rng"])
            torch.set_rng_state(state["torch_rng"])
            rows, saved_checkpoints, start = state["log"], state["checkpoints"], state["step"]
            earlier_seconds = state["wall_seconds"]
            resumed_from = start
    if resumed_from is None:
        for stale in (out / "checkpoints").glob("step_*.pt"):
            stale.unlink()
    # A workflow rerun may have removed checkpoints written before the kill: restore them from the state.
    for step, g_state in saved_checkpoints.items():
        atomic_save(g_state, out / "checkpoints" / f"step_{step}.pt")

    feed_fn = FEEDS[feed]
    status, done = "completed", start
    t0 = time.perf_counter()
    progress = _progress(start, steps, out)
    for step in range(start + 1, steps + 1):
        real = to_model_range(pool[torch.randint(len(pool), (batch,), generator=batch_rng).to(device)])
        fake = G(torch.randn(batch, model_cfg["z_dim"], generator=z_rng).to(device))

        # D step: non-saturating BCE with logits, real -> 1, fake -> 0. Each step sees one D weight:
        # spectral norm's power iteration runs once per cached() block, not once per forward pass,
        # so that split's two passes and joint's one are the same math for every per-sample norm.
        with parametrize.cached():
            d_real, d_fake = feed_fn.d_step(D, real, fake.detach())
        loss_d = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        # G step: fakes -> 1, through the D just updated. D's weights need no gradient here.
        D.requires_grad_(False)
        with parametrize.cached():
            loss_g = F.softplus(-feed_fn.g_step(D, real, fake)).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)

        done = step
        # Finite losses can still leave non-finite weights behind: checked before a checkpoint is written.
        if not math.isfinite(loss_d.item() + loss_g.item()) or (step in saved_steps and not _finite(G)):
            status = "diverged"
            rows.append(dict.fromkeys(LOG_COLUMNS, math.nan) | {"step": step, "loss_d": loss_d.item(), "loss_g": loss_g.item()})
            break
        if step % train_cfg["log_every"] == 0 or step == steps:
            rows.append(_log_row(step, D, G, real, fake.detach(), d_real, d_fake, loss_d, loss_g))
            progress(step, rows[-1])
        if step in saved_steps:
            saved_checkpoints[step] = {k: v.detach().clone() for k, v in G.state_dict().items()}
            atomic_save(saved_checkpoints[step], out / "checkpoints" / f"step_{step}.pt")
        if step % train_cfg["state_every"] == 0 and step < steps:
            atomic_save(
                {"run_hash": run_hash, "step": step, "G": G.state_dict(), "D": D.state_dict(),
                 "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "z_rng": z_rng.get_state(),
                 "batch_rng": batch_rng.get_state(), "torch_rng": torch.get_rng_state(), "log": rows,
                 "checkpoints": saved_checkpoints, "wall_seconds": earlier_seconds + time.perf_counter() - t0},
                state_path,
            )

    summary = {
        "status": status, "steps_done": done, "steps": steps, "dataset": data.name, "feed": feed, "norm": norm,
        "seed": seed, "wall_seconds": earlier_seconds + time.perf_counter() - t0, "resumed_from": resumed_from, "device": str(device),
        "threads": train_cfg["threads"], "torch_version": torch.__version__, "config_hash": run_hash,
    }
    atomic_write_text(out / "train_log.csv", _log_csv(rows))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _log_row(step, D, G, real, fake, d_real, d_fake, loss_d, loss_g) -> dict:
    with torch.no_grad(), buffers_restored(D), parametrize.cached():
        # The seed answer's explanation, measured: how much a fake's logit depends on batch company.
        alone = D(fake)
        mixed = D(torch.cat([real, fake]))[len(real) :]
        context_gap = (alone - mixed).abs().mean().item()
    return {
        "step": step,
        "loss_d": loss_d.item(),
        "loss_g": loss_g.item(),
        "d_real": torch.sigmoid(d_real).mean().item(),
        "d_fake": torch.sigmoid(d_fake).mean().item(),
        "d_acc": ((d_real > 0).float().mean().item() + (d_fake < 0).float().mean().item()) / 2,
        "grad_norm_g": _grad_norm(G),
        "grad_norm_d": _grad_norm(D),
        "context_gap": context_gap,
    }


def _progress(start: int, steps: int, out: Path):
    """A tqdm bar on a terminal; plain lines (one per log row) in logs and batch jobs."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=steps, initial=start, desc=str(out), unit="step")

        def update(step: int, row: dict) -> None:
            bar.update(step - bar.n)
            bar.set_postfix(loss_d=f"{row['loss_d']:.3f}", d_acc=f"{row['d_acc']:.2f}")

        return update

    def log_line(step: int, row: dict) -> None:
        print(f"{out}: step {step}/{steps} loss_d={row['loss_d']:.4f} loss_g={row['loss_g']:.4f} "
              f"d_acc={row['d_acc']:.3f} context_gap={row['context_gap']:.4f}", flush=True)

    return log_line
