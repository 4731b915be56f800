"""The BatchNorm remedies' defining properties (components/norms.py, issue 20), their bad settings, and their stacked
runs. In float64, so that "equal to float rounding" can be tight."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganablate import catalog
from ganablate.components.feeds import FEEDS
from ganablate.components.networks import build_discriminator, build_generator
from ganablate.components.norms import NORMS, ReferenceNorm, RunningBatchNorm, VirtualNorm, batch_rows
from ganablate.data import to_model_range
from ganablate.errors import ConfigError
from ganablate.study.config import validate_config
from ganablate.training.seeds import build_networks
from ganablate.training.stack import Stack
from tests.test_feeds import MODEL, SHAPE, assert_same, batch, d_loss_and_grads, discriminator, steps

REMEDIES = [name for name, norm in NORMS.items() if norm.remedy]


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


def test_ghost_mixed_normalizes_every_kth_row_together_as_batchnorm_normalizes_them_alone():
    """Chunks of 4 of 8 rows: rows 0, 2, 4, 6 and rows 1, 3, 5, 7, so that each chunk of [4 reals; 4 fakes] holds
    two of each, where ghost's chunks are the reals and the fakes."""
    mixed, batch_norm = _same_init("ghost_mixed", "batch", model=MODEL | {"ghost_chunk": 4})
    x = batch()[0]
    expected = torch.empty(len(x), dtype=x.dtype)  # D's logits
    with torch.no_grad():
        expected[0::2], expected[1::2] = batch_norm(x[0::2]), batch_norm(x[1::2])
        torch.testing.assert_close(mixed(x), expected, rtol=0, atol=1e-12)


def test_ghost_mixed_couples_a_joint_batchs_reals_and_fakes_where_ghost_keeps_them_apart():
    model = MODEL | {"ghost_chunk": 8}
    (real, fake), outputs = batch(), {}
    for norm in ("ghost", "ghost_mixed"):
        for feed in ("split", "joint"):
            D = _same_init(norm, model=model)[0]
            with torch.no_grad():
                outputs[norm, feed] = torch.cat(FEEDS[feed].d_step(D, real, fake))
    torch.testing.assert_close(outputs["ghost", "joint"], outputs["ghost", "split"], rtol=0, atol=1e-12)
    assert (outputs["ghost_mixed", "joint"] - outputs["ghost_mixed", "split"]).abs().max() > 1e-2


def test_ghost_mixed_without_a_chunk_is_an_error_naming_the_key():
    with pytest.raises(ValueError, match="model.ghost_chunk: None with norm ghost_mixed; allowed: a divisor"):
        build_discriminator(SHAPE, MODEL, "ghost_mixed")
    with pytest.raises(ConfigError, match=r"model.ghost_chunk: null in the cell \{'norm': 'ghost_mixed'\}"):
        validate_config({"study": {"axes": {"norm": {"levels": ["batch", "ghost_mixed"]}}}})


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


def test_realhalf_gives_split_and_joint_one_d_step_value_but_joint_a_gradient_through_the_reals_statistics():
    """split scores its fakes after its reals, with their statistics detached; joint keeps them in the graph."""
    (split_loss, *split_grads), (joint_loss, *joint_grads) = (
        d_loss_and_grads(feed, discriminator("realhalf"), *batch()) for feed in ("split", "joint")
    )
    torch.testing.assert_close(joint_loss, split_loss, rtol=0, atol=1e-12)
    assert max((a - b).abs().max() for a, b in zip(joint_grads, split_grads, strict=True)) > 1e-6


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


@pytest.mark.parametrize("norm", list(NORMS))
def test_per_sample_is_true_exactly_of_the_norms_whose_d_step_scores_a_row_apart_from_the_others(norm):
    """norms.Norm.per_sample, checked where it matters: in joint's D step (batch_eval's state moving on, the
    reference batch riding in front), a fake's logit stays when every other row of the mixed batch changes."""
    (real, fake), (other_real, other_fake) = batch(1), batch(2)
    other_fake[0] = fake[0]
    D = discriminator(norm)
    with torch.no_grad():
        first = FEEDS["joint"].d_step(copy.deepcopy(D), real, fake)[1][0]
        among_others = FEEDS["joint"].d_step(copy.deepcopy(D), other_real, other_fake)[1][0]
    if NORMS[norm].per_sample:
        torch.testing.assert_close(among_others, first, rtol=0, atol=1e-12)
    else:
        assert (among_others - first).abs() > 1e-6


def test_batch_eval_normalizes_a_d_steps_rows_apart_from_each_other_and_from_this_steps_reals():
    """Its D step first folds in the previous D step's reals, then normalizes: this step's reals reach the
    statistics only from the next D step on."""
    layer, x, y = _layer(RunningBatchNorm), _features(8, 0), _features(8, 1)
    with batch_rows(4, d_step=True):
        layer(_features(8, 2))  # one D step before: its reals are pending
    twins = [copy.deepcopy(layer) for _ in range(2)]
    y[5] = x[5]
    with batch_rows(4, d_step=True):
        out_x, out_y = twins[0](x), twins[1](y)
    torch.testing.assert_close(out_y[5], out_x[5], rtol=0, atol=1e-12)
    torch.testing.assert_close(twins[0].running_mean, twins[1].running_mean, rtol=0, atol=0)
    assert (twins[0].pending_mean - twins[1].pending_mean).abs().max() > 1e-3  # for the next D step


