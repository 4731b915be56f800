"""The BatchNorm remedies' defining properties (models.NORMS, issue 20), their bad settings, and their stacked runs.
In float64, so that "equal to float rounding" can be tight."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganablate.feed import FEEDS
from ganablate.models import (
    ReferenceNorm,
    RunningBatchNorm,
    VirtualNorm,
    batch_rows,
    build_discriminator,
    build_generator,
)
from ganablate.stack import Stack
from tests.test_feeds import MODEL, SHAPE, assert_same, batch, discriminator, steps

REMEDIES = ["ghost", "realhalf", "reference", "virtual", "batch_eval", "batch_detached"]


def _same_init(*norms: str, model: dict = MODEL) -> list[nn.Module]:
    """Ds of these norms with the same weights (the same seed draws the same init for the same layers)."""
    nets = []
    for norm in norms:
        torch.manual_seed(0)
        nets.append(build_discriminator(SHAPE, model, norm).double())
    return nets


def _layer(kind, *args) -> nn.Module:
    layer = kind(4, *args).double()
    nn.init.normal_(layer.weight)
    nn.init.normal_(layer.bias)
    return layer


def _features(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, 5, 5, generator=g, dtype=torch.float64) * (1 + seed) + seed


@pytest.mark.parametrize("feed", list(FEEDS))
@pytest.mark.parametrize("norm", ["ghost", "reference", "virtual", "batch_eval"])
def test_every_feed_is_splits_math_under_ghost_and_the_per_sample_remedies(norm, feed):
    """ghost at its default chunk cuts an unshuffled joint batch [reals; fakes] into split's two batches; the others
    make D a per-sample function. Equal to float rounding: the convolutions see batches of other sizes."""
    (d_step, g_step), (split_d, split_g) = steps(feed, norm), steps("split", norm)
    assert_same(d_step, split_d, bitwise=False)
    assert_same(g_step, split_g, bitwise=False)


def test_ghost_normalizes_each_chunk_as_batchnorm_normalizes_it_alone():
    ghost, batch_norm = _same_init("ghost", "batch", model=MODEL | {"ghost_chunk": 4})
    x = batch()[0]
    with torch.no_grad():
        torch.testing.assert_close(ghost(x), torch.cat([batch_norm(x[:4]), batch_norm(x[4:])]), rtol=0, atol=1e-12)


def test_a_ghost_chunk_that_does_not_divide_the_batch_is_an_error():
    D = build_discriminator(SHAPE, MODEL | {"ghost_chunk": 3}, "ghost")
    with pytest.raises(ValueError, match="model.ghost_chunk: 3 does not divide D's batch of 8 rows; allowed: a div"):
        D(torch.randn(8, *SHAPE))
    with pytest.raises(ValueError, match="model.ghost_chunk: 0 is less than the minimum of 1"):
        build_discriminator(SHAPE, MODEL | {"ghost_chunk": 0}, "ghost")


def test_realhalf_normalizes_a_mixed_batch_with_its_reals_statistics_alone():
    D, (real, fake) = discriminator("realhalf"), batch()
    other_fakes = fake.clone()
    other_fakes[1:] = -other_fakes[1:]
    with torch.no_grad():
        first = FEEDS["joint"].d_step(D, real, fake)[1][0]
        with_other_fakes = FEEDS["joint"].d_step(D, real, other_fakes)[1][0]
        with_other_reals = FEEDS["joint"].d_step(D, real.flip(-1) * 0.5, fake)[1][0]
    torch.testing.assert_close(with_other_fakes, first, rtol=0, atol=1e-12)
    assert (with_other_reals - first).abs() > 1e-3


def test_realhalf_without_reals_uses_the_last_d_steps_reals_statistics_detached():
    D, (real, fake) = discriminator("realhalf"), batch()
    with torch.no_grad():
        in_d_step = FEEDS["joint"].d_step(D, real, fake)[1]
    fake = fake.clone().requires_grad_()
    alone = FEEDS["joint"].g_step(D, real, fake)  # no reals in the batch
    torch.testing.assert_close(alone.detach(), in_d_step, rtol=0, atol=1e-12)  # lr_d 0: D as it was
    to_fake = torch.autograd.grad(alone[0], fake)[0]
    assert to_fake[0].abs().sum() > 0 and torch.equal(to_fake[1:], torch.zeros_like(to_fake[1:]))


def test_reference_normalizes_every_row_with_the_reference_batchs_statistics():
    layer, reference, x = _layer(ReferenceNorm, 3), _features(3, 0), _features(6, 1)
    var, mean = torch.var_mean(reference, dim=(0, 2, 3), unbiased=False)
    expected = F.batch_norm(torch.cat([reference, x]), mean, var, layer.weight, layer.bias, False, 0.0, layer.eps)
    torch.testing.assert_close(layer(torch.cat([reference, x])), expected, rtol=0, atol=1e-12)


def test_virtual_normalizes_an_example_as_batchnorm_would_in_the_batch_of_the_reference_and_itself():
    """Its own statistics weigh 1/(R+1) against the reference's R/(R+1): the statistics of R+1 examples."""
    layer, reference, x = _layer(VirtualNorm, 3), _features(3, 0), _features(6, 1)
    out = layer(torch.cat([reference, x]))

    def batch_norm(rows):
        return F.batch_norm(rows, None, None, layer.weight, layer.bias, True, 0.0, layer.eps)

    torch.testing.assert_close(out[:3], batch_norm(reference), rtol=0, atol=1e-12)
    for i in range(len(x)):
        torch.testing.assert_close(out[3 + i], batch_norm(torch.cat([reference, x[i : i + 1]]))[-1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("norm", ["reference", "virtual"])
def test_a_reference_batch_is_part_of_ds_state_and_of_its_output(norm):
    D, x = discriminator(norm), batch()[0]
    assert torch.equal(D.state_dict()["reference"], D.reference)
    with torch.no_grad():
        before = D(x)
        D.reference.mul_(0.5)
        assert (D(x) - before).abs().max() > 1e-3


def test_a_reference_batch_is_needed_exactly_where_the_norm_takes_one():
    with pytest.raises(
        ValueError, match="norm: reference needs a reference batch of model.reference_size=6 real images; given: none"
    ):
        build_discriminator(SHAPE, MODEL, "reference")
    with pytest.raises(ValueError, match="norm: virtual needs .* given: 5"):
        build_discriminator(SHAPE, MODEL, "virtual", torch.zeros(5, *SHAPE))
    with pytest.raises(ValueError, match="norm: batch takes no reference batch; allowed with: reference, virtual"):
        build_discriminator(SHAPE, MODEL, "batch", torch.zeros(6, *SHAPE))
    with pytest.raises(ValueError, match="model.reference_size: 0 is less than the minimum of 1"):
        build_discriminator(SHAPE, MODEL | {"reference_size": 0}, "reference", torch.zeros(0, *SHAPE))


def test_batch_eval_normalizes_with_running_statistics_learned_one_d_step_late_from_the_reals():
    layer = _layer(RunningBatchNorm)

    def d_step(x, reals=4):
        with batch_rows(reals, d_step=True):
            return layer(x)

    def expected(x, mean, var):
        return F.batch_norm(x, mean, var, layer.weight, layer.bias, False, 0.0, layer.eps)

    xs = [_features(8, seed) for seed in range(13)]
    stats = [torch.var_mean(x[:4], dim=(0, 2, 3)) for x in xs]  # (var, mean) of each D step's reals, unbiased
    init = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    torch.testing.assert_close(d_step(xs[0]), expected(xs[0], *init))
    torch.testing.assert_close(d_step(xs[1]), expected(xs[1], stats[0][1], stats[0][0]))
    # Nothing else moves them: a D step's fakes alone, a G step, D called bare.
    d_step(xs[5], reals=0)
    with batch_rows(4):
        layer(xs[6])
    layer(xs[7])
    torch.testing.assert_close(
        d_step(xs[2]), expected(xs[2], (stats[0][1] + stats[1][1]) / 2, (stats[0][0] + stats[1][0]) / 2)
    )
    for x in xs[3:11]:
        d_step(x)
    # Ten batches folded in: their plain average (the warm-up); the eleventh with momentum 0.1.
    average = torch.stack([mean for _, mean in stats[:10]]).mean(0)
    torch.testing.assert_close(layer.running_mean, average)
    d_step(xs[11])
    torch.testing.assert_close(layer.running_mean, 0.9 * average + 0.1 * stats[10][1])


def test_batch_detached_is_batchs_forward_with_no_gradient_through_the_statistics():
    detached, batch_norm = _same_init("batch_detached", "batch")
    x = batch()[0].requires_grad_()
    out, expected = detached(x), batch_norm(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    to_x, to_x_batch = torch.autograd.grad(out[0], x)[0], torch.autograd.grad(expected[0], x)[0]
    assert to_x[0].abs().sum() > 0 and torch.equal(to_x[1:], torch.zeros_like(to_x[1:]))
    assert to_x_batch[1:].abs().sum() > 0


@pytest.mark.parametrize("feed", list(FEEDS))
@pytest.mark.parametrize("norm", ["batch", *REMEDIES])
def test_a_stack_of_seeds_computes_what_each_seed_computes_alone(norm, feed):
    """stack.py runs D under torch.func.vmap: the remedies' state is updated in place, without a branch on it."""
    pairs = [(build_generator(SHAPE, MODEL).double(), discriminator(norm, seed)) for seed in range(2)]
    stack, solos = Stack(copy.deepcopy(pairs)), [D for _, D in pairs]
    real, fake = (torch.stack(t) for t in zip(batch(1), batch(2), strict=True))
    fake.requires_grad_()
    got = [*stack.per_seed(FEEDS[feed].d_step, real, fake.detach()), stack.per_seed(FEEDS[feed].g_step, real, fake)]
    got_grad = torch.autograd.grad(got[-1].square().sum(), fake)[0]
    for j, D in enumerate(solos):
        solo_fake = fake[j].detach().requires_grad_()
        expected = [*FEEDS[feed].d_step(D, real[j], solo_fake.detach()), FEEDS[feed].g_step(D, real[j], solo_fake)]
        expected_grad = torch.autograd.grad(expected[-1].square().sum(), solo_fake)[0]
        assert_same([t[j] for t in got] + [got_grad[j]], expected + [expected_grad], bitwise=False)
        state, expected_state = stack.seed_state_dict(j)["D"], D.state_dict()
        assert state.keys() == expected_state.keys()
        assert_same([state[k] for k in state], [expected_state[k] for k in state], bitwise=False)
