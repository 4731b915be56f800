"""`ganablate check-arch NAME`: does an architecture meet the protocol of architectures.py in every cell of a study?

Three checks, each one line that passes or names the first cell (or norm) where it fails:
- G maps z to images of the dataset's shape in [-1, 1], in every cell (components/protocol.py);
- D gives one logit per image and runs the norm layers it makes, under each norm the study's cells name
  (components/protocol.py);
- STEPS training steps of each cell (its feed, norm, loss and the rest of its config) give finite losses: the one
  check that trains, and so the one that stands here, above training/step.py.

`ganablate plan`, the workflow's first job, runs them all before any job, for every cell of an architecture that is
not built in (require_study); `ganablate train` runs the first two with its run's norm (protocol.require_architecture).
An exception in the architecture's code is one line naming the call that raised it (build_g, build_d, G's or D's
forward, a training step) and the architecture's file and line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ganablate.components.architectures import BUILTIN, architecture
from ganablate.components.feeds import FEEDS
from ganablate.components.losses import loss_of
from ganablate.components.protocol import (
    aside,
    attempt,
    discriminator_problem,
    first_problem,
    generator_problem,
    sources_of,
)
from ganablate.data import image_shape_of
from ganablate.errors import ConfigError
from ganablate.study.design import Design, design_of, run_config
from ganablate.training.seeds import build_networks
from ganablate.training.step import Solo, optimizers, train_step

STEPS = 2  # training steps per cell: the second goes through the weights the first updated
STEP_ROWS = 8  # real images per batch in the training steps (model.ghost_chunk where set): fast, and every norm's math


@dataclass(frozen=True)
class Check:
    what: str
    problem: str | None = None  # None: it passed

    def line(self) -> str:
        return f"ok    {self.what}" if self.problem is None else f"FAIL  {self.what}: {self.problem}"


def _steps(config: dict, sources: tuple[Path, ...], image_shape: tuple[int, int, int]) -> str | None:
    model_cfg, train_cfg = config["model"], config["train"]
    batch, z_dim = model_cfg.get("ghost_chunk") or min(STEP_ROWS, train_cfg["batch_size"]), model_cfg["z_dim"]
    pool = torch.randint(0, 256, (max(2 * batch, model_cfg["reference_size"]), *image_shape), dtype=torch.uint8)
    nets = Solo(*attempt("build_g or build_d", sources, build_networks, image_shape, model_cfg, 0, pool))
    opt_g, opt_d = optimizers(nets, train_cfg)
    feed, loss = FEEDS[train_cfg["feed"]], loss_of(train_cfg)
    for step in range(1, STEPS + 1):
        real, z = torch.rand(1, batch, *image_shape) * 2 - 1, torch.randn(1, batch, z_dim)
        result = attempt(f"training step {step}", sources, train_step, nets, opt_g, opt_d, feed, real, z, loss)
        for net, value in (("D", result.loss_d.item()), ("G", result.loss_g.item())):
            if not math.isfinite(value):
                return f"{net}'s loss is {value} at step {step}"
    return None


# --- the checks of a study ----------------------------------------------------------------------------


def _distinct(configs: list[tuple[str, dict]], key: Callable[[dict], dict]) -> list[tuple[str, dict]]:
    """The configs that differ in key(config), each as the first cell that has it names it."""
    seen = {}
    for where, config in configs:
        seen.setdefault(json.dumps(key(config), sort_keys=True), (where, config))
    return list(seen.values())


def cells_of(config: dict, name: str, design: Design | None = None) -> list[tuple[str, dict]]:
    """(the cell as text, its run config) for each cell of the study whose architecture is `name`; where none is, every
    cell with model.arch set to `name`: the study as it would train that architecture."""
    design = design or design_of(config)
    cells = [design.cell(labels) for labels in design.cells]
    configs = [(_text(cell), run_config(config, cell, design)) for cell in cells]
    own = [(where, c) for where, c in configs if c["model"]["arch"] == name]
    if own:
        return own
    return [(where, {**c, "model": {**c["model"], "arch": name}}) for where, c in configs]


def _text(cell: dict[str, str]) -> str:
    return "cell " + ", ".join(f"{a}={lab}" for a, lab in cell.items()) if cell else ""


def check(config: dict, name: str | None = None, design: Design | None = None) -> list[Check]:
    """Every check of the architecture `name` (default model.arch) in the study's cells (cells_of), for the config's
    dataset; the training steps only where the networks' structure passed. An unknown name is a ValueError listing
    the known ones."""
    name = name or config["model"]["arch"]
    arch, image_shape = architecture(name), image_shape_of(config["dataset"])
    configs = cells_of(config, name, design)
    models = _distinct(configs, lambda c: c["model"])
    norms = list(dict.fromkeys(c["model"]["d_norm"] for _, c in configs))
    runs = _distinct(configs, lambda c: {"model": c["model"], "train": c["train"]})
    sources = sources_of(arch)
    with aside():
        checks = [
            Check(
                f"G maps z ({config['model']['z_dim']}) to images {image_shape} in [-1, 1]",
                first_problem(
                    lambda c: generator_problem(arch, image_shape, c["model"]),
                    _distinct(configs, lambda c: {**c["model"], "d_norm": None}),
                ),
            ),
            Check(
                f"D gives one logit per image and runs the norm layers it makes, under each norm: {', '.join(norms)}",
                first_problem(lambda c: discriminator_problem(arch, image_shape, c["model"]), models),
            ),
        ]
        if any(c.problem for c in checks):
            return checks
        levels = "; ".join(
            f"{what}: {', '.join(dict.fromkeys(str(c[section][key]) for _, c in configs))}"
            for what, section, key in (
                ("feed", "train", "feed"),
                ("norm", "model", "d_norm"),
                ("loss", "train", "loss"),
            )
        )
        checks.append(
            Check(
                f"{STEPS} training steps of each of the study's {len(configs)} cells give finite losses ({levels})",
                first_problem(lambda c: _steps(c, sources, image_shape), runs),
            )
        )
    return checks


def require_study(config: dict, design: Design | None = None) -> None:
    """Every architecture of the study's cells that is not built in passes every check in each of its cells (the
    plan job's check, before any other job): else a ConfigError of one line naming the first that fails."""
    design = design or design_of(config)
    names = {run_config(config, design.cell(labels), design)["model"]["arch"] for labels in design.cells}
    for name in sorted(names - set(BUILTIN)):
        try:
            failed = next((c for c in check(config, name, design) if c.problem), None)
        except ValueError as exc:  # an unknown name, or an entry point without build_g and build_d
            raise ConfigError(str(exc)) from None
        if failed is not None:
            raise ConfigError(f"model.arch: {name}: {failed.what}: {failed.problem} (ganablate check-arch {name})")
