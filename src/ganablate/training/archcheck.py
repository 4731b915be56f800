"""`ganablate check-arch NAME`: does an architecture meet the protocol of architectures.py, and does it train?

The checks, each one line that passes or says what fails: G's output for the dataset's image shape, D's one logit
per image, D's use of the normalization it is given (so that the norm axis acts on it), then a few training steps
under each feed of CHECK_FEEDS with the config's norm and loss, whose losses must be finite. The first
three build the networks but train nothing: `ganablate plan`, the workflow's first job, runs them for every cell of an
architecture that is not built in, and `ganablate train` before such a run (require_architecture).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ganablate.components.architectures import BUILTIN, Architecture, architecture
from ganablate.components.norms import Norm, NormFactory
from ganablate.data import DATASETS
from ganablate.study.config import ConfigError

# The feeds an architecture is trained under: reals and fakes apart, and in one batch.
CHECK_FEEDS = ("split", "joint")

STEPS = 3  # training steps per feed: enough for a second step through weights the first step updated
ROWS = 4  # images in a shape check


@dataclass(frozen=True)
class Check:
    what: str
    problem: str | None = None  # None: it passed

    def line(self) -> str:
        return f"ok    {self.what}" if self.problem is None else f"FAIL  {self.what}: {self.problem}"


def image_shape_of(dataset_cfg: dict) -> tuple[int, int, int]:
    """(C, H, W) of the config's dataset, without reading it."""
    shape = DATASETS[dataset_cfg["name"]].image_shape
    return shape or (dataset_cfg["channels"], dataset_cfg["image_size"], dataset_cfg["image_size"])


def _failure(exc: Exception) -> str:
    return f"raised {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def _checked(what: str, check: Callable[[], str | None]) -> Check:
    """check() -> a problem or None; an exception it raises is the problem."""
    try:
        return Check(what, check())
    except Exception as exc:  # noqa: BLE001 - a user's code may raise anything; it is the check's finding
        return Check(what, _failure(exc))


def _generator(arch: Architecture, image_shape: tuple[int, int, int], model_cfg: dict) -> str | None:
    z_dim = model_cfg["z_dim"]
    G = arch.build_g(image_shape, model_cfg)
    if getattr(G, "z_dim", None) != z_dim:
        return f"G.z_dim is {getattr(G, 'z_dim', 'missing')}; expected model.z_dim={z_dim}"
    with torch.no_grad():
        images = G(torch.randn(ROWS, z_dim))
    if tuple(images.shape) != (ROWS, *image_shape):
        return f"G(z) has shape {tuple(images.shape)}; expected {(ROWS, *image_shape)}"
    if not bool((images.abs() <= 1).all()):
        return f"G(z) reaches {images.abs().max().item():.3g}; expected values in [-1, 1]"
    return None


class _Counting(NormFactory):
    """A norm that normalizes nothing and keeps what it made: the layers norm(channels) returned, and the weight
    layers norm.weight(layer) was given. The structure's checks build D with it, whichever norm a study names."""

    def __init__(self, model_cfg: dict):
        super().__init__(Norm(layer=lambda c, model: nn.Identity(), use="the protocol's probe"), model_cfg)
        object.__setattr__(self, "layers", [])
        object.__setattr__(self, "weights", [])

    def __call__(self, channels: int) -> nn.Module:
        self.layers.append(super().__call__(channels))
        return self.layers[-1]

    def weight(self, module: nn.Module) -> nn.Module:
        self.weights.append(super().weight(module))
        return self.weights[-1]


def _discriminator(arch: Architecture, image_shape: tuple[int, int, int], model_cfg: dict) -> str | None:
    D = arch.build_d(image_shape, model_cfg, _Counting(model_cfg))
    with torch.no_grad():
        logits = D(torch.rand(ROWS, *image_shape) * 2 - 1)
    if tuple(logits.shape) not in ((ROWS,), (ROWS, 1)):
        return f"D(images) has shape {tuple(logits.shape)} for {ROWS} images; expected ({ROWS},) or ({ROWS}, 1)"
    return None


def _norm_use(arch: Architecture, image_shape: tuple[int, int, int], model_cfg: dict) -> str | None:
    norm = _Counting(model_cfg)
    kept = {id(m) for m in arch.build_d(image_shape, model_cfg, norm).modules()}
    for call, made in (("norm(channels)", norm.layers), ("norm.weight(layer)", norm.weights)):
        if not made:
            return f"D never calls {call}: model.d_norm would change nothing in it"
        dropped = sum(id(m) not in kept for m in made)
        if dropped:
            return f"D calls {call} but leaves {dropped} of the {len(made)} modules it returned out of D"
    return None


def structure(arch: Architecture, image_shape: tuple[int, int, int], model_cfg: dict) -> list[Check]:
    """The protocol's checks that build the networks and train nothing. Torch's global generator is left as found."""
    checks = {
        f"G maps z ({model_cfg['z_dim']}) to images {image_shape} in [-1, 1]": _generator,
        "D gives one logit per image": _discriminator,
        "D builds its norm layers and weight layers with the norm it is given": _norm_use,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return [_checked(what, lambda: fn(arch, image_shape, model_cfg)) for what, fn in checks.items()]  # noqa: B023


def require_architecture(model_cfg: dict, image_shape: tuple[int, int, int]) -> None:
    """model.arch is known and, where it is not built in, passes the structure's checks: else a ConfigError of one
    line naming the first that fails."""
    name = model_cfg["arch"]
    try:
        arch = architecture(name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if name in BUILTIN:
        return
    failed = next((c for c in structure(arch, image_shape, model_cfg) if c.problem), None)
    if failed is not None:
        raise ConfigError(f"model.arch: {name}: {failed.what}: {failed.problem} (ganablate check-arch {name})")


def _steps(config: dict, feed: str, image_shape: tuple[int, int, int]) -> str | None:
    from ganablate.components.feeds import FEEDS
    from ganablate.components.losses import loss_of
    from ganablate.training.train import Solo, build_networks, optimizers, train_step

    model_cfg, train_cfg = config["model"], config["train"]
    batch, z_dim = train_cfg["batch_size"], model_cfg["z_dim"]
    pool = torch.randint(0, 256, (max(2 * batch, model_cfg["reference_size"]), *image_shape), dtype=torch.uint8)
    nets = Solo(*build_networks(image_shape, model_cfg, 0, pool))
    opt_g, opt_d = optimizers(nets, train_cfg)
    for step in range(1, STEPS + 1):
        real, z = torch.rand(1, batch, *image_shape) * 2 - 1, torch.randn(1, batch, z_dim)
        out = train_step(nets, opt_g, opt_d, FEEDS[feed], real, z, loss_of(train_cfg))
        for net, value in (("D", out.loss_d.item()), ("G", out.loss_g.item())):
            if not math.isfinite(value):
                return f"{net}'s loss is {value} at step {step}"
    return None


def check(config: dict) -> list[Check]:
    """Every check of the architecture model.arch for the config's dataset, model and train sections; the training
    steps only where the networks' structure passed. An unknown name is a ValueError listing the known ones."""
    arch, image_shape = architecture(config["model"]["arch"]), image_shape_of(config["dataset"])
    checks = structure(arch, image_shape, config["model"])
    if any(c.problem for c in checks):
        return checks
    norm, loss = config["model"]["d_norm"], config["train"]["loss"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for feed in CHECK_FEEDS:
            what = f"{STEPS} steps under {feed} (norm {norm}, loss {loss}) give finite losses"
            checks.append(_checked(what, lambda: _steps(config, feed, image_shape)))  # noqa: B023 - called at once
    return checks
