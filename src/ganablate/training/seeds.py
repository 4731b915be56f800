"""A seed's networks and random streams: what a seed fixes, for every feed and norm alike, so that the runs of one
seed are paired across a study's cells (common random numbers)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import nn

from ganablate.catalog import d_init_family
from ganablate.components.networks import build_discriminator, build_generator
from ganablate.components.norms import NORMS, reference_size
from ganablate.data import to_model_range
from ganablate.training.step import Nets, Solo


def stream_seed(seed: int, stream: str) -> int:
    """Independent seeds per random stream, so that a seed fixes G's init, the real batches and z
    for every feed and norm alike (common random numbers for a paired comparison)."""
    return int(hashlib.sha256(f"{seed}/{stream}".encode()).hexdigest()[:15], 16)


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


def networks(image_shape, model_cfg: dict, seeds: list[int], device: torch.device, images: torch.Tensor) -> Nets:
    """The networks of `seeds` on `device`: a Solo run for one seed, a stack.Stack for several."""
    built = [build_networks(image_shape, model_cfg, seed, images) for seed in seeds]
    if len(seeds) == 1:
        # channels_last: the convolutions run about 1.2-1.3x faster on CPU (benchmarks/run.py), same results.
        return Solo(*(net.to(device, memory_format=torch.channels_last) for net in built[0]))
    from ganablate.training.stack import Stack

    return Stack([(G.to(device), D.to(device)) for G, D in built])


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

    def state_dict(self) -> dict:
        return {"z_rng": self.z.get_state(), "batch_rng": self.batches.get_state()}

    def load_state_dict(self, state: dict) -> None:
        # Generator states are CPU tensors, whatever the device the state was loaded onto.
        self.z.set_state(state["z_rng"].cpu())
        self.batches.set_state(state["batch_rng"].cpu())


def draw(streams: list[Streams], pool: torch.Tensor, batch: int, z_dim: int, device: torch.device):
    """(real, z): each seed's real batch and z from its own generators, as its solo run draws them, stacked along
    a leading seed axis."""
    real = [to_model_range(pool[torch.randint(len(pool), (batch,), generator=s.batches).to(device)]) for s in streams]
    z = [torch.randn(batch, z_dim, generator=s.z).to(device) for s in streams]
    return _seed_axis(real), _seed_axis(z)


def _seed_axis(tensors: list[torch.Tensor]) -> torch.Tensor:
    # One seed: a view, so that a solo run computes on the very tensor (and memory layout) it always has.
    return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)
