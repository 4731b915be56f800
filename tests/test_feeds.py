"""The feed modes' defining properties (components/feeds.py): the fourth cell of the 2x2 and the cached-statistics
mode, against split, on one D step and one G step. In float64, so that "equal to float rounding" can be tight."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from ganablate.components.feeds import FEEDS
from ganablate.components.networks import build_discriminator
from ganablate.components.norms import NORMS

SHAPE = (1, 28, 28)
MODEL = {"z_dim": 8, "g_width": 8, "d_width": 8, "reference_size": 6}
PER_SAMPLE = [name for name, norm in NORMS.items() if norm.per_sample]


def discriminator(norm: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    reference = torch.rand(MODEL["reference_size"], *SHAPE) * 2 - 1 if NORMS[norm].reference else None
    model = MODEL | ({"ghost_chunk": 4} if norm == "ghost_mixed" else {})  # its chunks have a fixed size
    return build_discriminator(SHAPE, model, norm, reference).double()


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    real = torch.rand(8, *SHAPE, generator=g, dtype=torch.float64) * 2 - 1
    return real, torch.randn(8, *SHAPE, generator=g, dtype=torch.float64) * 0.5 + 0.3  # other statistics


def d_loss_and_grads(feed: str, D, real, fake):
    """The D step's loss, as train.d_loss computes it, and its gradient for D's weights."""
    with parametrize.cached():
        d_real, d_fake = FEEDS[feed].d_step(D, real, fake)
    loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    return [loss, *torch.autograd.grad(loss, [p for p in D.parameters()])]


def g_loss_and_grads(feed: str, D, real, fake):
    """The G step's loss, as train.g_loss computes it, and its gradient for the fakes: all that reaches G."""
    fake = fake.clone().requires_grad_()
    with parametrize.cached():
        loss = F.softplus(-FEEDS[feed].g_step(D, real, fake)).mean()
    return [loss, *torch.autograd.grad(loss, fake)]


def steps(feed: str, norm: str) -> tuple[list, list]:
    """One D step, then one G step through the same D (lr_d 0: the weights stay, the norms' state moves on)."""
    D, (real, fake) = discriminator(norm), batch()
    return d_loss_and_grads(feed, D, real, fake), g_loss_and_grads(feed, D, real, fake)


def assert_same(got: list, expected: list, bitwise: bool) -> None:
    for a, b in zip(got, expected, strict=True):
        if bitwise:
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("norm", PER_SAMPLE)
def test_the_fourth_cell_is_split_under_a_per_sample_norm(norm):
    (d_step, g_step), (split_d, split_g) = steps("split_g_mixed", norm), steps("split", norm)
    # The D step is split's own code: bit for bit. The G step scores the fakes in a batch twice as large: the same
    # math, but the convolutions may sum in another order, so equal to float rounding only.
    assert_same(d_step, split_d, bitwise=True)
    assert_same(g_step, split_g, bitwise=False)


@pytest.mark.parametrize("norm", PER_SAMPLE)
def test_cached_statistics_are_split_under_a_per_sample_norm(norm):
    (d_step, g_step), (split_d, split_g) = steps("joint_cached_stats", norm), steps("split", norm)
    # The D step is joint's (one batch of 2B: equal to float rounding); the G step scores the fakes alone, as split
    # does, and its recording pass changes nothing a per-sample norm reads (spectral norm's power iteration runs
    # once per cached() block whichever pass comes first): bit for bit.
    assert_same(d_step, split_d, bitwise=False)
    assert_same(g_step, split_g, bitwise=True)


def test_the_fourth_cell_differs_from_split_under_batchnorm():
    (d_step, g_step), (split_d, split_g) = steps("split_g_mixed", "batch"), steps("split", "batch")
    assert_same(d_step, split_d, bitwise=True)
    assert (g_step[0] - split_g[0]).abs() > 1e-3


