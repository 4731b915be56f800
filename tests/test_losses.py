"""The losses of train.loss: each one's defining property, the registry's guard, where a gradient penalty runs."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganablate import catalog
from ganablate.components.losses import LOSSES, gradient_penalty, loss_of, register_loss
from ganablate.errors import ConfigError
from ganablate.study.config import validate_config
from ganablate.training.train import train_run, train_stack

REAL, FAKE = torch.randn(64, generator=torch.Generator().manual_seed(0)), torch.randn(64) - 1


def test_the_losses_a_config_may_name_and_those_trained_solo_are_read_from_the_registry_torch_free():
    assert catalog.names("losses") == tuple(LOSSES) == ("ns", "hinge", "lsgan", "wgan_gp")
    solo = [name for name, entry in catalog.entries("losses").items() if "penalty" in entry.code]
    assert solo == [name for name, loss in LOSSES.items() if loss.penalty is not None] == ["wgan_gp"]


def test_ns_is_the_seed_questions_softplus_loss_bit_for_bit_and_bce_with_logits():
    ns = LOSSES["ns"]
    assert torch.equal(ns.d(REAL, FAKE), F.softplus(-REAL).mean() + F.softplus(FAKE).mean())
    assert torch.equal(ns.g(FAKE), F.softplus(-FAKE).mean())
    bce = F.binary_cross_entropy_with_logits
    torch.testing.assert_close(ns.d(REAL, FAKE), bce(REAL, torch.ones(64)) + bce(FAKE, torch.zeros(64)))
    torch.testing.assert_close(ns.g(FAKE), bce(FAKE, torch.ones(64)))


def test_hinge_costs_d_nothing_beyond_its_margins_and_the_distance_to_them_inside():
    hinge = LOSSES["hinge"]
    assert hinge.d(torch.tensor([1.0, 3.0]), torch.tensor([-1.0, -5.0])) == 0
    assert hinge.d(torch.tensor([0.5, 1.0]), torch.tensor([-1.0, 0.0])) == pytest.approx(0.25 + 0.5)
    assert hinge.g(torch.tensor([2.0, -4.0])) == 1.0


def test_lsgan_is_half_the_mean_squared_distance_to_the_targets():
    lsgan = LOSSES["lsgan"]
    torch.testing.assert_close(
        lsgan.d(REAL, FAKE), 0.5 * F.mse_loss(REAL, torch.ones(64)) + 0.5 * F.mse_loss(FAKE, torch.zeros(64))
    )
    torch.testing.assert_close(lsgan.g(FAKE), 0.5 * F.mse_loss(FAKE, torch.ones(64)))


def test_wgan_gps_critic_loss_is_the_gap_between_its_mean_scores():
    torch.testing.assert_close(LOSSES["wgan_gp"].d(REAL, FAKE), FAKE.mean() - REAL.mean())
    torch.testing.assert_close(LOSSES["wgan_gp"].g(FAKE), -FAKE.mean())


@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_the_gradient_penalty_of_a_linear_critic_is_its_weight_norm_minus_one_squared(scale):
    """A linear D's gradient is its weight at every point: the penalty is weight * (||w|| - 1)^2, zero at ||w|| = 1,
    wherever the points between reals and fakes fall."""
    D = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
    with torch.no_grad():
        D[1].weight.copy_(torch.randn(1, 12))
        D[1].weight.mul_(scale / D[1].weight.norm())
    real, fake = torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2)
    penalty = gradient_penalty(D, real, fake, weight=10.0)
    torch.testing.assert_close(penalty, torch.tensor(10.0 * (scale - 1) ** 2))


def test_the_gradient_penalty_reaches_ds_weights():
    D = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
    gradient_penalty(D, torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2), weight=1.0).backward()
    assert D[1].weight.grad is not None and D[1].weight.grad.abs().sum() > 0


def test_a_runs_loss_carries_train_gp_weight():
    D = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
    with torch.no_grad():
        D[1].weight.fill_(1.0)  # norm sqrt(12)
    real = torch.randn(5, 3, 2, 2)
    penalty = loss_of({"loss": "wgan_gp", "gp_weight": 2.5}).penalty(D, real, real)
    torch.testing.assert_close(penalty, torch.tensor(2.5 * (12**0.5 - 1) ** 2))
    assert loss_of({"loss": "ns", "gp_weight": 2.5}) is LOSSES["ns"]


def test_register_loss_refuses_a_name_taken_and_what_is_not_a_loss():
    with pytest.raises(ValueError, match="register_loss: 'hinge' is already registered; allowed: a new name"):
        register_loss("hinge", d=lambda r, f: r.mean(), g=lambda f: f.mean())
    with pytest.raises(TypeError, match="register_loss: 'mine': d, g and penalty \\(if given\\) must be callables"):
        register_loss("mine", d=lambda r, f: r.mean(), g="not code")
    with pytest.raises(ValueError, match="register_loss: 'My Loss' is not a name; allowed: "):
        register_loss("My Loss", d=lambda r, f: r.mean(), g=lambda f: f.mean())
    assert "mine" not in LOSSES


@pytest.mark.parametrize("loss", list(LOSSES))
def test_every_loss_trains_a_run_under_batchnorm_and_joint_to_finite_losses(tiny_config, tmp_path, loss):
    config = copy.deepcopy(tiny_config)
    config["train"].update(steps=3, checkpoints=[], log_every=1, feed="joint", loss=loss)
    assert train_run(config, 0, tmp_path)["status"] == "completed"
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert len(log) == 3 and log[["loss_d", "loss_g"]].notna().all().all()


def test_a_loss_unknown_is_one_line_naming_the_key_and_the_losses():
    with pytest.raises(ConfigError, match="train.loss: unknown 'wgan'; allowed: ns, hinge, lsgan, wgan_gp"):
        validate_config({"train": {"loss": "wgan"}})
    axes = {"loss": {"sets": "train.loss", "levels": ["ns", "wgan"]}}
    with pytest.raises(ConfigError, match=r"train.loss: unknown 'wgan' in the cell \{'loss': 'wgan'\}; allowed: ns"):
        validate_config({"study": {"axes": axes}, "stats": {"mechanism": None}})


def test_a_stack_of_seeds_under_a_gradient_penalty_is_refused_in_one_line(tiny_config, tmp_path):
    """torch.func.vmap, which trains a stack, runs neither the penalty's random points nor its inner gradient."""
    with pytest.raises(
        ConfigError, match=r"^config: train.stack: 2 seeds in one stack with train.loss=wgan_gp; allowed: 1"
    ):
        validate_config({"train": {"loss": "wgan_gp", "stack": 2}})
    config = copy.deepcopy(tiny_config)
    config["train"].update(loss="wgan_gp", stack="auto")  # auto stacks every seed on CUDA: refused at the job
    with pytest.raises(ConfigError, match="^train.stack: 2 seeds in one stack with train.loss=wgan_gp; allowed: 1"):
        train_stack(config, [0, 1], tmp_path)
