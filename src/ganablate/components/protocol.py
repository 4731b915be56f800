"""The architecture protocol's checks of structure (architectures.py states the protocol), without training:

- G maps z to images of the dataset's shape in [-1, 1];
- D, built with a norm (its real layers, and the reference batch of the norms that take one), gives one logit per
  image of the dataset's shape, and makes its norm layers with norm(channels) and its weight layers with
  norm.weight(layer), keeps them, and runs every norm layer it made (forward hooks count the calls): a layer it never
  runs would leave the norm axis acting on nothing.

`ganablate train` runs both with its run's norm (require_architecture); training/archcheck.py runs them in every cell
of a study and adds training steps (`ganablate check-arch`, `ganablate plan`). An exception in the architecture's code
is one line naming the call that raised it (build_g, build_d, G's or D's forward) and the architecture's file and
line. Torch at import, unlike architectures.py: only the commands that build networks import this.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ganablate.components.architectures import BUILTIN, Architecture, architecture
from ganablate.components.norms import NORMS, Norm, NormFactory, batch_rows, reference_size
from ganablate.errors import ConfigError

ROWS = 4  # images in a shape check


class Problem(Exception):
    """A check's finding, raised to end the check: its one line."""


def flat_norms() -> list[str]:
    """The norms whose layer also takes (N, C) features (a D's hidden features after pooling or a linear layer): those
    whose layer maps such an input to its own shape, in a D step and called bare, as the registry's layers show. The
    others take (N, C, H, W) only."""
    model_cfg, x = {"ghost_chunk": 2, "reference_size": 2}, torch.randn(4, 8)

    def takes(norm: Norm) -> bool:
        try:
            layer = norm.layer(8, model_cfg)
            with batch_rows(2, d_step=True):
                in_d_step = layer(x)
            return in_d_step.shape == layer(x).shape == x.shape
        except Exception:  # noqa: BLE001 - whatever a layer raises on a 2-D input says it needs 4-D
            return False

    return [name for name, norm in NORMS.items() if takes(norm)]


# --- where an exception came from ---------------------------------------------------------------


def sources_of(arch: Architecture) -> tuple[Path, ...]:
    """Where the architecture's own code is: the folder of the top-level package, or the module, that defines
    build_g and build_d."""
    roots = set()
    for fn in (arch.build_g, arch.build_d):
        module = sys.modules.get(getattr(fn, "__module__", "").partition(".")[0])
        if getattr(module, "__file__", None):
            path = Path(module.__file__).resolve()
            roots.add(path.parent if path.name == "__init__.py" else path)
    return tuple(roots)


def _raised(call: str, exc: Exception, sources: tuple[Path, ...]) -> str:
    """One line: what raised what, at the innermost line of the architecture's own code in the traceback."""
    text = f"{call} raised {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    own = [(frame.f_code, line) for frame, line in traceback.walk_tb(exc.__traceback__) if _is_own(frame, sources)]
    if own:
        code, line = own[-1]
        text += f" ({code.co_filename}:{line}, in {code.co_qualname})"
    return text


def _is_own(frame, sources: tuple[Path, ...]) -> bool:
    path = Path(frame.f_code.co_filename).resolve()
    return any(root == path or root in path.parents for root in sources)


def attempt(call: str, sources: tuple[Path, ...], fn: Callable, *args):
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - a user's code may raise anything; it is the check's finding
        raise Problem(_raised(call, exc, sources)) from None


def generator_problem(arch: Architecture, image_shape: tuple[int, int, int], model_cfg: dict) -> str | None:
    sources, z_dim = sources_of(arch), model_cfg["z_dim"]
    G = attempt("build_g", sources, arch.build_g, image_shape, model_cfg)
    if getattr(G, "z_dim", None) != z_dim:
        return f"G.z_dim is {getattr(G, 'z_dim', 'missing')}; expected model.z_dim={z_dim}"
    with torch.no_grad():
        images = attempt("G's forward", sources, G, torch.randn(ROWS, z_dim))
    if tuple(images.shape) != (ROWS, *image_shape):
        return f"G(z) has shape {tuple(images.shape)}; expected {(ROWS, *image_shape)}"
    if not bool((images.abs() <= 1).all()):
        return f"G(z) reaches {images.abs().max().item():.3g}; expected values in [-1, 1]"
    return None


