"""Architectures: the G and D a run trains, by name (model.arch). Torch-free to import: config validation reads the
names; the networks are built, by training, scoring and check-arch, only when a job needs them.

The protocol an architecture meets (`ganablate check-arch NAME` checks it in every cell of a study, as `ganablate
plan`, the workflow's first job, does for a user's architecture before any run; protocol.py checks the structure,
training/archcheck.py adds training steps):

- build_g(image_shape, model_cfg) -> G, an nn.Module. image_shape is the dataset's (C, H, W); model_cfg the model
  section of the config. G maps z, a (N, model.z_dim) tensor of standard normal draws, to images (N, C, H, W) in
  [-1, 1], and has an attribute z_dim equal to model.z_dim (the evaluation draws its z from it).
- build_d(image_shape, model_cfg, norm) -> D, an nn.Module mapping images (N, C, H, W) in [-1, 1] to one logit per
  image, (N,) or (N, 1). `norm` is the normalization under study (model.d_norm; norms.NormFactory): D builds every
  hidden normalization layer as norm(channels), runs each in its forward pass, and passes every weight layer through
  norm.weight(layer), so that the norm axis works on it. A norm layer takes (N, channels, H, W) features; those of
  protocol.flat_norms() also take (N, channels). D holds no state of its own that depends on the batch beyond those
  layers; the reference batch of the norms that take one is put in front of every batch by ganablate, not by D.
- Both draw their initial weights from torch's global generator, which ganablate seeds per stream (G init, D init)
  before calling them: a seed fixes them.

Entries come from here (dcgan) and, looked up only when a name is not built in, from the entry points of the group
`ganablate.architectures` of installed packages: `resnet = "my_package.module"` names a module (or any object) with
the attributes build_g and build_d. Nothing in a config can name code: model.arch is a registry name. Every run
records which distribution, and which version of it, provided its architecture (provenance).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

from ganablate import __version__
from ganablate.catalog import check_new

ENTRY_POINTS = "ganablate.architectures"


@dataclass(frozen=True)
class Architecture:
    build_g: Callable  # (image_shape, model_cfg) -> G
    build_d: Callable  # (image_shape, model_cfg, norm: norms.NormFactory) -> D
    # The distribution that provides it, and its version: ganablate for the built-in ones, the package of the entry
    # point for an installed one, None for one registered in this process (a test's).
    distribution: str | None = None
    version: str | None = None


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(name: str, build_g: Callable, build_d: Callable) -> Architecture:
    """Add an architecture under `name`; a name already taken (built in, registered or an installed entry point) is
    an error, not a replacement."""
    check_new("register_architecture", name, set(ARCHITECTURES) | set(_entry_points()))
    if not callable(build_g) or not callable(build_d):
        raise TypeError(f"register_architecture: {name!r}: build_g and build_d must be callables")
    ARCHITECTURES[name] = Architecture(build_g, build_d)
    return ARCHITECTURES[name]


def _entry_points() -> dict:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINTS)}


def names() -> list[str]:
    """Every architecture model.arch may name: the registered ones, then the installed entry points' (not loaded)."""
    return [*ARCHITECTURES, *sorted(set(_entry_points()) - set(ARCHITECTURES))]


def architecture(name: str) -> Architecture:
    """The architecture called `name`, loading its package's entry point on first use; an unknown name is a
    ValueError of one line listing the known ones."""
    if name not in ARCHITECTURES:
        found = _entry_points().get(name)
        if found is None:
            raise ValueError(f"model.arch: unknown architecture {name!r}; allowed: {', '.join(names())}")
        try:
            target = found.load()
        except Exception as exc:  # noqa: BLE001 - an installed package's import may raise anything
            detail = " ".join(str(exc).split())[:200]
            raise ValueError(
                f"model.arch: {name}: the entry point {found.value!r} ({ENTRY_POINTS}) does not load "
                f"({type(exc).__name__}: {detail}); reinstall the package that provides it"
            ) from None
        if not (callable(getattr(target, "build_g", None)) and callable(getattr(target, "build_d", None))):
            raise ValueError(
                f"model.arch: {name}: the entry point {found.value!r} ({ENTRY_POINTS}) has no callables build_g and "
                f"build_d; allowed: a module or object with both"
            )
        dist = found.dist
        ARCHITECTURES[name] = Architecture(target.build_g, target.build_d, dist and dist.name, dist and dist.version)
    return ARCHITECTURES[name]


def provenance(name: str) -> dict:
    """What a run records of model.arch (summary.json): its name, and the distribution and version that provide it."""
    arch = architecture(name)
    return {"name": name, "distribution": arch.distribution, "version": arch.version}


def _dcgan_g(image_shape, model_cfg):
    from ganablate.components.dcgan import build_dcgan_generator

    return build_dcgan_generator(image_shape, model_cfg)


def _dcgan_d(image_shape, model_cfg, norm):
    from ganablate.components.dcgan import build_dcgan_discriminator

    return build_dcgan_discriminator(image_shape, model_cfg, norm)


ARCHITECTURES["dcgan"] = Architecture(_dcgan_g, _dcgan_d, "ganablate", __version__)  # the seed question's (dcgan.py)
BUILTIN = tuple(ARCHITECTURES)
