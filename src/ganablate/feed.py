"""Feed modes: how real and fake images reach D in the D step and in the G step.

This is the whole difference the study is about, side by side. With a per-sample D (every norm but
batch; train.py runs spectral norm's power iteration once per step) the three modes are the same
math; with BatchNorm in D they are not, because a batch's statistics depend on what else is in it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

Logits = torch.Tensor


def _split(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[Logits, Logits]:
    return D(real), D(fake)  # two batches: each normalized by its own statistics


def _joint(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[Logits, Logits]:
    logits = D(torch.cat([real, fake]))  # one batch: real and fake share statistics
    return logits[: len(real)], logits[len(real) :]


def _fakes_alone(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> Logits:
    return D(fake)


def _fakes_in_mixed_batch(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> Logits:
    return D(torch.cat([real, fake]))[len(real) :]


@dataclass(frozen=True)
class Feed:
    d_step: Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[Logits, Logits]]  # -> D(real), D(fake)
    g_step: Callable[[nn.Module, torch.Tensor, torch.Tensor], Logits]  # -> D(fake), gradients flowing to G


# A new feed mode of the study is one entry here.
FEEDS: dict[str, Feed] = {
    "split": Feed(d_step=_split, g_step=_fakes_alone),  # the seed's working code
    "joint": Feed(d_step=_joint, g_step=_fakes_alone),  # the seed's failing code
    # Fakes see mixed-batch statistics in both steps: tells joint normalization as such apart
    # from the mismatch between the D step's mixed batch and the G step's fake-only batch.
    "joint_consistent": Feed(d_step=_joint, g_step=_fakes_in_mixed_batch),
}