def test_the_reference_batch_is_drawn_once_per_run_from_its_seed_among_the_training_images():
    """The same R reals for a seed's reference and virtual runs (paired), other reals for another seed; a buffer of
    D, never trained, saved with D's state."""
    images = torch.randint(0, 256, (40, *SHAPE), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)

    def reference(norm, seed):
        return build_networks(SHAPE, MODEL | {"d_norm": norm}, seed, images)[1].reference

    first = reference("reference", 0)
    assert first.shape == (MODEL["reference_size"], *SHAPE)
    assert torch.equal(reference("reference", 0), first) and torch.equal(reference("virtual", 0), first)
    assert not torch.equal(reference("reference", 1), first)
    pool = to_model_range(images).flatten(1)
    assert all((pool == row.flatten()).all(1).any() for row in first)
    D = build_networks(SHAPE, MODEL | {"d_norm": "virtual"}, 0, images)[1]
    assert all(p is not D.reference for p in D.parameters()) and "reference" in D.state_dict()


def test_a_reference_batch_larger_than_the_training_set_is_an_error_naming_the_key():
    images = torch.zeros(4, *SHAPE, dtype=torch.uint8)
    with pytest.raises(ValueError, match="norm: reference needs .* model.reference_size=6 real images; given: 4"):
        build_networks(SHAPE, MODEL | {"d_norm": "reference"}, 0, images)


def test_a_ghost_chunk_that_does_not_divide_the_batch_size_is_a_config_error_before_any_run():
    with pytest.raises(ConfigError, match=r"model.ghost_chunk: 5 does not divide train.batch_size=64; allowed: a div"):
        validate_config({"model": {"ghost_chunk": 5}, "train": {"batch_size": 64}})
    assert validate_config({"model": {"ghost_chunk": 16}, "train": {"batch_size": 64}})["model"]["ghost_chunk"] == 16


def test_every_norm_has_a_one_line_use_which_the_analysis_reads_torch_free():
    """What the remedies table and findings.md say of a norm, without importing components/norms.py."""
    assert catalog.uses("norms") == {name: norm.use for name, norm in NORMS.items()}
    assert all(use.strip() and "\n" not in use for use in catalog.uses("norms").values())


def test_the_remedies_are_the_batchnorm_familys_norms_other_than_batch():
    assert REMEDIES == ["ghost", "ghost_mixed", "realhalf", "reference", "virtual", "batch_eval", "batch_detached"]
    assert all(NORMS[name].family == "batch" for name in REMEDIES)


@pytest.mark.parametrize("feed", list(FEEDS))
@pytest.mark.parametrize("norm", ["batch", *REMEDIES])
def test_a_stack_of_seeds_computes_what_each_seed_computes_alone(norm, feed):
    """training/stack.py runs D under torch.func.vmap: the remedies' state is updated in place, with no branch on it."""
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


def _d_init(norm: str, seed: int = 3) -> dict[str, torch.Tensor]:
    images = torch.randint(0, 256, (80, *SHAPE), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    model = MODEL | {"d_norm": norm, "ghost_chunk": 4}
    return dict(build_networks(SHAPE, model, seed, images)[1].named_parameters())


@pytest.mark.parametrize(
    "family, members",
    [(f, [n for n, norm in NORMS.items() if norm.family == f]) for f in {n.family for n in NORMS.values()} - {None}],
)
def test_the_norms_of_one_family_start_a_seed_from_bitwise_equal_d_weights(family, members):
    """Pairing by seed across norms (issue 27): split+ghost and split+batch, split+batch_eval's first D step and
    split+batch's, all start from the same D; the declared family is what the training code draws from."""
    first = _d_init(family)
    for norm in members:
        init = _d_init(norm)
        assert init.keys() == first.keys(), norm
        assert all(torch.equal(init[k], first[k]) for k in first), norm
    assert not torch.equal(_d_init(family, seed=4)["main.0.weight"], first["main.0.weight"])


def test_norms_of_other_families_draw_d_inits_of_their_own():
    assert catalog.d_init_family("none") == "none" and catalog.d_init_family("ghost") == "batch"
    batch_init = _d_init("batch")
    for norm in ("none", "spectral"):
        assert NORMS[norm].family is None and catalog.d_init_family(norm) == norm
        assert not torch.equal(
            _d_init(norm)["main.0.weight" if norm == "none" else "main.0.parametrizations.weight.original"],
            batch_init["main.0.weight"],
        )


def test_a_norm_axis_within_one_family_shares_ds_init_and_records_the_families():
    from ganablate.study.design import design_of

    def norm_axis(levels):
        config = validate_config({"study": {"axes": {"norm": {"levels": levels}}}})
        return design_of(config).axis("norm")

    within = norm_axis(["batch", "ghost", "batch_eval"])
    assert within.breaks == () and "D init" in within.as_dict()["shared_streams"]
    assert within.as_dict()["d_init_families"] == {"batch": ["batch", "ghost", "batch_eval"]}
    across = norm_axis(["none", "batch", "instance"])
    assert across.breaks == ("D init",)
    assert across.as_dict()["d_init_families"] == {"none": ["none"], "batch": ["batch", "instance"]}