@dataclass(frozen=True)
class _Recording(NormFactory):
    """The norm under study as D is given it, keeping what it made: the layers norm(channels) returned, and the
    weight layers norm.weight(layer) was given."""

    layers: list = field(default_factory=list)
    weights: list = field(default_factory=list)

    def __call__(self, channels: int) -> nn.Module:
        self.layers.append(super().__call__(channels))
        return self.layers[-1]

    def weight(self, module: nn.Module) -> nn.Module:
        self.weights.append(super().weight(module))
        return self.weights[-1]


def discriminator_problem(arch: Architecture, image_shape: tuple[int, int, int], model_cfg: dict) -> str | None:
    name, sources = model_cfg["d_norm"], sources_of(arch)
    norm = _Recording(NORMS[name], model_cfg)
    D = attempt("build_d", sources, arch.build_d, image_shape, model_cfg, norm)
    kept = {id(m) for m in D.modules()}
    for call, made in (("norm(channels)", norm.layers), ("norm.weight(layer)", norm.weights)):
        if not made:
            return f"D never calls {call}: model.d_norm would change nothing in it"
        dropped = sum(id(m) not in kept for m in made)
        if dropped:
            return f"D calls {call} but leaves {dropped} of the {len(made)} modules it returned out of D"
    # As a run calls it: the reference batch of the norms that take one in front (networks.ScoredDiscriminator), and
    # ghost_mixed's chunks of model.ghost_chunk rows.
    images = torch.rand(model_cfg.get("ghost_chunk") or ROWS, *image_shape) * 2 - 1
    if NORMS[name].reference:
        images = torch.cat([torch.rand(reference_size(model_cfg), *image_shape) * 2 - 1, images])
    inputs: dict[int, tuple[int, ...]] = {}  # id of a norm layer -> the shape of its input
    hooks = [layer.register_forward_pre_hook(_shape_into(inputs)) for layer in norm.layers]
    try:
        with torch.no_grad():
            logits = D(images)
    except Exception as exc:  # noqa: BLE001 - a user's code may raise anything; it is the check's finding
        raise Problem(_flat_features(name, inputs) or _raised("D's forward", exc, sources)) from None
    finally:
        for hook in hooks:
            hook.remove()
    n = len(images)
    if tuple(logits.shape) not in ((n,), (n, 1)):
        return f"D(images) has shape {tuple(logits.shape)} for {n} images; expected ({n},) or ({n}, 1)"
    unrun = sum(id(layer) not in inputs for layer in norm.layers)
    if unrun:
        return (
            f"D makes {len(norm.layers)} norm layers with norm(channels) but never runs {unrun} of them: model.d_norm "
            f"would change nothing there"
        )
    return _flat_features(name, inputs)


def _shape_into(inputs: dict) -> Callable:
    def record(layer: nn.Module, args: tuple) -> None:
        inputs[id(layer)] = tuple(args[0].shape)

    return record


def _flat_features(name: str, inputs: dict) -> str | None:
    """Where D gave a norm layer that takes (N, C, H, W) only features of another shape: what takes them."""
    shape = next((s for s in inputs.values() if len(s) != 4), None)
    if shape is None or name in flat_norms():
        return None
    return (
        f"D gives a norm layer features of shape {shape}; norm {name} takes (N, C, H, W) only; (N, C) features are "
        f"taken by {', '.join(flat_norms())}"
    )


@contextmanager
def aside() -> Iterator[None]:
    """The checks' conditions, and the caller's restored after them: torch's global generator seeded (the networks'
    inits draw from it), and one thread, the fastest for the checks' small batches by far on a loaded machine."""
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def first_problem(check: Callable, configs: list[tuple[str, dict]]) -> str | None:
    """check(config) -> a problem or None, over (where, config) pairs: the first problem, named by its where when
    there are several."""
    for where, config in configs:
        try:
            problem = check(config)
        except Problem as found:
            problem = str(found)
        if problem is not None:
            return f"{where}: {problem}" if len(configs) > 1 else problem
    return None


def require_architecture(model_cfg: dict, image_shape: tuple[int, int, int]) -> None:
    """model.arch is known and, where it is not built in, its G and its D with model.d_norm pass the checks of their
    structure (a run's check before it trains): else a ConfigError of one line naming the first that fails."""
    name = model_cfg["arch"]
    try:
        arch = architecture(name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if name in BUILTIN:
        return
    with aside():
        for what, fn in (("G", generator_problem), (f"D with norm {model_cfg['d_norm']}", discriminator_problem)):
            problem = first_problem(lambda c: fn(arch, image_shape, c), [("", model_cfg)])  # noqa: B023 - called at once
            if problem is not None:
                raise ConfigError(f"model.arch: {name}: {what}: {problem} (ganablate check-arch {name})")