@pytest.mark.parametrize("norm", ["batch", "batch_detached"])
def test_cached_statistics_give_the_fakes_their_logits_in_the_mixed_batch(norm):
    D, (real, fake) = discriminator(norm), batch()
    with torch.no_grad():
        _, in_mixed_batch = FEEDS["joint_cached_stats"].d_step(D, real, fake)  # lr_d 0: D as it was
        alone = FEEDS["joint_cached_stats"].g_step(D, real, fake)
        split_alone = FEEDS["split"].g_step(D, real, fake)
    # To float rounding: torch's BatchNorm kernel against var_mean and the normalization written out.
    torch.testing.assert_close(alone, in_mixed_batch, rtol=0, atol=1e-12)
    assert (alone - split_alone).abs().max() > 1e-2  # not vacuous: alone, the fakes' own statistics differ


@pytest.mark.parametrize("norm", ["batch", "batch_detached"])
def test_cached_statistics_send_no_gradient_through_the_reals_or_the_statistics(norm):
    D, (real, fake) = discriminator(norm), batch()
    real, fake = real.requires_grad_(), fake.requires_grad_()
    first_fake = FEEDS["joint_cached_stats"].g_step(D, real, fake)[0]
    to_real, to_fake = torch.autograd.grad(first_fake, [real, fake], allow_unused=True)
    assert to_real is None
    assert to_fake[0].abs().sum() > 0 and torch.equal(to_fake[1:], torch.zeros_like(to_fake[1:]))
    if norm == "batch":  # joint_consistent, the same forward pass, has both paths
        to_real, to_fake = torch.autograd.grad(FEEDS["joint_consistent"].g_step(D, real, fake)[0], [real, fake])
        assert to_real.abs().sum() > 0 and to_fake[1:].abs().sum() > 0


def test_cached_statistics_leave_the_running_statistics_untouched():
    D, (real, fake) = discriminator("batch"), batch()
    before = copy.deepcopy(D.state_dict())
    FEEDS["joint_cached_stats"].g_step(D, real, fake)
    assert all(torch.equal(before[k], v) for k, v in D.state_dict().items())
    FEEDS["joint_consistent"].g_step(D, real, fake)  # whereas a G step on the mixed batch moves them
    assert not torch.equal(before["main.3.running_mean"], D.state_dict()["main.3.running_mean"])


@pytest.mark.parametrize("norm", ["batch", "batch_detached"])
def test_detached_own_statistics_give_the_fakes_joints_g_step_logits(norm):
    D, (real, fake) = discriminator(norm), batch()
    with torch.no_grad():
        detached = FEEDS["joint_detached_g"].g_step(D, real, fake)
        joint = FEEDS["joint"].g_step(D, real, fake)
        mixed = FEEDS["joint_cached_stats"].g_step(D, real, fake)
    torch.testing.assert_close(detached, joint, rtol=0, atol=1e-12)  # BatchNorm's kernel against var_mean's
    assert (detached - mixed).abs().max() > 1e-2  # not vacuous: the mixed batch's statistics are others


def test_detached_own_statistics_send_no_gradient_through_the_statistics():
    """joint_detached_g against joint: the one thing that differs is the gradient through the fakes' own statistics,
    so one fake's logit reaches no other fake, where joint's G step reaches them all."""
    D, (real, fake) = discriminator("batch"), batch()
    fake = fake.requires_grad_()
    (to_fake,) = torch.autograd.grad(FEEDS["joint_detached_g"].g_step(D, real, fake)[0], fake)
    assert to_fake[0].abs().sum() > 0 and torch.equal(to_fake[1:], torch.zeros_like(to_fake[1:]))
    (to_fake,) = torch.autograd.grad(FEEDS["joint"].g_step(D, real, fake)[0], fake)
    assert to_fake[1:].abs().sum() > 0


def test_detached_own_statistics_leave_the_running_statistics_untouched():
    D, (real, fake) = discriminator("batch"), batch()
    before = copy.deepcopy(D.state_dict())
    FEEDS["joint_detached_g"].g_step(D, real, fake)
    assert all(torch.equal(before[k], v) for k, v in D.state_dict().items())
