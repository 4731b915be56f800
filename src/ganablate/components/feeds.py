"""Feed modes: how real and fake images reach D in the D step and in the G step.

This is the whole difference the study is about, side by side: a 2x2 of the D step (reals and fakes scored apart,
or in one mixed batch) by the G step (the fakes scored alone, or inside a mixed batch), and two more G steps with the
fakes alone, normalized with statistics kept apart from the gradient. With a per-sample D (norms.Norm.per_sample;
the training loop runs spectral norm's power iteration once per step) all feed modes are the same math; with
BatchNorm in D they are not, because a batch's statistics depend on what else is in it. Every call of D says which
of its rows are real and whether it is the D step (norms.batch_rows), for the norms that normalize with the reals'
statistics or learn from them. A new feed mode is one register_feed call at the end of this file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ganablate.catalog import check_new
from ganablate.components.norms import BatchStatistics, batch_rows

Logits = torch.Tensor


def _scored(D: nn.Module, batch: torch.Tensor, reals: int, d_step: bool = False) -> Logits:
    with batch_rows(reals, d_step):  # the first `reals` rows of the batch are real images
        return D(batch)


# The D step: -> D(real), D(fake)


def _apart(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[Logits, Logits]:
    # two batches: each normalized by its own statistics
    return _scored(D, real, len(real), d_step=True), _scored(D, fake, 0, d_step=True)


def _mixed(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[Logits, Logits]:
    logits = _scored(D, torch.cat([real, fake]), len(real), d_step=True)  # one batch: real and fake share statistics
    return logits[: len(real)], logits[len(real) :]


# The G step: -> D(fake), gradients flowing to G


def _fakes_alone(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> Logits:
    return _scored(D, fake, 0)


def _fakes_in_mixed_batch(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> Logits:
    return _scored(D, torch.cat([real, fake]), len(real))[len(real) :]


def _fakes_alone_with_statistics_of(D: nn.Module, batch: torch.Tensor, reals: int, fake: torch.Tensor) -> Logits:
    # The statistics are recomputed on `batch` at D's current weights, not kept from the D step: the D step took
    # them before D's update, so they would normalize the updated D's activations with another D's. No gradient
    # flows through them. The recording pass needs no gradient and leaves running statistics be.
    statistics = BatchStatistics()
    with torch.no_grad(), statistics.recording():
        _scored(D, batch, reals)
    with statistics.replaying():
        return _scored(D, fake, 0)


def _fakes_alone_with_mixed_statistics(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> Logits:
    # joint_consistent's G-step forward pass for the fakes (to float rounding), with no gradient through the
    # statistics or the reals.
    return _fakes_alone_with_statistics_of(D, torch.cat([real, fake]), len(real), fake)


def _fakes_alone_with_own_detached_statistics(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> Logits:
    # joint's G-step forward pass (to float rounding), with no gradient through the fakes' own statistics.
    return _fakes_alone_with_statistics_of(D, fake, 0, fake)


@dataclass(frozen=True)
class Feed:
    d_step: Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[Logits, Logits]]  # -> D(real), D(fake)
    g_step: Callable[[nn.Module, torch.Tensor, torch.Tensor], Logits]  # -> D(fake), gradients flowing to G


FEEDS: dict[str, Feed] = {}


def register_feed(name: str, *, d_step, g_step) -> Feed:
    """Add a feed mode under `name`; a name already taken is an error, not a replacement."""
    check_new("register_feed", name, FEEDS)
    if not (callable(d_step) and callable(g_step)):
        raise TypeError(f"register_feed: {name!r}: d_step and g_step must be callables (D, real, fake) -> logits")
    FEEDS[name] = Feed(d_step=d_step, g_step=g_step)
    return FEEDS[name]


# A new feed mode of the study is one register_feed call here. The first four are the 2x2: D step (_apart, _mixed)
# by G step (_fakes_alone, _fakes_in_mixed_batch).
register_feed("split", d_step=_apart, g_step=_fakes_alone)  # the seed's working code
register_feed("joint", d_step=_mixed, g_step=_fakes_alone)  # the seed's failing code
# Fakes see mixed-batch statistics in both steps: tells joint normalization as such apart from the mismatch between
# the D step's mixed batch and the G step's fake-only batch.
register_feed("joint_consistent", d_step=_mixed, g_step=_fakes_in_mixed_batch)
# The other mismatch: fakes scored apart in the D step and in a mixed batch in the G step.
register_feed("split_g_mixed", d_step=_apart, g_step=_fakes_in_mixed_batch)
# Fakes see mixed-batch statistics in both steps, as in joint_consistent, but with no reals in the G step's batch
# and no gradient through the statistics. Defined for D's BatchNorm layers (norms batch, batch_detached): with any
# other norm its G step is fakes alone, and the mode is joint.
register_feed("joint_cached_stats", d_step=_mixed, g_step=_fakes_alone_with_mixed_statistics)
# joint with no gradient through the G step's (fake-only) statistics: between joint and joint_cached_stats it
# separates the two things the cached statistics change, the statistics' values (fake-only or mixed) and the
# gradient through them. Defined for the same norms as joint_cached_stats; with any other norm it is joint.
register_feed("joint_detached_g", d_step=_mixed, g_step=_fakes_alone_with_own_detached_statistics)
